import { BoundedText } from "./bounded-text.js";
import { fieldTooBigMessage, type RecordSequence, recordTooBigMessage } from "./record-sequence.js";
import { SourceError } from "./source-error.js";
import type { ChunkParser, SourceRecord } from "./source-record.js";

const QUOTE = 34;
const COMMA = 44;
const LF = 10;
const CR = 13;

// Scanner states.
const FIELD_START = 0;
const UNQUOTED = 1;
const QUOTED = 2;
const AFTER_QUOTE = 3;
const AFTER_QUOTE_CR = 4;

/** Internal: settings of a {@link CsvParser}. */
export interface CsvParserOptions {
  /** Name of the file for messages. */
  source: string;
  maxFieldBytes: number;
  maxRecordBytes: number;
}

/**
 * Internal: incremental RFC 4180 CSV parser. The first non-blank row is the header; every
 * later non-blank row is one record whose fields are named by the header. Quoted fields may
 * hold commas, doubled quotes and line breaks; rows end with LF or CRLF. Values stay strings.
 *
 * Leniency: a quote inside an unquoted field (`5'11"`) is kept as a literal character, as
 * most CSV writers produce it; text after a closing quote (`"a"b`) makes the row an error.
 * A row with more or fewer fields than the header, an unterminated quoted field, or an
 * oversized field or row is an error record. Problems with the header row are
 * {@link SourceError}s, since no record can be read without it.
 */
export class CsvParser implements ChunkParser {
  private header: string[] | undefined;
  private state = FIELD_START;
  private readonly field: BoundedText;
  private fields: string[] = [];
  private fieldCount = 0;
  private fieldQuoted = false;
  /** First problem found in the current row. */
  private rowError: string | undefined;
  /** Whether the current row is past maxRecordBytes (its fields are then not kept). */
  private rowTooBig = false;
  private rowStartLine = 1;
  private rowStartOffset = 0;
  private quoteLine = 1;
  /** Current line number (1-based). */
  private line = 1;
  /** Absolute offset (UTF-16 code units) of the current chunk's start. */
  private offset = 0;

  constructor(
    private readonly records: RecordSequence,
    private readonly options: CsvParserOptions,
  ) {
    this.field = new BoundedText(options.maxFieldBytes);
  }

  write(s: string, out: SourceRecord[]): void {
    const n = s.length;
    let i = 0;
    while (i < n) {
      switch (this.state) {
        case FIELD_START:
          if (s.charCodeAt(i) === QUOTE) {
            this.state = QUOTED;
            this.fieldQuoted = true;
            this.quoteLine = this.line;
            i++;
          } else {
            this.state = UNQUOTED;
          }
          break;
        case UNQUOTED: {
          let j = i;
          for (; j < n; j++) {
            const c = s.charCodeAt(j);
            if (c === COMMA || c === LF) break;
          }
          this.field.append(s, i, j);
          if (j === n) {
            i = n;
          } else if (s.charCodeAt(j) === COMMA) {
            this.endField();
            this.state = FIELD_START;
            i = j + 1;
          } else {
            this.field.trimTrailingCR();
            i = this.endLine(s, j, out);
          }
          break;
        }
        case QUOTED: {
          const j = s.indexOf('"', i);
          const end = j === -1 ? n : j;
          this.field.append(s, i, end);
          this.line += countLineFeeds(s, i, end);
          if (j === -1) {
            i = n;
          } else {
            this.state = AFTER_QUOTE;
            i = j + 1;
          }
          break;
        }
        case AFTER_QUOTE: {
          const c = s.charCodeAt(i);
          if (c === QUOTE) {
            // A doubled quote inside a quoted field stands for one quote.
            this.field.append(s, i, i + 1);
            this.state = QUOTED;
            i++;
          } else if (c === COMMA) {
            this.endField();
            this.state = FIELD_START;
            i++;
          } else if (c === LF) {
            i = this.endLine(s, i, out);
          } else if (c === CR) {
            this.state = AFTER_QUOTE_CR;
            i++;
          } else {
            this.textAfterQuote();
          }
          break;
        }
        case AFTER_QUOTE_CR:
          if (s.charCodeAt(i) === LF) {
            i = this.endLine(s, i, out);
          } else {
            this.textAfterQuote();
            this.field.append("\r", 0, 1);
          }
          break;
      }
    }
    this.offset += n;
    if (!this.rowTooBig && this.offset - this.rowStartOffset > this.options.maxRecordBytes) {
      this.rowTooBig = true;
      this.fields = [];
    }
  }

