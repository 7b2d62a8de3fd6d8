import { createReadStream } from "node:fs";
import { extname } from "node:path";
import { CsvParser } from "./csv-parser.js";
import { JsonArrayParser } from "./json-array-parser.js";
import { JsonlParser } from "./jsonl-parser.js";
import { RecordSequence } from "./record-sequence.js";
import { SourceError } from "./source-error.js";
import {
  type ChunkParser,
  DEFAULT_MAX_FIELD_BYTES,
  DEFAULT_MAX_RECORD_BYTES,
  type ReadRecordsOptions,
  type RecordFormat,
  type SourceRecord,
} from "./source-record.js";

/** Size of the pieces the file is read in. */
const CHUNK_BYTES = 64 * 1024;

const EXTENSION_FORMATS: Readonly<Record<string, RecordFormat>> = {
  ".csv": "csv",
  ".json": "json",
  ".jsonl": "jsonl",
  ".ndjson": "jsonl",
};

/**
 * The record format a file name implies: `.csv` → `csv`, `.json` → `json`, `.jsonl` and
 * `.ndjson` → `jsonl` (any case); `undefined` for any other name.
 */
export function formatFromPath(path: string): RecordFormat | undefined {
  return EXTENSION_FORMATS[extname(path).toLowerCase()];
}

/**
 * Streams the records of a CSV, JSON-array or JSONL data file, in input order, one
 * {@link SourceRecord} per input record: a record that cannot be read is an error record, and
 * reading goes on. The file is read in 64 KiB chunks and parsed incrementally, so memory stays
 * flat however big the file is (one record, at most `maxRecordBytes`, is held at a time).
 *
 * - CSV (RFC 4180): the first non-blank row is the header and names the fields; values stay
 *   strings; LF or CRLF; blank lines skipped. A row with a different number of fields than the
 *   header, an unterminated quoted field, or text after a closing quote is an error record.
 * - JSON: an array of objects; an element that is not an object is an error record. A `json`
 *   file that starts with `{` is read as JSONL.
 * - JSONL: one object per line; blank lines skipped; a line that does not parse is an error
 *   record with the parser's message.
 *
 * The file must be UTF-8; a byte-order mark at its start is dropped. An empty file (or one
 * with only a BOM and whitespace) has no records. Breaking out of the loop closes the file.
 * For a hot path, {@link readRecordBatches} gives the same records an array at a time.
 *
 * @param path File to read.
 * @param options Format, id field and size limits; see {@link ReadRecordsOptions}.
 * @throws {SourceError} (from the iteration) when the format cannot be told from the
 *   extension, the file is missing or unreadable, is not valid UTF-8, is JSON but not an
 *   array of records, is not valid JSON, or has duplicate (or broken) CSV header names. The
 *   check is made as the file streams: for a defect deep in the file, every record before it
 *   is yielded first, then the error is thrown.
 * @throws {RangeError} (from the iteration) when `maxFieldBytes` or `maxRecordBytes` is not a
 *   positive integer.
 */
export async function* readRecords(
  path: string,
  options: ReadRecordsOptions = {},
): AsyncGenerator<SourceRecord, void, undefined> {
  for await (const batch of readRecordBatches(path, options)) yield* batch;
}

/**
 * {@link readRecords} an array at a time: each array holds the records completed by one
 * 64 KiB chunk of the file (never empty), so a caller that cuts micro-batches pays one
 * `await` per chunk instead of one per record. Same records, order and errors.
 *
 * @param path File to read.
 * @param options Format, id field and size limits; see {@link ReadRecordsOptions}.
 * @throws {SourceError} and {@link RangeError} as {@link readRecords} does.
 */
export function readRecordBatches(
  path: string,
  options: ReadRecordsOptions = {},
): AsyncGenerator<SourceRecord[], void, undefined> {
  const format = options.format ?? formatFromPath(path);
  if (format === undefined) {
    return failing(
      new SourceError(
        `${path}: cannot tell the format from the file name; use a .csv, .json, .jsonl or .ndjson extension or pass a format`,
        { path },
      ),
    );
  }
  return parseRecordBatches(fileChunks(path), { ...options, format, source: path });
}

