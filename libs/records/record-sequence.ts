import type { SourceRecord } from "./source-record.js";

/** Internal: the settings a {@link RecordSequence} applies to every record. */
export interface RecordSequenceOptions {
  idField: string | undefined;
  maxFieldBytes: number;
}

/**
 * Internal: numbers the records of one file in input order and gives each its id. Shared by
 * the format parsers so that index, id and error records mean the same in every format.
 */
export class RecordSequence {
  private next = 0;

  constructor(private readonly options: RecordSequenceOptions) {}

  /** The next record as an error record; `message` should start with `line N:`. */
  fail(line: number, message: string): SourceRecord {
    const index = this.next++;
    return { index, line, id: String(index + 1), error: { code: "invalid_argument", message } };
  }

  /**
   * The next record from a parsed JSON value: an error record unless it is an object whose
   * fields are all within `maxFieldBytes`.
   *
   * @param textLength Length of the value's JSON text, used to skip measuring fields of
   *   records too small to hold an oversized field.
   */
  fromJson(line: number, value: unknown, textLength: number): SourceRecord {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return this.fail(line, `line ${line}: expected a JSON object, got ${describeJson(value)}`);
    }
    const fields = value as Record<string, unknown>;
    const limit = this.options.maxFieldBytes;
    // A field's UTF-8 size is at most its JSON text's, which is at most 3 bytes per code unit.
    if (textLength * 3 > limit) {
      for (const name of Object.keys(fields)) {
        const bytes = jsonFieldBytes(fields[name], limit);
        if (bytes > limit) {
          return this.fail(line, fieldTooBigMessage(line, name, bytes, limit));
        }
      }
    }
    return this.fromFields(line, fields);
  }

  /** The next record from fields already checked for size. */
  fromFields(line: number, fields: Record<string, unknown>): SourceRecord {
    const idField = this.options.idField;
    let id: string | undefined;
    if (idField !== undefined && Object.hasOwn(fields, idField)) {
      const raw = fields[idField];
      if (typeof raw === "string") {
        if (raw !== "") id = raw;
      } else if (typeof raw === "number" && Number.isFinite(raw)) {
        id = String(raw);
      } else if (raw !== null && raw !== undefined) {
        return this.fail(
          line,
          `line ${line}: id field ${JSON.stringify(idField)} must be a string or a number, got ${describeJson(raw)}`,
        );
      }
    }
    const index = this.next++;
    return { index, line, id: id ?? String(index + 1), fields };
  }
}

/** Internal: the error message for a field over `maxFieldBytes`. */
export function fieldTooBigMessage(line: number, name: string, bytes: number, limit: number): string {
  return `line ${line}: field ${JSON.stringify(name)} is ${bytes} bytes, limit ${limit}`;
}

/** Internal: the error message for a record over `maxRecordBytes`. */
export function recordTooBigMessage(line: number, bytes: number, limit: number): string {
  return `line ${line}: record is ${bytes} bytes, limit ${limit}`;
}

function jsonFieldBytes(value: unknown, limit: number): number {
  if (typeof value === "string") {
    return value.length * 3 <= limit ? value.length : Buffer.byteLength(value);
  }
  if (typeof value === "object" && value !== null) {
    return Buffer.byteLength(JSON.stringify(value));
  }
  return 0;
}

function describeJson(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "string":
      return "a string";
    case "number":
      return "a number";
    case "boolean":
      return "a boolean";
    default:
      return typeof value;
  }
}
