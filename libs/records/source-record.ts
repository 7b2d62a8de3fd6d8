/** The data file formats {@link readRecords} understands. */
export type RecordFormat = "csv" | "json" | "jsonl";

/**
 * Why one record could not be read. `code` is always `"invalid_argument"` (the record, not the
 * service, is at fault); `message` starts with `line N:` and says what is wrong.
 */
export interface RecordError {
  code: "invalid_argument";
  message: string;
}

/**
 * One record read from a data file. Exactly one of `fields` and `error` is set.
 *
 * Records come out in input order, one per input record (a CSV data row, a JSON array element,
 * a JSONL line), including the ones that cannot be read, so a caller that writes one result
 * line per `SourceRecord` writes exactly one per input record. Blank lines are not records.
 */
export interface SourceRecord {
  /** 0-based number of the record in the file (CSV header row and blank lines not counted). */
  index: number;
  /** 1-based line of the file where the record starts. */
  line: number;
  /**
   * The record's id: the value of the `idField` field when that option is set and the field
   * is a non-empty string or a finite number (a number is turned into a string); otherwise
   * `String(index + 1)`, the 1-based record number. Ids are not checked for uniqueness.
   */
  id: string;
  /**
   * The record's fields, when it could be read. CSV values are always strings, exactly as in
   * the file (no type guessing: `""` stays `""`, `"39.1"` stays `"39.1"`); JSON values are as
   * parsed.
   */
  fields?: Record<string, unknown>;
  /** Why the record could not be read, when it could not. */
  error?: RecordError;
}

/** Default of {@link ReadRecordsOptions.maxFieldBytes}: 1 MiB. */
export const DEFAULT_MAX_FIELD_BYTES = 1024 * 1024;

/** Default of {@link ReadRecordsOptions.maxRecordBytes}: 16 MiB. */
export const DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024;

/** Options for {@link readRecords}. */
export interface ReadRecordsOptions {
  /**
   * Format of the file. Default: from the extension (`.csv`, `.json`, `.jsonl` or `.ndjson`,
   * any case). A `json` file whose first non-blank character is `{` rather than `[` is read as
   * JSONL (one object per line).
   */
  format?: RecordFormat | undefined;
  /**
   * Name of the field that holds each record's id. Default: none, so every record's id is its
   * 1-based record number. See {@link SourceRecord.id}.
   */
  idField?: string | undefined;
  /**
   * Largest allowed field, in UTF-8 bytes; a record with a bigger field becomes an error
   * record (`line 2: field "text" is 10485760 bytes, limit 1048576`). For CSV the size is the
   * value's; for JSON a string's UTF-8 size, or the size of the compact JSON text of an
   * object or array. Default: {@link DEFAULT_MAX_FIELD_BYTES} (1 MiB).
   */
  maxFieldBytes?: number | undefined;
  /**
   * Largest allowed record, in UTF-8 bytes of its text in the file; a bigger one becomes an
   * error record and is not kept in memory while it is skipped. Default:
   * {@link DEFAULT_MAX_RECORD_BYTES} (16 MiB).
   */
  maxRecordBytes?: number | undefined;
}

/**
 * Internal: a push parser for one format. `write` takes the next piece of decoded text and
 * appends the records it completes to `out`; `end` is called once at the end of the input.
 * Both throw {@link SourceError} for whole-file problems.
 */
export interface ChunkParser {
  write(text: string, out: SourceRecord[]): void;
  end(out: SourceRecord[]): void;
}