  end(out: SourceRecord[]): void {
    if (this.state === QUOTED) {
      // The rest of the file went into the unterminated field; that is the row's real problem.
      this.rowError = `line ${this.rowStartLine}: unterminated quoted field (the quote opens on line ${this.quoteLine})`;
    }
    if (this.fieldCount > 0 || this.fieldQuoted || !this.field.isEmpty()) {
      if (this.state === UNQUOTED) this.field.trimTrailingCR();
      this.endRow(this.offset, out);
    }
  }

  private textAfterQuote(): void {
    this.rowError ??= `line ${this.line}: unexpected text after the closing quote of field ${this.fieldName(this.fieldCount)}`;
    // Keep scanning the rest as an unquoted field so the row still ends at the right place.
    this.state = UNQUOTED;
  }

  /** Ends the row at the line feed `s[j]`; returns where scanning goes on. */
  private endLine(s: string, j: number, out: SourceRecord[]): number {
    const lineFeedOffset = this.offset + j;
    const crlf = j > 0 ? s.charCodeAt(j - 1) === CR : this.state === AFTER_QUOTE_CR;
    this.endRow(crlf ? lineFeedOffset - 1 : lineFeedOffset, out);
    this.line++;
    this.rowStartLine = this.line;
    this.rowStartOffset = lineFeedOffset + 1;
    this.state = FIELD_START;
    return j + 1;
  }

  private endField(): void {
    const column = this.fieldCount++;
    const excess = this.field.excessBytes();
    if (excess !== undefined) {
      this.rowError ??= fieldTooBigMessage(
        this.rowStartLine,
        this.fieldName(column),
        excess,
        this.options.maxFieldBytes,
      );
    } else if (!this.rowTooBig) {
      this.fields.push(this.field.text());
    }
    this.field.reset();
    this.fieldQuoted = false;
  }

  private endRow(rowEndOffset: number, out: SourceRecord[]): void {
    if (this.fieldCount === 0 && !this.fieldQuoted && this.field.isBlank()) {
      this.resetRow(); // blank line
      return;
    }
    this.endField();
    const line = this.rowStartLine;
    const fields = this.fields;
    const count = this.fieldCount;
    const rowError = this.rowError ?? this.rowSizeError(rowEndOffset);
    this.resetRow();

    if (this.header === undefined) {
      this.header = this.headerFrom(line, fields, rowError);
      return;
    }
    const header = this.header;
    if (rowError !== undefined) {
      out.push(this.records.fail(line, rowError));
    } else if (count !== header.length) {
      out.push(
        this.records.fail(line, `line ${line}: expected ${header.length} fields as in the header, got ${count}`),
      );
    } else {
      const record: Record<string, unknown> = {};
      for (let k = 0; k < count; k++) {
        const name = header[k] as string;
        if (name === "__proto__") {
          Object.defineProperty(record, name, {
            value: fields[k],
            enumerable: true,
            writable: true,
            configurable: true,
          });
        } else {
          record[name] = fields[k];
        }
      }
      out.push(this.records.fromFields(line, record));
    }
  }

  private rowSizeError(rowEndOffset: number): string | undefined {
    const limit = this.options.maxRecordBytes;
    const chars = rowEndOffset - this.rowStartOffset;
    if (chars * 3 <= limit) return undefined;
    if (this.rowTooBig) return `line ${this.rowStartLine}: record is more than ${limit} bytes, limit ${limit}`;
    // Quotes, commas and line breaks are one byte each; only the values can be wider.
    let bytes = chars;
    for (const value of this.fields) bytes += Buffer.byteLength(value) - value.length;
    return bytes > limit ? recordTooBigMessage(this.rowStartLine, bytes, limit) : undefined;
  }

  private headerFrom(line: number, names: string[], rowError: string | undefined): string[] {
    const source = this.options.source;
    if (rowError !== undefined) {
      throw new SourceError(`${source}: header row: ${rowError}`, { path: source, line });
    }
    const seen = new Map<string, number>();
    for (let k = 0; k < names.length; k++) {
      const name = names[k] as string;
      const first = seen.get(name);
      if (first !== undefined) {
        throw new SourceError(
          `${source}: line ${line}: duplicate header name ${JSON.stringify(name)} (columns ${first + 1} and ${k + 1})`,
          { path: source, line },
        );
      }
      seen.set(name, k);
    }
    return names;
  }

  private fieldName(column: number): string {
    return this.header?.[column] ?? `column ${column + 1}`;
  }

  private resetRow(): void {
    this.field.reset();
    this.fields = [];
    this.fieldCount = 0;
    this.fieldQuoted = false;
    this.rowError = undefined;
    this.rowTooBig = false;
  }
}

function countLineFeeds(s: string, start: number, end: number): number {
  let count = 0;
  let i = s.indexOf("\n", start);
  while (i !== -1 && i < end) {
    count++;
    i = s.indexOf("\n", i + 1);
  }
  return count;
}
