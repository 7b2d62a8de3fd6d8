/**
 * Internal: text gathered piece by piece from chunks, kept in memory only while it stays
 * within a UTF-8 byte limit. Past the limit the pieces are dropped and only their UTF-8 size
 * is counted, so an oversized field or record costs no memory but still gets an exact size
 * for its error message.
 */
export class BoundedText {
  private parts: string[] = [];
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
    this.parts.push(piece);
    this.chars += piece.length;
    // A UTF-16 code unit is at least one UTF-8 byte, so more chars than the limit is over it.
    if (this.chars > this.limit) {
      this.countedBytes = Buffer.byteLength(this.parts.join(""));
      this.parts = [];
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
    const last = this.parts.length - 1;
    const piece = this.parts[last] as string;
    if (piece.length === 1) this.parts.pop();
    else this.parts[last] = piece.slice(0, -1);
    this.chars -= 1;
  }

  /** Whether nothing has been appended since the last reset. */
  isEmpty(): boolean {
    return this.chars === 0 && this.countedBytes < 0;
  }

  /** Whether the (kept) text is empty or only whitespace. False once over the limit. */
  isBlank(): boolean {
    if (this.countedBytes >= 0) return false;
    for (const part of this.parts) if (part.trim() !== "") return false;
    return true;
  }

  /** Number of UTF-16 code units kept (0 once over the limit). */
  get length(): number {
    return this.chars;
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
    const parts = this.parts;
    if (parts.length === 1) return parts[0] as string;
    if (parts.length === 0) return "";
    const joined = parts.join("");
    this.parts = [joined];
    return joined;
  }

  /** Empties the text for reuse. */
  reset(): void {
    this.parts.length = 0;
    this.chars = 0;
    this.countedBytes = -1;
    this.endsWithCR = false;
  }
}
