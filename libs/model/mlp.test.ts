import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { accuracy, type MlpWeights, predictLogits, predictMlp, selectRows, splitTrainTest, trainMlp } from "./mlp.js";
import { createPrng } from "./prng.js";

/** Three Gaussian blobs in 4 dimensions, well apart. */
function blobs(n: number, seed: number): { x: Float32Array; y: Int32Array } {
  const p = createPrng(seed);
  const centres = [
    [3, 0, 0, 1],
    [-3, 2, 0, -1],
    [0, -3, 3, 0],
  ];
  const x = new Float32Array(n * 4);
  const y = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    const c = r % 3;
    y[r] = c;
    for (let i = 0; i < 4; i++) x[r * 4 + i] = (centres[c]?.[i] ?? 0) + p.normal(0, 0.7);
  }
  return { x, y };
}

interface Penguin {
  Species: string;
  Island: string;
  "Beak Length (mm)": number | null;
  "Beak Depth (mm)": number | null;
  "Flipper Length (mm)": number | null;
  "Body Mass (g)": number | null;
  Sex: string | null;
}

/** Penguins → 9 features: 4 z-scored numbers, one-hot island (3), one-hot sex (2, missing → 0 0). */
function penguins(): { x: Float32Array; y: Int32Array; species: string[] } {
  // vega-datasets' "exports" map does not list its data files, so read the file by path.
  const path = new URL("../../node_modules/vega-datasets/data/penguins.json", import.meta.url);
  const rows = (JSON.parse(readFileSync(path, "utf8")) as Penguin[]).filter(
    (r) =>
      r["Beak Length (mm)"] != null &&
      r["Beak Depth (mm)"] != null &&
      r["Flipper Length (mm)"] != null &&
      r["Body Mass (g)"] != null,
  );
  const numeric = ["Beak Length (mm)", "Beak Depth (mm)", "Flipper Length (mm)", "Body Mass (g)"] as const;
  const islands = ["Biscoe", "Dream", "Torgersen"];
  const species = ["Adelie", "Chinstrap", "Gentoo"];
  const stats = numeric.map((k) => {
    const v = rows.map((r) => r[k] as number);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    return { mean, sd };
  });
  const x = new Float32Array(rows.length * 9);
  const y = new Int32Array(rows.length);
  rows.forEach((r, i) => {
    const o = i * 9;
    numeric.forEach((k, j) => {
      const s = stats[j] as { mean: number; sd: number };
      x[o + j] = ((r[k] as number) - s.mean) / s.sd;
    });
    const island = islands.indexOf(r.Island);
    if (island >= 0) x[o + 4 + island] = 1;
    if (r.Sex === "MALE") x[o + 7] = 1;
    else if (r.Sex === "FEMALE") x[o + 8] = 1;
    y[i] = species.indexOf(r.Species);
  });
  return { x, y, species };
}

