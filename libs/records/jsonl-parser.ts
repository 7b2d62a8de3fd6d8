import { BoundedText } from "./bounded-text.js";
import { type RecordSequence, recordTooBigMessage } from "./record-sequence.js";
import type { ChunkParser, SourceRecord } from "./source-record.js";

/**
 * Internal: incremental JSONL (newline-delimited JSON) parser: one JSON object per line, LF
 * or CRLF line ends, blank lines skipped. A line that is not valid JSON (`NaN` and `Infinity`
 * are not) or not an object becomes an error record with the parser's message, and reading
 * goes on with the next line.
 */
export class JsonlParser implements ChunkParser {
  private readonly text: BoundedText;
  private line = 1;

  constructor(
    private readonly records: RecordSequence,
    private readonly maxRecordBytes: number,
  ) {
    this.text = new BoundedText(maxRecordBytes);
  }

  write(s: string, out: SourceRecord[]): void {
    let i = 0;
    for (;;) {
      const j = s.indexOf("\n", i);
      if (j === -1) {
        this.text.append(s, i, s.length);
        return;
      }
      this.text.append(s, i, j);
      this.endLine(out);
      this.line++;
      i = j + 1;
    }
  }

  end(out: SourceRecord[]): void {
    this.endLine(out);
  }

  private endLine(out: SourceRecord[]): void {
    const text = this.text;
    const line = this.line;
    text.trimTrailingCR();
    if (text.isBlank()) {
      text.reset();
      return;
    }
    const excess = text.excessBytes();
    if (excess !== undefined) {
      text.reset();
      out.push(this.records.fail(line, recordTooBigMessage(line, excess, this.maxRecordBytes)));
      return;
    }
    const json = text.text();
    text.reset();
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch (error) {
      out.push(this.records.fail(line, `line ${line}: invalid JSON: ${(error as Error).message}`));
      return;
    }
    out.push(this.records.fromJson(line, value, json.length));
  }
}
