import { describe, expect, it } from "vitest";
import { ValueKind } from "../gen/sluice/v1/batch_pb.js";
import { checkColumn, columnsToRows, rowsToColumns } from "./index.js";

describe("rowsToColumns", () => {
  it("makes the union of keys in first-seen order with one kind per record", () => {
    const columns = rowsToColumns([{ a: 1, b: "x" }, { c: true }, { b: "y", a: null }]);
    expect(columns.map((c) => c.name)).toEqual(["a", "b", "c"]);
    const [a, b, c] = columns;
    expect([...(a?.kinds ?? [])]).toEqual([ValueKind.NUMBER, ValueKind.MISSING, ValueKind.MISSING]);
    expect(a?.numbers).toEqual([1, 0, 0]);
    expect([...(b?.kinds ?? [])]).toEqual([ValueKind.STRING, ValueKind.MISSING, ValueKind.STRING]);
    expect(b?.strings).toEqual(["x", "y"]);
    expect([...(c?.kinds ?? [])]).toEqual([ValueKind.MISSING, ValueKind.BOOL, ValueKind.MISSING]);
    expect(c?.numbers).toEqual([0, 1, 0]);
  });

  it("keeps NaN and ±Infinity as numbers and marks objects and lists OTHER", () => {
    const [v] = rowsToColumns([
      { v: Number.NaN },
      { v: Infinity },
      { v: -Infinity },
      { v: { x: 1 } },
      { v: [1] },
      { v: undefined },
      { v: false },
    ]);
    expect([...(v?.kinds ?? [])]).toEqual([
      ValueKind.NUMBER,
      ValueKind.NUMBER,
      ValueKind.NUMBER,
      ValueKind.OTHER,
      ValueKind.OTHER,
      ValueKind.MISSING,
      ValueKind.BOOL,
    ]);
    expect(v?.numbers.slice(0, 3)).toEqual([Number.NaN, Infinity, -Infinity]);
    expect(v?.numbers[6]).toBe(0);
    expect(v?.strings).toEqual([]);
  });

  it("gives no columns for an empty batch", () => {
    expect(rowsToColumns([])).toEqual([]);
    expect(columnsToRows([], 0)).toEqual([]);
  });

  it("round-trips through columnsToRows (missing keys left out, OTHER as null)", () => {
    const rows = [
      { a: 1, s: "x", b: true },
      { s: "", o: { deep: 1 } },
      { a: -2.5, b: false, n: null },
    ];
    const back = columnsToRows(rowsToColumns(rows), rows.length);
    expect(back).toEqual([
      { a: 1, s: "x", b: true },
      { s: "", o: null },
      { a: -2.5, b: false },
    ]);
  });

  it("produces well-formed columns", () => {
    const rows = [{ a: "1", b: 2 }, { a: 3 }, {}];
    for (const c of rowsToColumns(rows)) expect(checkColumn(c, rows.length)).toBeUndefined();
  });

  it("handles a large batch in one pass", () => {
    const rows = Array.from({ length: 100_000 }, (_, i) => ({ id: i, name: `n${i}`, flag: i % 2 === 0 }));
    const t0 = performance.now();
    const columns = rowsToColumns(rows);
    const ms = performance.now() - t0;
    expect(columns).toHaveLength(3);
    expect(columns[1]?.strings).toHaveLength(100_000);
    expect(ms).toBeLessThan(1000);
  });
});

describe("checkColumn", () => {
  it("names the first problem of a malformed column", () => {
    const [c] = rowsToColumns([{ a: "x" }, { a: 1 }]);
    if (c === undefined) throw new Error("no column");
    expect(checkColumn(c, 3)).toMatch(/2 kinds for 3 records/);
    expect(checkColumn({ ...c, strings: [] }, 2)).toMatch(/0 strings for 1 string entries/);
    expect(checkColumn({ ...c, kinds: new Uint8Array([3, 9]) }, 2)).toMatch(/unknown value kind 9/);
  });
});
