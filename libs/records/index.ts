/**
 * Streaming readers that turn a user's data file (CSV, JSON array, JSONL) into records for
 * `sluice send FILE`: one {@link SourceRecord} per input record, in input order, with
 * per-record errors instead of dropped records.
 *
 * @module
 */
export {
  formatFromPath,
  type ParseRecordsOptions,
  parseRecordBatches,
  parseRecords,
  readRecordBatches,
  readRecords,
} from "./read-records.js";
export { isSourceError, SourceError, type SourceErrorOptions } from "./source-error.js";
export {
  DEFAULT_MAX_FIELD_BYTES,
  DEFAULT_MAX_RECORD_BYTES,
  type ReadRecordsOptions,
  type RecordError,
  type RecordFormat,
  type SourceRecord,
} from "./source-record.js";