/** Options for {@link parseRecords} and {@link parseRecordBatches}. */
export interface ParseRecordsOptions extends ReadRecordsOptions {
  /** Format of the data (required: there is no file name to tell it from). */
  format: RecordFormat;
  /** Name of the data in error messages. Default: `"input"`. */
  source?: string | undefined;
}

/**
 * Streams the records of CSV, JSON-array or JSONL data from any source of chunks (a stdin
 * stream, an HTTP body, test data): the engine behind {@link readRecords}, with the same
 * records and errors. Byte chunks are decoded as UTF-8 (sequences split across chunks are
 * fine); string chunks are taken as already decoded.
 *
 * @param chunks The data, in order.
 * @param options Format (required), name for messages, id field and size limits.
 * @throws {SourceError} as {@link readRecords} does; errors thrown by `chunks` itself pass
 *   through unchanged.
 * @throws {RangeError} when `maxFieldBytes` or `maxRecordBytes` is not a positive integer.
 */
export async function* parseRecords(
  chunks: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>,
  options: ParseRecordsOptions,
): AsyncGenerator<SourceRecord, void, undefined> {
  for await (const batch of parseRecordBatches(chunks, options)) yield* batch;
}

/**
 * {@link parseRecords} an array at a time: each array holds the records completed by one
 * chunk (never empty). Same records, order and errors.
 *
 * @param chunks The data, in order.
 * @param options Format (required), name for messages, id field and size limits.
 * @throws {SourceError} and {@link RangeError} as {@link parseRecords} does.
 */
export async function* parseRecordBatches(
  chunks: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>,
  options: ParseRecordsOptions,
): AsyncGenerator<SourceRecord[], void, undefined> {
  const source = options.source ?? "input";
  const maxFieldBytes = positiveInteger("maxFieldBytes", options.maxFieldBytes ?? DEFAULT_MAX_FIELD_BYTES);
  const maxRecordBytes = positiveInteger("maxRecordBytes", options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES);
  const records = new RecordSequence({ idField: options.idField, maxFieldBytes });
  const decoder = new Utf8Decoder(source);
  let parser: ChunkParser | undefined;
  let leadingBlank = "";
  let out: SourceRecord[] = [];

  const choose = (text: string): ChunkParser | undefined => {
    switch (options.format) {
      case "csv":
        return new CsvParser(records, { source, maxFieldBytes, maxRecordBytes });
      case "jsonl":
        return new JsonlParser(records, maxRecordBytes);
      case "json": {
        // Decide between an array and JSONL on the first non-blank character.
        const first = text.search(/[^ \t\r\n]/);
        if (first === -1) return undefined;
        if (text[first] === "{") return new JsonlParser(records, maxRecordBytes);
        return new JsonArrayParser(records, { source, maxRecordBytes });
      }
    }
  };

  const feed = (text: string): void => {
    if (parser === undefined) {
      parser = choose(text);
      if (parser === undefined) {
        leadingBlank += text;
        return;
      }
      if (leadingBlank !== "") {
        parser.write(leadingBlank, out);
        leadingBlank = "";
      }
    }
    parser.write(text, out);
  };

  for await (const chunk of chunks) {
    let failure: unknown;
    try {
      feed(typeof chunk === "string" ? decoder.takeString(chunk) : decoder.decode(chunk));
    } catch (error) {
      failure = error;
    }
    // The records before a whole-file problem still come out, in order, before it is thrown.
    if (out.length > 0) {
      yield out;
      out = [];
    }
    if (failure !== undefined) throw failure;
  }
  let failure: unknown;
  try {
    feed(decoder.finish());
    parser?.end(out);
  } catch (error) {
    failure = error;
  }
  if (out.length > 0) yield out;
  if (failure !== undefined) throw failure;
}

