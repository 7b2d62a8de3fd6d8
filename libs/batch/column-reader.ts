import { type Column, ValueKind } from "../gen/sluice/v1/batch_pb.js";

const STRING = ValueKind.STRING;
const NUMBER = ValueKind.NUMBER;
const BOOL = ValueKind.BOOL;
const OTHER = ValueKind.OTHER;

/**
 * Random access to one column of a batch: the value kind, number and string
 * of any record in O(1).
 *
 * The sparse `strings` list is indexed once, when the reader is made (one
 * `Int32Array` of `count` entries), never per row. A column that is absent from
 * the batch (`undefined`) reads as `MISSING` everywhere, and so does every
 * record past the end of a short column.
 */
export class ColumnReader {
  /** Column name; empty for an absent column. */
  readonly name: string;
  /** Number of records in the batch. */
  readonly count: number;
  private readonly kinds: Uint8Array;
  private readonly numbers: readonly number[];
  private readonly strings: readonly string[];
  /** Index into `strings` of each record, or -1 when the record holds no string. */
  private readonly stringIndex: Int32Array;

  /**
   * @param column the column, or `undefined` for a column the batch lacks.
   * @param count number of records in the batch.
   */
  constructor(column: Column | undefined, count: number) {
    this.name = column?.name ?? "";
    this.count = count;
    this.kinds = column?.kinds ?? new Uint8Array(0);
    this.numbers = column?.numbers ?? [];
    this.strings = column?.strings ?? [];
    const index = new Int32Array(count).fill(-1);
    const n = Math.min(count, this.kinds.length);
    const available = this.strings.length;
    let s = 0;
    for (let r = 0; r < n && s < available; r++) {
      if (this.kinds[r] === STRING) {
        index[r] = s++;
      }
    }
    this.stringIndex = index;
  }

  /**
   * The value kind of record `row`; `MISSING` past the end of the
   * column. `UNSPECIFIED` (0) may come from a malformed column;
   * callers treat it as missing.
   */
  kind(row: number): ValueKind {
    return row < this.kinds.length ? (this.kinds[row] as ValueKind) : ValueKind.MISSING;
  }

  /** The number of record `row` (1/0 for a bool, 0 for other kinds). */
  number(row: number): number {
    return this.numbers[row] ?? 0;
  }

  /** The string of record `row`, or `undefined` when it does not hold one. */
  string(row: number): string | undefined {
    const i = row < this.count ? (this.stringIndex[row] as number) : -1;
    return i < 0 ? undefined : this.strings[i];
  }

  /**
   * The record's value as a plain JavaScript value: a number, string or
   * boolean, `null` for `OTHER` (its value is not carried), `undefined` when
   * missing.
   */
  value(row: number): number | string | boolean | null | undefined {
    switch (this.kind(row)) {
      case NUMBER:
        return this.number(row);
      case STRING:
        return this.string(row);
      case BOOL:
        return this.number(row) === 1;
      case OTHER:
        return null;
      default:
        return undefined;
    }
  }
}
