import { create } from "@bufbuild/protobuf";
import { type Column, ColumnSchema, ValueKind } from "../gen/sluice/v1/batch_pb.js";

// Local copies of the enum values: the hot loops compare bytes, not enum members.
const MISSING = ValueKind.MISSING;
const NUMBER = ValueKind.NUMBER;
const STRING = ValueKind.STRING;
const BOOL = ValueKind.BOOL;
const OTHER = ValueKind.OTHER;

interface ColumnBuilder {
  readonly name: string;
  readonly kinds: Uint8Array;
  readonly numbers: number[];
  readonly strings: string[];
}

function newBuilder(name: string, count: number): ColumnBuilder {
  return {
    name,
    kinds: new Uint8Array(count).fill(MISSING),
    numbers: new Array<number>(count).fill(0),
    strings: [],
  };
}

/**
 * Turns records into the columns of one micro-batch.
 *
 * Columns are the union of the records' own keys, in first-seen order. Per
 * record and column the value kind is:
 * - `MISSING` for `null`, `undefined` or an absent key;
 * - `NUMBER` for any number, NaN and ±Infinity included (the pipeline decides
 *   what they mean);
 * - `STRING` for a string (stored in the sparse `strings` list, record order);
 * - `BOOL` for a boolean (stored as 1/0 in `numbers`);
 * - `OTHER` for anything else (objects, arrays, bigints); its value is not
 *   carried.
 *
 * One pass over the records; the only allocations are the columns themselves.
 * A `null` or non-object entry in `rows` counts as a record with no fields.
 */
export function rowsToColumns(rows: ReadonlyArray<Readonly<Record<string, unknown>>>): Column[] {
  const count = rows.length;
  const builders: ColumnBuilder[] = [];
  const byName = new Map<string, ColumnBuilder>();
  for (let r = 0; r < count; r++) {
    const row = rows[r];
    if (row === null || typeof row !== "object") {
      continue;
    }
    for (const key in row) {
      if (!Object.hasOwn(row, key)) {
        continue;
      }
      let b = byName.get(key);
      if (b === undefined) {
        b = newBuilder(key, count);
        byName.set(key, b);
        builders.push(b);
      }
      const v = row[key];
      switch (typeof v) {
        case "number":
          b.kinds[r] = NUMBER;
          b.numbers[r] = v;
          break;
        case "string":
          b.kinds[r] = STRING;
          b.strings.push(v);
          break;
        case "boolean":
          b.kinds[r] = BOOL;
          b.numbers[r] = v ? 1 : 0;
          break;
        case "undefined":
          break;
        default:
          if (v !== null) {
            b.kinds[r] = OTHER;
          }
      }
    }
  }
  const columns = new Array<Column>(builders.length);
  for (let i = 0; i < builders.length; i++) {
    const b = builders[i] as ColumnBuilder;
    columns[i] = create(ColumnSchema, {
      name: b.name,
      kinds: b.kinds,
      numbers: b.numbers,
      strings: b.strings,
    });
  }
  return columns;
}

/**
 * Turns columns back into `count` records; the inverse of {@link rowsToColumns}
 * for tests and debugging, not for the hot path.
 *
 * A `MISSING` (or unspecified) entry leaves the key out of the record; an
 * `OTHER` entry becomes `null`, because the column does not carry its value.
 * Columns shorter than `count` read as missing past their end.
 */
export function columnsToRows(columns: readonly Column[], count: number): Array<Record<string, unknown>> {
  const rows = new Array<Record<string, unknown>>(count);
  for (let r = 0; r < count; r++) {
    rows[r] = {};
  }
  for (const column of columns) {
    const { kinds, numbers, strings, name } = column;
    let s = 0;
    const n = Math.min(count, kinds.length);
    for (let r = 0; r < n; r++) {
      const row = rows[r] as Record<string, unknown>;
      switch (kinds[r]) {
        case NUMBER:
          row[name] = numbers[r] ?? 0;
          break;
        case STRING:
          row[name] = strings[s++] ?? "";
          break;
        case BOOL:
          row[name] = numbers[r] === 1;
          break;
        case OTHER:
          row[name] = null;
          break;
        default:
          break;
      }
    }
  }
  return rows;
}

/**
 * Checks that a column received from the wire is well formed for a batch of
 * `count` records: one kind byte per record with a known kind, one number per
 * record, and exactly as many strings as `STRING` entries.
 *
 * Returns a description of the first problem, or `undefined` when the column
 * is fine. Never throws.
 */
export function checkColumn(column: Column, count: number): string | undefined {
  const { kinds, numbers, strings, name } = column;
  if (kinds.length !== count) {
    return `column "${name}" has ${kinds.length} kinds for ${count} records`;
  }
  if (numbers.length !== count) {
    return `column "${name}" has ${numbers.length} numbers for ${count} records`;
  }
  let stringKinds = 0;
  for (let r = 0; r < count; r++) {
    const k = kinds[r] as number;
    if (k === STRING) {
      stringKinds++;
    } else if (k < MISSING || k > OTHER) {
      return `column "${name}" has unknown value kind ${k} at record ${r}`;
    }
  }
  if (stringKinds !== strings.length) {
    return `column "${name}" has ${strings.length} strings for ${stringKinds} string entries`;
  }
  return undefined;
}
