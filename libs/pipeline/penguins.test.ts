import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { compilePipeline, fitPipeline, labelIndex, parsePipelineSpec } from "./index.js";

// vega-datasets' exports do not expose data/, so go from its entry point.
const require = createRequire(import.meta.url);
const dataDir = join(dirname(require.resolve("vega-datasets")), "..", "data");
const rows = JSON.parse(readFileSync(join(dataDir, "penguins.json"), "utf8")) as Array<Record<string, unknown>>;
const specPath = fileURLToPath(new URL("../../deploy/pipelines/penguins.yaml", import.meta.url));
const spec = parsePipelineSpec(readFileSync(specPath, "utf8"));

function column(name: string): number[] {
  return rows.map((r) => r[name]).filter((v): v is number => typeof v === "number");
}

function meanStd(values: number[]): { mean: number; std: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return { mean, std: Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length) };
}

describe("penguins pipeline (deploy/pipelines/penguins.yaml)", () => {
  it("is unfitted as deployed", () => {
    expect(spec.fields.every((f) => f.stats === undefined)).toBe(true);
    expect(() => compilePipeline(spec)).toThrow(/fit the spec first/);
  });

  const fitted = fitPipeline(spec, rows);
  const pipeline = compilePipeline(fitted);
  const result = pipeline.transformRows(rows);

  it("transforms all 344 records into 9 features with no errors", () => {
    expect(rows).toHaveLength(344);
    expect(pipeline.width).toBe(9);
    expect(pipeline.featureNames).toEqual([
      "island=Biscoe",
      "island=Dream",
      "island=Torgersen",
      "beak_length",
      "beak_depth",
      "flipper_length",
      "body_mass",
      "sex=FEMALE",
      "sex=MALE",
    ]);
    expect(result.errors).toEqual([]);
    expect(result.rows).toHaveLength(344);
    expect(result.features).toHaveLength(344 * 9);
    expect(result.features.every((v) => Number.isFinite(v))).toBe(true);
  });

  it("fits the statistics the data gives by hand", () => {
    const beak = column("Beak Length (mm)");
    expect(beak).toHaveLength(342);
    const { mean, std } = meanStd(beak);
    const sorted = [...beak].sort((a, b) => a - b);
    const stats = fitted.fields[1]?.stats;
    expect(stats?.mean).toBeCloseTo(mean, 10);
    expect(stats?.std).toBeCloseTo(std, 10);
    expect(stats?.median).toBe(((sorted[170] as number) + (sorted[171] as number)) / 2);
    const males = rows.filter((r) => r.Sex === "MALE").length;
    const females = rows.filter((r) => r.Sex === "FEMALE").length;
    expect(males).toBeGreaterThan(females);
    expect(fitted.fields[5]?.stats?.mostFrequent).toBe("MALE");
  });

  it("encodes the first record and fills the all-missing fourth", () => {
    const f = result.features;
    const beak = meanStd(column("Beak Length (mm)"));
    const mass = meanStd(column("Body Mass (g)"));
    // Record 0: Torgersen, beak 39.1 mm, 3750 g, MALE.
    expect([...f.subarray(0, 3)]).toEqual([0, 0, 1]);
    expect(f[3]).toBeCloseTo((39.1 - beak.mean) / beak.std, 5);
    expect(f[6]).toBeCloseTo((3750 - mass.mean) / mass.std, 5);
    expect([...f.subarray(7, 9)]).toEqual([0, 1]);
    // Record 3: Torgersen with every measurement and Sex null: medians and MALE.
    const row3 = f.subarray(27, 36);
    const beakMedian = fitted.fields[1]?.stats?.median as number;
    expect(row3[3]).toBeCloseTo((beakMedian - beak.mean) / beak.std, 5);
    const massMedian = fitted.fields[4]?.stats?.median as number;
    expect(row3[6]).toBeCloseTo((massMedian - mass.mean) / mass.std, 5);
    expect([...row3.subarray(7)]).toEqual([0, 1]);
  });

  it("treats Sex '.' as missing", () => {
    const dot = rows.findIndex((r) => r.Sex === ".");
    expect(dot).toBeGreaterThanOrEqual(0);
    expect([...result.features.subarray(dot * 9 + 7, dot * 9 + 9)]).toEqual([0, 1]);
  });

  it("labels every record with its species", () => {
    const labels = labelIndex(fitted, rows);
    expect(labels.errors).toEqual([]);
    const counts = [0, 0, 0];
    for (const k of labels.indices) counts[k] = (counts[k] ?? 0) + 1;
    expect(counts).toEqual([152, 68, 124]);
  });
});