// biome-ignore lint/correctness/useYield: it exists to throw from the first next().
async function* failing(error: Error): AsyncGenerator<never, void, undefined> {
  throw error;
}

/** The chunks of a file, with `fs` errors turned into {@link SourceError}s. */
async function* fileChunks(path: string): AsyncGenerator<Buffer, void, undefined> {
  const stream = createReadStream(path, { highWaterMark: CHUNK_BYTES });
  try {
    for await (const chunk of stream) yield chunk as Buffer;
  } catch (error) {
    throw new SourceError(`${path}: ${describeFsError(error)}`, { path, cause: error });
  } finally {
    stream.destroy();
  }
}

function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case "ENOENT":
      return "no such file";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory, not a file";
    default:
      return `cannot read the file: ${(error as Error).message}`;
  }
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/**
 * Strict streaming UTF-8 decoding that drops a leading byte-order mark and, on a bad byte,
 * throws a SourceError with its byte offset and line.
 */
class Utf8Decoder {
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });
  private bytesBefore = 0;
  private lineFeedsBefore = 0;
  private first = true;

  constructor(private readonly source: string) {}

  decode(chunk: Uint8Array): string {
    let text: string;
    try {
      text = this.decoder.decode(chunk, { stream: true });
    } catch (error) {
      throw this.invalid(chunk, error);
    }
    this.first = false;
    this.bytesBefore += chunk.length;
    this.lineFeedsBefore += countLineFeeds(chunk);
    return text;
  }

  takeString(chunk: string): string {
    const text = this.first && chunk.charCodeAt(0) === 0xfeff ? chunk.slice(1) : chunk;
    if (chunk !== "") this.first = false;
    return text;
  }

  finish(): string {
    try {
      return this.decoder.decode();
    } catch (error) {
      // A multi-byte sequence cut off by the end of the file.
      throw this.invalid(new Uint8Array(0), error);
    }
  }

  private invalid(chunk: Uint8Array, cause: unknown): SourceError {
    const source = this.source;
    if (this.first && chunk.length >= 2) {
      const bom = (chunk[0] << 8) | (chunk[1] as number);
      if (bom === 0xfffe || bom === 0xfeff) {
        return new SourceError(
          `${source}: not valid UTF-8: the file looks like UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8`,
          { path: source, line: 1, cause },
        );
      }
    }
    const at = Math.max(0, firstInvalidUtf8(chunk));
    const line = this.lineFeedsBefore + countLineFeeds(chunk.subarray(0, at)) + 1;
    return new SourceError(
      `${source}: line ${line}: not valid UTF-8 (bad byte at offset ${this.bytesBefore + at}); save the file as UTF-8`,
      { path: source, line, cause },
    );
  }
}

function countLineFeeds(bytes: Uint8Array): number {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let count = 0;
  for (let i = buffer.indexOf(10); i !== -1; i = buffer.indexOf(10, i + 1)) count++;
  return count;
}

/**
 * Offset of the first byte of `bytes` that starts an invalid UTF-8 sequence, or -1. Leading
 * continuation bytes are skipped: they may finish a sequence begun in the previous chunk.
 */
function firstInvalidUtf8(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < 3 && i < n && ((bytes[i] as number) & 0xc0) === 0x80) i++;
  while (i < n) {
    const c = bytes[i] as number;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let low = 0x80;
    let high = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) low = 0xa0; // overlong
      if (c === 0xed) high = 0x9f; // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) low = 0x90; // overlong
      if (c === 0xf4) high = 0x8f; // above U+10FFFF
    } else return i;
    // A sequence cut off by the end of the chunk is checked as far as it goes.
    const end = Math.min(n, i + need + 1);
    for (let k = i + 1; k < end; k++) {
      const b = bytes[k] as number;
      if (k === i + 1 ? b < low || b > high : (b & 0xc0) !== 0x80) return i;
    }
    i += need + 1;
  }
  return -1;
}
