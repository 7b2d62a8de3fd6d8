import { BoundedText } from "./bounded-text.js";
import { type RecordSequence, recordTooBigMessage } from "./record-sequence.js";
import { SourceError } from "./source-error.js";
import type { ChunkParser, SourceRecord } from "./source-record.js";

const LF = 10;
const OPEN_BRACE = 123;
const CLOSE_BRACE = 125;
const OPEN_BRACKET = 91;
const CLOSE_BRACKET = 93;
const COMMA = 44;
const QUOTE = 34;

// Parser states.
const BEFORE_ARRAY = 0;
const FIRST_VALUE = 1;
const NEXT_VALUE = 2;
const IN_ELEMENT = 3;
const AFTER_ARRAY = 4;

/** Internal: settings of a {@link JsonArrayParser}. */
export interface JsonArrayParserOptions {
  /** Name of the file for messages. */
  source: string;
  maxRecordBytes: number;
}

/**
 * Internal: incremental parser for a JSON array of records (`[{...}, {...}]`). It finds each
 * top-level element by scanning brackets and strings, then hands that element's text alone to
 * `JSON.parse`, so memory holds one element at a time however big the file is.
 *
 * An element that is not an object, or is larger than `maxRecordBytes`, becomes an error
 * record. Invalid JSON anywhere is a {@link SourceError} naming the line and column, thrown
 * when the parser reaches it (after the records before it have been returned): past a syntax
 * error there is no telling where the next record starts.
 */
export class JsonArrayParser implements ChunkParser {
  private state = BEFORE_ARRAY;
  private readonly element: BoundedText;
  private readonly stack: number[] = [];
  private inString = false;
  private escaped = false;
  private line = 1;
  /** Absolute offset of the current line's first character. */
  private lineStart = 0;
  /** Absolute offset of the current chunk's first character. */
  private offset = 0;
  private arrayLine = 1;
  private elementLine = 1;
  private elementColumn = 1;

  constructor(
    private readonly records: RecordSequence,
    private readonly options: JsonArrayParserOptions,
  ) {
    this.element = new BoundedText(options.maxRecordBytes);
  }

