import { describe, expect, it } from "vitest";
import { ValueKind } from "../gen/sluice/v1/batch_pb.js";
import { ColumnReader, rowsToColumns } from "./index.js";

describe("ColumnReader", () => {
  it("reads any record in O(1), strings included", () => {
    const rows = [{ v: "a" }, { v: 2 }, { v: "b" }, {}, { v: true }, { v: [1] }, { v: "c" }];
    const [column] = rowsToColumns(rows);
    const reader = new ColumnReader(column, rows.length);
    expect(reader.name).toBe("v");
    expect(reader.string(6)).toBe("c");
    expect(reader.string(0)).toBe("a");
    expect(reader.string(2)).toBe("b");
    expect(reader.string(1)).toBeUndefined();
    expect(reader.kind(1)).toBe(ValueKind.NUMBER);
    expect(reader.number(1)).toBe(2);
    expect(reader.kind(3)).toBe(ValueKind.MISSING);
    expect(rows.map((_, r) => reader.value(r))).toEqual(["a", 2, "b", undefined, true, null, "c"]);
  });

  it("reads an absent column as missing everywhere", () => {
    const reader = new ColumnReader(undefined, 3);
    expect([0, 1, 2].map((r) => reader.kind(r))).toEqual([ValueKind.MISSING, ValueKind.MISSING, ValueKind.MISSING]);
    expect(reader.string(1)).toBeUndefined();
    expect(reader.value(2)).toBeUndefined();
  });

  it("reads past the end of a short column as missing", () => {
    const [column] = rowsToColumns([{ v: "a" }]);
    const reader = new ColumnReader(column, 4);
    expect(reader.kind(3)).toBe(ValueKind.MISSING);
    expect(reader.string(3)).toBeUndefined();
    expect(reader.string(0)).toBe("a");
  });
});
