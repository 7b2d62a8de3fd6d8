/**
 * Internal: text gathered piece by piece from chunks, kept in memory only while it stays
 * within a UTF-8 byte limit. Past the limit the pieces are dropped and only their UTF-8 size
 * is counted, so an oversized field or record costs no memory but still gets an exact size
 * for its error message.
 */
export class BoundedText {
  /** The text, while it is one piece (the common case: a field inside one chunk). */
  private single = "";
  /** The pieces, once there are several. */
  private parts: string[] | undefined;
  private chars = 0;
  /** UTF-8 size counted so far once over the limit; -1 while the text is kept. */
  private countedBytes = -1;
  private endsWithCR = false;

  /** @param limit Largest size in UTF-8 bytes that is kept. */
  constructor(private readonly limit: number) {}

  /** Appends `s.slice(start, end)`. */
  append(s: string, start: number, end: number): void {
    if (start >= end) return;
    const piece = start === 0 && end === s.length ? s : s.slice(start, end);
    this.endsWithCR = piece.charCodeAt(piece.length - 1) === 13;
    if (this.countedBytes >= 0) {
      this.countedBytes += Buffer.byteLength(piece);
      return;
    }
    if (this.chars === 0) this.single = piece;
    else if (this.parts === undefined) this.parts = [this.single, piece];
    else this.parts.push(piece);
    this.chars += piece.length;
    // A UTF-16 code unit is at least one UTF-8 byte, so more chars than the limit is over it.
    if (this.chars > this.limit) {
      this.countedBytes = Buffer.byteLength(this.text());
      this.single = "";
      this.parts = undefined;
      this.chars = 0;
    }
  }

  /** Removes one trailing carriage return, if the text ends with one. */
  trimTrailingCR(): void {
    if (!this.endsWithCR) return;
    this.endsWithCR = false;
    if (this.countedBytes >= 0) {
      this.countedBytes -= 1;
      return;
    }
    this.single = this.text().slice(0, -1);
    this.parts = undefined;
    this.chars -= 1;
  }

  /** Whether nothing has been appended since the last reset. */
  isEmpty(): boolean {
    return this.chars === 0 && this.countedBytes < 0;
  }

  /** Whether the (kept) text is empty or only whitespace. False once over the limit. */
  isBlank(): boolean {
    return this.countedBytes < 0 && this.text().trim() === "";
  }

  /** The exact UTF-8 size when the text is over the limit, else `undefined`. */
  excessBytes(): number | undefined {
    if (this.countedBytes >= 0) return this.countedBytes;
    // At most 3 UTF-8 bytes per UTF-16 code unit: only measure when it could be over.
    if (this.chars * 3 <= this.limit) return undefined;
    const bytes = Buffer.byteLength(this.text());
    return bytes > this.limit ? bytes : undefined;
  }

  /** The text kept (empty once over the limit). */
  text(): string {
    if (this.parts !== undefined) {
      this.single = this.parts.join("");
      this.parts = undefined;
    }
    return this.single;
  }

  /** Empties the text for reuse. */
  reset(): void {
    this.single = "";
    this.parts = undefined;
    this.chars = 0;
    this.countedBytes = -1;
    this.endsWithCR = false;
  }
}
