import { describe, expect, it } from "vitest";
import { rowsToColumns } from "../batch/index.js";
import { compilePipeline, fitPipeline, isPipelineSpecError, type PipelineSpec, parsePipelineSpec } from "./index.js";

function spec(fields: unknown[], extra: Record<string, unknown> = {}): PipelineSpec {
  return parsePipelineSpec({ name: "t", model: "m", fields, ...extra });
}

function compileError(s: PipelineSpec): { path: string; message: string } {
  try {
    compilePipeline(s);
  } catch (e) {
    if (isPipelineSpecError(e)) return { path: e.path, message: e.message };
    throw e;
  }
  throw new Error("expected compilePipeline to throw");
}

describe("compilePipeline", () => {
  it("orders features by field, one-hot per category", () => {
    const p = compilePipeline(
      spec([
        { name: "a", type: "number" },
        { name: "c", type: "category", categories: ["x", "y"] },
        { name: "b", type: "boolean" },
      ]),
    );
    expect(p.featureNames).toEqual(["a", "c=x", "c=y", "b"]);
    expect(p.width).toBe(4);
    const r = p.transformRows([
      { a: 1.5, c: "y", b: true },
      { a: "2", c: "x", b: "no" },
    ]);
    expect(r.errors).toEqual([]);
    expect(r.rows).toEqual([0, 1]);
    expect([...r.features]).toEqual([1.5, 0, 1, 1, 2, 1, 0, 0]);
  });

  it("follows an explicit feature order and drops unlisted features", () => {
    const p = compilePipeline(
      spec(
        [
          { name: "a", type: "number" },
          { name: "c", type: "category", categories: ["x", "y"] },
        ],
        { features: ["c=y", "a"] },
      ),
    );
    expect(p.featureNames).toEqual(["c=y", "a"]);
    expect([
      ...p.transformRows([
        { a: 3, c: "y" },
        { a: 4, c: "x" },
      ]).features,
    ]).toEqual([1, 3, 0, 4]);
  });

  it("refuses features that are not there once categories are known", () => {
    const s = spec([{ name: "c", type: "category", categories: ["x"] }], { features: ["c=z"] });
    expect(compileError(s)).toMatchObject({ path: "features[0]" });
  });

  it.each([
    [{ name: "a", type: "number", fill: { strategy: "mean" } }, "fields[0].stats.mean"],
    [{ name: "a", type: "number", fill: { strategy: "median" } }, "fields[0].stats.median"],
    [{ name: "a", type: "number", fill: { strategy: "most_frequent" } }, "fields[0].stats.mostFrequent"],
    [{ name: "a", type: "number", scale: "zscore" }, "fields[0].stats.mean"],
    [{ name: "a", type: "number", scale: "minmax", stats: { min: 0 } }, "fields[0].stats.max"],
    [{ name: "a", type: "number", outliers: { zscore: 3 }, stats: { mean: 0 } }, "fields[0].stats.std"],
    [{ name: "c", type: "category" }, "fields[0].categories"],
  ])("throws when %j lacks fitted statistics", (field, path) => {
    const e = compileError(spec([field]));
    expect(e.path).toBe(path);
    expect(e.message).toMatch(/fit the spec first/);
  });

  it("throws when a category fill is not a category", () => {
    const s = spec([{ name: "c", type: "category", categories: ["x"], fill: { strategy: "constant", value: "q" } }]);
    expect(compileError(s).path).toBe("fields[0].fill");
  });
});

