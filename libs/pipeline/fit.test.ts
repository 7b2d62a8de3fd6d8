import { describe, expect, it } from "vitest";
import { fitPipeline, parsePipelineSpec } from "./index.js";

describe("fitPipeline", () => {
  const spec = parsePipelineSpec({
    name: "t",
    model: "m",
    missing: ["", "NA", "NaN"],
    label: { field: "y" },
    fields: [
      { name: "x", type: "number", missing: ["-1"] },
      { name: "c", type: "category" },
      { name: "fixed", type: "category", categories: ["q", "p"] },
      { name: "b", type: "boolean" },
      { name: "empty", type: "number" },
    ],
  });
  const rows = [
    { x: 1, c: "b", fixed: "p", b: true, y: "cat" },
    { x: "3", c: "a", fixed: "p", b: "no", y: "dog" },
    { x: "NA", c: "b", fixed: "q", b: "yes", y: "cat" },
    { x: -1, c: "NA", b: null, y: null },
    { x: "abc", c: null, b: "maybe", y: "NA" },
    { x: Infinity, c: " a " },
    { x: 8 },
  ];
  const fitted = fitPipeline(spec, rows);

  it("computes number stats over valid, non-missing values (numeric strings count)", () => {
    // Values 1, 3, 8: mean 4, population variance (9 + 1 + 16) / 3.
    expect(fitted.fields[0]?.stats).toEqual({
      mean: 4,
      std: Math.sqrt(26 / 3),
      min: 1,
      max: 8,
      median: 3,
      mostFrequent: 1,
    });
  });

  it("fits sorted categories and the most frequent one, keeping given categories", () => {
    expect(fitted.fields[1]?.categories).toEqual(["a", "b"]);
    // a and b both appear twice (" a " trims to a): the smallest wins.
    expect(fitted.fields[1]?.stats).toEqual({ mostFrequent: "a" });
    expect(fitted.fields[2]?.categories).toEqual(["q", "p"]);
    expect(fitted.fields[2]?.stats).toEqual({ mostFrequent: "p" });
  });

  it("fits booleans and label classes", () => {
    expect(fitted.fields[3]?.stats).toEqual({ mean: 2 / 3, mostFrequent: true });
    expect(fitted.label?.classes).toEqual(["cat", "dog"]);
  });

  it("leaves stats out for a field with no values, and does not change its input", () => {
    expect(fitted.fields[4]?.stats).toBeUndefined();
    expect(spec.fields[0]?.stats).toBeUndefined();
    expect(spec.fields[1]?.categories).toBeUndefined();
    expect(spec.label?.classes).toBeUndefined();
  });

  it("gives an even count's median as the middle mean", () => {
    const s = parsePipelineSpec({ name: "t", model: "m", fields: [{ name: "x", type: "number" }] });
    expect(fitPipeline(s, [{ x: 4 }, { x: 1 }, { x: 3 }, { x: 10 }]).fields[0]?.stats?.median).toBe(3.5);
  });

  it("fits an empty batch to no stats", () => {
    const s = parsePipelineSpec({ name: "t", model: "m", fields: [{ name: "x", type: "number" }] });
    expect(fitPipeline(s, []).fields[0]?.stats).toBeUndefined();
  });
});
