import { describe, expect, it } from "vitest";
import {
  DEFAULT_MISSING_MARKERS,
  isPipelineSpecError,
  type PipelineSpecError,
  parsePipelineSpec,
  stringifyPipelineSpec,
} from "./index.js";

const base = {
  name: "p",
  model: "m",
  fields: [
    { name: "x", type: "number", fill: { strategy: "mean" }, scale: "zscore" },
    { name: "c", source: "Colour", type: "category", categories: ["red", "blue"] },
    { name: "b", type: "boolean", fill: { strategy: "constant", value: false } },
  ],
};

function specWith(patch: (s: Record<string, unknown> & { fields: Array<Record<string, unknown>> }) => void): unknown {
  const s = structuredClone(base) as Record<string, unknown> & { fields: Array<Record<string, unknown>> };
  patch(s);
  return s;
}

function errorOf(input: unknown): PipelineSpecError {
  try {
    parsePipelineSpec(input);
  } catch (e) {
    if (isPipelineSpecError(e)) return e;
    throw e;
  }
  throw new Error("expected a PipelineSpecError");
}

describe("parsePipelineSpec", () => {
  it("fills in the defaults", () => {
    const spec = parsePipelineSpec(base);
    expect(spec.input).toBe("features");
    expect(spec.missing).toEqual([...DEFAULT_MISSING_MARKERS]);
    expect(spec.fields[0]).toEqual({
      name: "x",
      source: "x",
      type: "number",
      required: false,
      missing: [],
      fill: { strategy: "mean" },
      scale: "zscore",
      unknown: "error",
    });
    expect(spec.fields[1]?.source).toBe("Colour");
    expect(spec.fields[2]?.fill).toEqual({ strategy: "constant", value: false });
  });

  it("reads YAML and JSON text alike", () => {
    const yaml = `
name: p
model: m
modelVersion: 1
missing: ["", "."]
label: { field: y, classes: [a, b] }
fields:
  - name: x
    type: number
    missing: [-1]
    clip: { min: 0 }
    outliers: { zscore: 3, action: clip }
`;
    const spec = parsePipelineSpec(yaml);
    expect(spec.modelVersion).toBe("1");
    expect(spec.missing).toEqual(["", "."]);
    expect(spec.label).toEqual({ field: "y", classes: ["a", "b"] });
    expect(spec.fields[0]?.missing).toEqual(["-1"]);
    expect(spec.fields[0]?.clip).toEqual({ min: 0 });
    expect(spec.fields[0]?.outliers).toEqual({ zscore: 3, action: "clip" });
    expect(parsePipelineSpec(JSON.stringify(base))).toEqual(parsePipelineSpec(base));
  });

  it("parses its own output to an equal spec (objects and YAML text)", () => {
    const spec = parsePipelineSpec(base);
    expect(parsePipelineSpec(spec)).toEqual(spec);
    expect(parsePipelineSpec(stringifyPipelineSpec(spec))).toEqual(spec);
  });

  it.each([
    [
      "an unknown top-level key",
      (s: Record<string, unknown>) => (s.colour = 1),
      "colour",
      /unknown key "colour".*allowed keys: name, model/,
    ],
    [
      "an unknown field key",
      (s: { fields: Array<Record<string, unknown>> }) => ((s.fields[2] as Record<string, unknown>).colour = 1),
      "fields[2].colour",
      /unknown key "colour" in fields\[2\]; allowed keys: name, source, type/,
    ],
    [
      "a bad fill strategy",
      (s: { fields: Array<Record<string, unknown>> }) =>
        ((s.fields[2] as Record<string, unknown>).fill = { strategy: "avg" }),
      "fields[2].fill.strategy",
      /must be one of constant, mean, median, most_frequent; got "avg"/,
    ],
    [
      "an unknown fill key",
      (s: { fields: Array<Record<string, unknown>> }) =>
        ((s.fields[0] as Record<string, unknown>).fill = { strategy: "mean", vaule: 1 }),
      "fields[0].fill.vaule",
      /unknown key "vaule" in fields\[0\]\.fill; allowed keys: strategy, value/,
    ],
    [
      "mean fill on a category",
      (s: { fields: Array<Record<string, unknown>> }) =>
        ((s.fields[1] as Record<string, unknown>).fill = { strategy: "mean" }),
      "fields[1].fill.strategy",
      /only applies to number fields; for category fields use constant or most_frequent/,
    ],
    [
      "constant fill without value",
      (s: { fields: Array<Record<string, unknown>> }) =>
        ((s.fields[0] as Record<string, unknown>).fill = { strategy: "constant" }),
      "fields[0].fill.value",
      /"value" is required with strategy constant/,
    ],
    [
      "a string constant on a number field",
      (s: { fields: Array<Record<string, unknown>> }) =>
        ((s.fields[0] as Record<string, unknown>).fill = { strategy: "constant", value: "zero" }),
      "fields[0].fill.value",
      /finite number/,
    ],
    [
      "a bad type",
      (s: { fields: Array<Record<string, unknown>> }) => ((s.fields[0] as Record<string, unknown>).type = "float"),
      "fields[0].type",
      /must be one of number, category, boolean; got "float"/,
    ],
    [
      "a missing type",
      (s: { fields: Array<Record<string, unknown>> }) => delete (s.fields[0] as Record<string, unknown>).type,
      "fields[0].type",
      /"type" is required/,
    ],
    [
      "a bad scale",
      (s: { fields: Array<Record<string, unknown>> }) => ((s.fields[0] as Record<string, unknown>).scale = "log"),
      "fields[0].scale",
      /one of none, zscore, minmax/,
    ],
    [
      "scale on a category",
      (s: { fields: Array<Record<string, unknown>> }) => ((s.fields[1] as Record<string, unknown>).scale = "zscore"),
      "fields[1].scale",
      /only applies to number fields/,
    ],
    [
      "clip on a boolean",
      (s: { fields: Array<Record<string, unknown>> }) => ((s.fields[2] as Record<string, unknown>).clip = { min: 0 }),
      "fields[2].clip",
      /only applies to number fields/,
    ],
    [
      "clip min above max",
      (s: { fields: Array<Record<string, unknown>> }) =>
        ((s.fields[0] as Record<string, unknown>).clip = { min: 2, max: 1 }),
      "fields[0].clip",
      /must not exceed/,
    ],
    [
      "a bad outlier action",
      (s: { fields: Array<Record<string, unknown>> }) =>
        ((s.fields[0] as Record<string, unknown>).outliers = { zscore: 3, action: "drop" }),
      "fields[0].outliers.action",
      /one of clip, error; got "drop"/,
    ],
    [
      "a non-positive outlier zscore",
      (s: { fields: Array<Record<string, unknown>> }) =>
        ((s.fields[0] as Record<string, unknown>).outliers = { zscore: 0 }),
      "fields[0].outliers.zscore",
      /positive number/,
    ],
    [
      "duplicate categories",
      (s: { fields: Array<Record<string, unknown>> }) =>
        ((s.fields[1] as Record<string, unknown>).categories = ["a", "a"]),
      "fields[1].categories[1]",
      /duplicate entry "a"/,
    ],
    [
      "categories on a number",
      (s: { fields: Array<Record<string, unknown>> }) => ((s.fields[0] as Record<string, unknown>).categories = ["a"]),
      "fields[0].categories",
      /only applies to category fields/,
    ],
    [
      "a bad unknown rule",
      (s: { fields: Array<Record<string, unknown>> }) => ((s.fields[1] as Record<string, unknown>).unknown = "drop"),
      "fields[1].unknown",
      /one of error, ignore/,
    ],
    [
      "an unknown stats key",
      (s: { fields: Array<Record<string, unknown>> }) =>
        ((s.fields[0] as Record<string, unknown>).stats = { mean: 1, avg: 2 }),
      "fields[0].stats.avg",
      /allowed keys: mean, std, min, max, median, mostFrequent/,
    ],
    [
      "a non-boolean required",
      (s: { fields: Array<Record<string, unknown>> }) => ((s.fields[0] as Record<string, unknown>).required = "yes"),
      "fields[0].required",
      /true or false/,
    ],
    [
      "duplicate field names",
      (s: { fields: Array<Record<string, unknown>> }) => ((s.fields[2] as Record<string, unknown>).name = "x"),
      "fields[2].name",
      /duplicate field name "x"/,
    ],
    ["a missing name", (s: Record<string, unknown>) => delete s.name, "name", /"name" is required/],
    ["an empty model", (s: Record<string, unknown>) => (s.model = " "), "model", /non-empty string/],
    ["no fields", (s: Record<string, unknown>) => (s.fields = []), "fields", /non-empty list/],
    [
      "a bad label key",
      (s: Record<string, unknown>) => (s.label = { field: "y", clases: ["a"] }),
      "label.clases",
      /allowed keys: field, classes/,
    ],
    [
      "a feature no field makes",
      (s: Record<string, unknown>) => (s.features = ["x", "c=red", "nope"]),
      "features[2]",
      /"nope" names no feature/,
    ],
    [
      "a category field used as a plain feature",
      (s: Record<string, unknown>) => (s.features = ["c"]),
      "features[0]",
      /names no feature/,
    ],
    [
      "a non-string missing marker",
      (s: Record<string, unknown>) => (s.missing = ["", { a: 1 }]),
      "missing[1]",
      /must be a string; got an object/,
    ],
  ])("rejects %s with its path", (_what, patch, path, message) => {
    const e = errorOf(specWith(patch as (s: Record<string, unknown>) => void));
    expect(e.path).toBe(path);
    expect(e.message.startsWith(`${path}: `)).toBe(true);
    expect(e.message).toMatch(message);
  });

  it("rejects text that is neither JSON nor YAML, and a non-object", () => {
    expect(errorOf("name: [unclosed").path).toBe("");
    expect(errorOf("just a string").message).toMatch(/expected an object/);
    expect(errorOf(42).message).toMatch(/expected an object/);
  });

  it("is an Error with a guard", () => {
    const e = errorOf({});
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("PipelineSpecError");
    expect(isPipelineSpecError(new Error("x"))).toBe(false);
  });
});