  write(s: string, out: SourceRecord[]): void {
    const n = s.length;
    let i = 0;
    /** Where the current element's text starts in this chunk, while in an element. */
    let elementStart = this.state === IN_ELEMENT ? 0 : -1;
    /** Next backslash at or after the scan position (-1: none left in this chunk). */
    let backslash = s.indexOf("\\");
    while (i < n) {
      if (this.state !== IN_ELEMENT) {
        i = this.skipWhitespace(s, i);
        if (i === n) break;
        const c = s.charCodeAt(i);
        switch (this.state) {
          case BEFORE_ARRAY:
            if (c !== OPEN_BRACKET) throw this.syntaxError(i, `expected '[' but found ${quote(s, i)}`);
            this.arrayLine = this.line;
            this.state = FIRST_VALUE;
            i++;
            continue;
          case FIRST_VALUE:
            if (c === CLOSE_BRACKET) {
              this.state = AFTER_ARRAY;
              i++;
              continue;
            }
            if (c === COMMA) throw this.syntaxError(i, "expected a value but found ','");
            break;
          case NEXT_VALUE:
            if (c === CLOSE_BRACKET || c === COMMA) {
              throw this.syntaxError(i, `expected a value but found ${quote(s, i)}`);
            }
            break;
          default:
            throw this.syntaxError(i, `unexpected ${quote(s, i)} after the end of the array`);
        }
        this.state = IN_ELEMENT;
        this.elementLine = this.line;
        this.elementColumn = this.offset + i - this.lineStart + 1;
        elementStart = i;
      }

      if (this.inString) {
        // Jump to the closing quote, skipping escaped characters; indexOf is far faster
        // than visiting every character of a long string.
        if (this.escaped) {
          this.escaped = false;
          i++;
          continue;
        }
        const q = s.indexOf('"', i);
        if (backslash !== -1 && backslash < i) backslash = s.indexOf("\\", i);
        if (backslash !== -1 && (q === -1 || backslash < q)) {
          this.escaped = true;
          i = backslash + 1;
        } else if (q === -1) {
          i = n;
        } else {
          this.inString = false;
          i = q + 1;
        }
        continue;
      }

      // Outside strings only brackets, commas, quotes and line feeds matter.
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c === LF) {
          this.newLine(i);
        } else if (c === QUOTE) {
          this.inString = true;
          i++;
          break;
        } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
          this.stack.push(c);
        } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
          const open = this.stack.pop();
          if (open === undefined) {
            if (c === CLOSE_BRACE) throw this.syntaxError(i, "unexpected '}'");
            this.element.append(s, elementStart, i);
            this.endElement(out);
            this.state = AFTER_ARRAY;
            i++;
            break;
          }
          if (open !== (c === CLOSE_BRACE ? OPEN_BRACE : OPEN_BRACKET)) {
            const expected = open === OPEN_BRACE ? "'}'" : "']'";
            throw this.syntaxError(i, `expected ${expected} but found ${quote(s, i)}`);
          }
        } else if (c === COMMA && this.stack.length === 0) {
          this.element.append(s, elementStart, i);
          this.endElement(out);
          this.state = NEXT_VALUE;
          i++;
          break;
        }
      }
    }
    if (this.state === IN_ELEMENT) this.element.append(s, elementStart, n);
    this.offset += n;
  }

  end(_out: SourceRecord[]): void {
    if (this.state === AFTER_ARRAY || this.state === BEFORE_ARRAY) return;
    const source = this.options.source;
    throw new SourceError(
      `${source}: line ${this.line}: unexpected end of file: the array opened on line ${this.arrayLine} is not closed`,
      { path: source, line: this.line },
    );
  }

  private skipWhitespace(s: string, i: number): number {
    const n = s.length;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === LF) this.newLine(i);
      else if (c !== 32 && c !== 9 && c !== 13) return i;
      i++;
    }
    return i;
  }

  private newLine(i: number): void {
    this.line++;
    this.lineStart = this.offset + i + 1;
  }

  private endElement(out: SourceRecord[]): void {
    const line = this.elementLine;
    const excess = this.element.excessBytes();
    if (excess !== undefined) {
      this.element.reset();
      out.push(this.records.fail(line, recordTooBigMessage(line, excess, this.options.maxRecordBytes)));
      return;
    }
    const text = this.element.text();
    this.element.reset();
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw this.elementError(text, error as Error);
    }
    out.push(this.records.fromJson(line, value, text.length));
  }

  /** A SourceError for an element JSON.parse rejected, placed in the file where possible. */
  private elementError(text: string, error: Error): SourceError {
    let line = this.elementLine;
    let column = this.elementColumn;
    const position = / in JSON at position (\d+)/.exec(error.message);
    let reason = error.message;
    // Without a position in V8's message, point at the start of the element.
    let what = "invalid JSON in the element that starts here";
    if (position !== null) {
      what = "invalid JSON";
      reason = reason.replace(position[0], "");
      const at = Number(position[1]);
      let lineStart = -1;
      for (let k = text.indexOf("\n"); k !== -1 && k < at; k = text.indexOf("\n", k + 1)) {
        line++;
        lineStart = k;
      }
      column = lineStart === -1 ? column + at : at - lineStart;
    }
    const source = this.options.source;
    return new SourceError(`${source}: line ${line}, column ${column}: ${what}: ${reason}`, {
      path: source,
      line,
      column,
      cause: error,
    });
  }

  private syntaxError(i: number, what: string): SourceError {
    const source = this.options.source;
    const line = this.line;
    const column = this.offset + i - this.lineStart + 1;
    return new SourceError(`${source}: line ${line}, column ${column}: invalid JSON: ${what}`, {
      path: source,
      line,
      column,
    });
  }
}

function quote(s: string, i: number): string {
  return JSON.stringify(String.fromCodePoint(s.codePointAt(i) as number));
}