describe("trainMlp", () => {
  it("separates well-apart blobs on held-out rows", () => {
    const { x, y } = blobs(300, 3);
    const { train, test } = splitTrainTest(300, 0.25, 1, y);
    const w = trainMlp(
      selectRows(x, 4, train),
      4,
      y.filter((_, i) => train.includes(i)),
      3,
      { epochs: 30, hidden: [16, 16], seed: 1 },
    );
    const probs = predictMlp(w, selectRows(x, 4, test), 4);
    expect(
      accuracy(
        probs,
        Array.from(test, (r) => y[r] as number),
        3,
      ),
    ).toBeGreaterThanOrEqual(0.97);
  });

  it("gives bit-identical weights for the same seed and different ones for another seed", () => {
    const { x, y } = blobs(120, 4);
    const opts = { epochs: 10, hidden: [8, 8], seed: 11 };
    const a = trainMlp(x, 4, y, 3, opts);
    const b = trainMlp(x, 4, y, 3, opts);
    const c = trainMlp(x, 4, y, 3, { ...opts, seed: 12 });
    expect(a.layers.map((l) => [l.inDim, l.outDim])).toEqual([
      [4, 8],
      [8, 8],
      [8, 3],
    ]);
    const bits = (w: MlpWeights) =>
      w.layers.map((l) => [Buffer.from(l.weight.buffer).toString("hex"), Buffer.from(l.bias.buffer).toString("hex")]);
    expect(bits(a)).toEqual(bits(b));
    expect(bits(a)[0]?.[0]).not.toBe(bits(c)[0]?.[0]);
  });

  it("shrinks the weights with an L2 penalty", () => {
    const { x, y } = blobs(120, 5);
    const norm = (w: ReturnType<typeof trainMlp>) =>
      w.layers.reduce((s, l) => s + l.weight.reduce((a, v) => a + v * v, 0), 0);
    const plain = trainMlp(x, 4, y, 3, { epochs: 20, hidden: [8], seed: 1 });
    const penalised = trainMlp(x, 4, y, 3, { epochs: 20, hidden: [8], seed: 1, l2: 0.1 });
    expect(norm(penalised)).toBeLessThan(norm(plain));
  });

  it("returns probabilities that sum to one and match softmax of the logits", () => {
    const { x, y } = blobs(30, 6);
    const w = trainMlp(x, 4, y, 3, { epochs: 2, hidden: [5], seed: 1 });
    const probs = predictMlp(w, x, 4);
    const logits = predictLogits(w, x, 4);
    for (let r = 0; r < 30; r++) {
      const [p0 = 0, p1 = 0, p2 = 0] = probs.subarray(r * 3, r * 3 + 3);
      const [l0 = 0, l1 = 0] = logits.subarray(r * 3, r * 3 + 2);
      expect(p0 + p1 + p2).toBeCloseTo(1, 5);
      expect(Math.exp(l0 - l1)).toBeCloseTo(p0 / p1, 3);
    }
  });

  it("rejects inconsistent shapes and labels", () => {
    expect(() => trainMlp(new Float32Array(7), 2, [0, 1, 0], 2)).toThrow(RangeError);
    expect(() => trainMlp(new Float32Array(6), 2, [0, 1], 2)).toThrow(RangeError);
    expect(() => trainMlp(new Float32Array(4), 2, [0, 2], 2)).toThrow(RangeError);
    const w = trainMlp(new Float32Array([0, 1, 1, 0]), 2, [0, 1], 2, { epochs: 1 });
    expect(() => predictMlp(w, new Float32Array(3), 3)).toThrow(RangeError);
  });

  it("classifies penguin species from the real data set at ≥ 0.95 held-out accuracy", () => {
    const { x, y } = penguins();
    expect(y.length).toBe(342);
    const { train, test } = splitTrainTest(y.length, 0.2, 42, y);
    const started = performance.now();
    const w = trainMlp(
      selectRows(x, 9, train),
      9,
      Array.from(train, (r) => y[r] as number),
      3,
      { seed: 42 },
    );
    const ms = performance.now() - started;
    const acc = accuracy(
      predictMlp(w, selectRows(x, 9, test), 9),
      Array.from(test, (r) => y[r] as number),
      3,
    );
    console.log(
      `penguins: ${train.length} train / ${test.length} test rows, accuracy ${acc.toFixed(4)}, training ${ms.toFixed(0)} ms`,
    );
    expect(acc).toBeGreaterThanOrEqual(0.95);
  });
});

describe("splitTrainTest", () => {
  it("is deterministic, disjoint, complete and stratified", () => {
    const labels = Array.from({ length: 100 }, (_, i) => (i < 70 ? 0 : i < 90 ? 1 : 2));
    const a = splitTrainTest(100, 0.2, 42, labels);
    const b = splitTrainTest(100, 0.2, 42, labels);
    expect(Array.from(a.test)).toEqual(Array.from(b.test));
    expect(Array.from(a.test)).not.toEqual(Array.from(splitTrainTest(100, 0.2, 43, labels).test));
    expect([...a.train, ...a.test].sort((p, q) => p - q)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    const counts = [0, 0, 0];
    for (const r of a.test) counts[labels[r] as number] = (counts[labels[r] as number] as number) + 1;
    expect(counts).toEqual([14, 4, 2]);
  });

  it("splits without labels by the fraction", () => {
    const { train, test } = splitTrainTest(10, 0.3, 1);
    expect(test.length).toBe(3);
    expect(train.length).toBe(7);
  });
});