describe("transform", () => {
  it("fills with a constant, the mean, the median and the most frequent value", () => {
    const s = spec([
      { name: "k", type: "number", fill: { strategy: "constant", value: -7 } },
      { name: "mean", type: "number", fill: { strategy: "mean" } },
      { name: "med", type: "number", fill: { strategy: "median" } },
      { name: "mf", type: "number", fill: { strategy: "most_frequent" } },
      { name: "cat", type: "category", fill: { strategy: "most_frequent" } },
      { name: "flag", type: "boolean", fill: { strategy: "most_frequent" } },
    ]);
    const train = [
      { k: 1, mean: 1, med: 1, mf: 5, cat: "b", flag: true },
      { k: 1, mean: 2, med: 2, mf: 5, cat: "a", flag: "yes" },
      { k: 1, mean: 9, med: 100, mf: 3, cat: "b", flag: false },
    ];
    const fitted = fitPipeline(s, train);
    const p = compilePipeline(fitted);
    expect(p.featureNames).toEqual(["k", "mean", "med", "mf", "cat=a", "cat=b", "flag"]);
    const r = p.transformRows([{}, { k: null, mean: "NA", med: "", mf: Number.NaN, cat: "None", flag: "null" }]);
    expect(r.errors).toEqual([]);
    const row = [-7, 4, 2, 5, 0, 1, 1];
    expect([...r.features]).toEqual([...row, ...row]);
  });

  it("clips after the fill", () => {
    const p = compilePipeline(
      spec([{ name: "x", type: "number", clip: { min: 0, max: 10 }, fill: { strategy: "constant", value: 50 } }]),
    );
    expect([...p.transformRows([{ x: -3 }, { x: 4 }, { x: 11 }, {}]).features]).toEqual([0, 4, 10, 10]);
  });

  it("clips outliers or rejects them, by the fitted mean and std", () => {
    const stats = { mean: 10, std: 2 };
    const clip = compilePipeline(spec([{ name: "x", type: "number", outliers: { zscore: 3, action: "clip" }, stats }]));
    expect([...clip.transformRows([{ x: 10 }, { x: 17 }, { x: 2 }, { x: 16 }]).features]).toEqual([10, 16, 4, 16]);
    const reject = compilePipeline(spec([{ name: "x", type: "number", outliers: { zscore: 3 }, stats }]));
    const r = reject.transformRows([{ x: 10 }, { x: 17 }, { x: 16 }]);
    expect(r.rows).toEqual([0, 2]);
    expect(r.errors).toEqual([
      { row: 1, code: "invalid_argument", field: "x", message: expect.stringMatching(/"x": 17 is an outlier/) },
    ]);
  });

  it("scales with zscore and minmax", () => {
    const p = compilePipeline(
      spec([
        { name: "z", type: "number", scale: "zscore", stats: { mean: 10, std: 4 } },
        { name: "m", type: "number", scale: "minmax", stats: { min: 2, max: 6 } },
      ]),
    );
    expect([...p.transformRows([{ z: 14, m: 3 }]).features]).toEqual([1, 0.25]);
  });

  it("rejects a missing required field even with a fill, and a missing field without a fill", () => {
    const p = compilePipeline(
      spec([
        { name: "r", source: "Req", type: "number", required: true, fill: { strategy: "constant", value: 0 } },
        { name: "o", type: "number" },
      ]),
    );
    const r = p.transformRows([{ Req: 1, o: 2 }, { o: 2 }, { Req: 1 }, { Req: "NA", o: 1 }]);
    expect(r.rows).toEqual([0]);
    expect(r.errors).toEqual([
      { row: 1, code: "invalid_argument", field: "Req", message: 'required field "Req" is missing' },
      { row: 2, code: "invalid_argument", field: "o", message: 'field "o" is missing and has no fill rule' },
      { row: 3, code: "invalid_argument", field: "Req", message: 'required field "Req" is missing' },
    ]);
  });

  it("treats a named field the batch lacks entirely as missing, and ignores unknown columns", () => {
    const p = compilePipeline(spec([{ name: "x", type: "number", fill: { strategy: "constant", value: 3 } }]));
    const r = p.transformRows([{ other: "zzz" }, { other: 1 }]);
    expect(r.errors).toEqual([]);
    expect([...r.features]).toEqual([3, 3]);
  });

  it("reads numeric strings and rejects text, Infinity and other kinds", () => {
    const p = compilePipeline(spec([{ name: "x", type: "number", fill: { strategy: "constant", value: 0 } }]));
    const r = p.transformRows([
      { x: " 39.1 " },
      { x: "-1e2" },
      { x: "abc" },
      { x: Infinity },
      { x: "Infinity" },
      { x: -Infinity },
      { x: Number.NaN },
      { x: "NaN" },
      { x: "0x10" },
      { x: true },
      { x: { v: 1 } },
      { x: "1e999" },
    ]);
    expect(r.rows).toEqual([0, 1, 6, 7]);
    expect([...r.features]).toEqual([Math.fround(39.1), -100, 0, 0]);
    expect(r.errors.map((e) => [e.row, e.message])).toEqual([
      [2, 'field "x": "abc" is not a number'],
      [3, 'field "x": Infinity is not a valid number'],
      [4, 'field "x": "Infinity" is not a number'],
      [5, 'field "x": -Infinity is not a valid number'],
      [8, 'field "x": "0x10" is not a number'],
      [9, 'field "x": expected a number, got a boolean'],
      [10, 'field "x": expected a number, got an object or list'],
      [11, 'field "x": "1e999" is out of the number range'],
    ]);
    expect(r.errors.every((e) => e.code === "invalid_argument" && e.field === "x")).toBe(true);
  });

  it("rejects NaN when NaN is not a missing marker", () => {
    const p = compilePipeline(
      spec([{ name: "x", type: "number", fill: { strategy: "constant", value: 0 } }], { missing: [""] }),
    );
    const r = p.transformRows([{ x: Number.NaN }, { x: "NaN" }, { x: "" }]);
    expect(r.rows).toEqual([2]);
    expect(r.errors.map((e) => e.row)).toEqual([0, 1]);
  });

  it("applies per-field markers to strings and to numbers", () => {
    const p = compilePipeline(
      spec([{ name: "x", type: "number", missing: ["-1"], fill: { strategy: "constant", value: 5 } }]),
    );
    expect([...p.transformRows([{ x: -1 }, { x: "-1" }, { x: " -1.0 " }, { x: -2 }]).features]).toEqual([5, 5, 5, -2]);
  });

  it("keeps the error message short for a 10 MB value", () => {
    const huge = "9".repeat(5_000_000) + "x".repeat(5_000_000);
    const p = compilePipeline(
      spec([
        { name: "x", type: "number" },
        { name: "c", type: "category", categories: ["a"] },
      ]),
    );
    const r = p.transformRows([
      { x: huge, c: "a" },
      { x: 1, c: huge },
    ]);
    expect(r.rows).toEqual([]);
    expect(r.errors).toHaveLength(2);
    for (const e of r.errors) expect(e.message.length).toBeLessThan(160);
    expect(r.errors[0]?.message).toMatch(/^field "x": "9{60}"… \(10000000 chars\) is not a number$/);
    expect(r.errors[1]?.message).toMatch(/unknown category "9{60}"…/);
  });

  it("rejects an unknown category, or encodes it as all zeros with unknown: ignore", () => {
    const strict = compilePipeline(spec([{ name: "c", type: "category", categories: ["a", "b"] }]));
    const r = strict.transformRows([{ c: "b" }, { c: "z" }, { c: " a " }, { c: 3 }]);
    expect(r.rows).toEqual([0, 2]);
    expect([...r.features]).toEqual([0, 1, 1, 0]);
    expect(r.errors.map((e) => e.message)).toEqual([
      'field "c": unknown category "z"',
      'field "c": unknown category "3"',
    ]);
    const lax = compilePipeline(spec([{ name: "c", type: "category", categories: ["a", "b"], unknown: "ignore" }]));
    const l = lax.transformRows([{ c: "b" }, { c: "z" }]);
    expect(l.errors).toEqual([]);
    expect([...l.features]).toEqual([0, 1, 0, 0]);
  });

  it("reads booleans from booleans, words and 1/0", () => {
    const p = compilePipeline(spec([{ name: "b", type: "boolean" }]));
    const r = p.transformRows([
      { b: true },
      { b: false },
      { b: "TRUE" },
      { b: " no " },
      { b: "1" },
      { b: 0 },
      { b: 2 },
      { b: "maybe" },
    ]);
    expect(r.rows).toEqual([0, 1, 2, 3, 4, 5]);
    expect([...r.features]).toEqual([1, 0, 1, 0, 1, 0]);
    expect(r.errors.map((e) => e.message)).toEqual([
      'field "b": 2 is not a boolean (1 or 0)',
      'field "b": "maybe" is not a boolean (true/false, yes/no, 1/0)',
    ]);
  });

  it("gives every record exactly one of a row or an error, the first failing field naming it", () => {
    const p = compilePipeline(
      spec([
        { name: "a", type: "number" },
        { name: "c", type: "category", categories: ["x"] },
      ]),
    );
    const rows = Array.from({ length: 50 }, (_, i) => ({
      a: i % 3 === 0 ? "bad" : i,
      c: i % 5 === 0 ? "nope" : "x",
    }));
    const r = p.transformRows(rows);
    expect(r.rows.length + r.errors.length).toBe(rows.length);
    const seen = new Set([...r.rows, ...r.errors.map((e) => e.row)]);
    expect(seen.size).toBe(rows.length);
    expect(r.features.length).toBe(r.rows.length * p.width);
    expect(r.errors.find((e) => e.row === 0)?.field).toBe("a");
    expect(r.errors.find((e) => e.row === 5)?.field).toBe("c");
    expect(r.rows.map((_, i) => r.features[i * 2])).toEqual(r.rows);
  });

  it("gives the same features through columns as through rows", () => {
    const p = compilePipeline(
      spec([
        { name: "a", type: "number" },
        { name: "s", type: "category", categories: ["p", "q"] },
      ]),
    );
    const rows = [
      { a: 1, s: "q" },
      { a: "x", s: "p" },
      { a: "2.5", s: "p" },
    ];
    expect(p.transform(rowsToColumns(rows), rows.length)).toEqual(p.transformRows(rows));
  });

  it("handles an empty batch", () => {
    const p = compilePipeline(spec([{ name: "a", type: "number" }]));
    expect(p.transform([], 0)).toEqual({ features: new Float32Array(0), rows: [], errors: [] });
    expect(p.transformRows([])).toEqual({ features: new Float32Array(0), rows: [], errors: [] });
  });

  it("transforms 100k records quickly", () => {
    const p = compilePipeline(
      spec([
        { name: "a", type: "number", scale: "zscore", stats: { mean: 1, std: 2 }, clip: { min: 0 } },
        { name: "c", type: "category", categories: ["x", "y", "z"] },
        { name: "b", type: "boolean", fill: { strategy: "constant", value: false } },
      ]),
    );
    const n = 100_000;
    const rows = Array.from({ length: n }, (_, i) => ({
      a: i % 2 ? i : String(i),
      c: "xyz"[i % 3],
      b: i % 7 === 0 ? null : true,
    }));
    const columns = rowsToColumns(rows);
    const t0 = performance.now();
    const r = p.transform(columns, n);
    const ms = performance.now() - t0;
    expect(r.rows).toHaveLength(n);
    expect(ms).toBeLessThan(1000);
  });
});
