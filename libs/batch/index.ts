/**
 * Columnar codec for micro-batches: records to `sluice.v1.Column`s and back,
 * and O(1) per-record access to a column.
 *
 * @module
 */

export { ColumnReader } from "./column-reader.js";
export { checkColumn, columnsToRows, rowsToColumns } from "./columns.js";
