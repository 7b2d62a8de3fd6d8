import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { beforeAll, describe, expect, it } from "vitest";
import { TensorBatchSchema } from "../../libs/gen/sluice/v1/batch_pb.js";
import { createPrng, mlpToOnnx, predictMlp, trainMlp } from "../../libs/model/index.js";
import { float32Tensor, readFloat32 } from "../../libs/tensor/index.js";
import { DynamicBatcher } from "./dynamic-batcher.js";
import { type LoadedModel, loadModel } from "./model-repository.js";

const width = 4;
let model: LoadedModel;
let weights: ReturnType<typeof trainMlp>;

function batch(id: number, rows: number, seed: number, priority = 0, cols = width) {
  const prng = createPrng(seed);
  const data = Float32Array.from({ length: rows * cols }, () => prng.normal());
  return {
    data,
    msg: create(TensorBatchSchema, {
      batchId: BigInt(id),
      keys: Array.from({ length: rows }, (_, i) => BigInt(id * 1000 + i)),
      model: "toy",
      inputs: [float32Tensor("features", data, rows, cols)],
      priority,
    }),
  };
}

beforeAll(async () => {
  const prng = createPrng(1);
  const x = Float32Array.from({ length: 200 * width }, () => prng.normal());
  const y = Int32Array.from({ length: 200 }, (_, i) => ((x[i * width] as number) > 0 ? 1 : 0));
  weights = trainMlp(x, width, y, 2, { epochs: 5, hidden: [8, 8] });
  const repo = mkdtempSync(path.join(tmpdir(), "sluice-repo-"));
  mkdirSync(path.join(repo, "toy", "3"), { recursive: true });
  writeFileSync(path.join(repo, "toy", "3", "model.onnx"), mlpToOnnx(weights, { labels: ["neg", "pos"] }));
  writeFileSync(path.join(repo, "toy", "config.json"), JSON.stringify({ labels: ["neg", "pos"], maxBatchSize: 64 }));
  model = await loadModel(repo, "toy");
});

describe("DynamicBatcher", () => {
  it("loads the repository layout: highest version, width and labels from config", () => {
    expect(model.version).toBe("3");
    expect(model.width).toBe(width);
    expect(model.labels).toEqual(["neg", "pos"]);
  });

  it("joins batches that arrive while busy into one run and splits the outputs back", async () => {
    const b = new DynamicBatcher(model);
    const inputs = [batch(1, 5, 1), batch(2, 7, 2), batch(3, 1, 3), batch(4, 20, 4)];
    const results = await Promise.all(inputs.map((i) => b.submit(i.msg)));
    expect(b.stats.runs).toBeLessThan(inputs.length);
    expect(b.stats.records).toBe(33);
    results.forEach((r, k) => {
      const input = inputs[k] as (typeof inputs)[number];
      expect(r.batchId).toBe(input.msg.batchId);
      expect(r.keys).toEqual(input.msg.keys);
      const probs = readFloat32(r.outputs.find((o) => o.name === "probabilities") ?? (r.outputs[0] as never));
      const expected = predictMlp(weights, input.data, width);
      expect(probs.rows).toBe(input.msg.keys.length);
      probs.data.forEach((p, i) => {
        expect(Math.abs(p - (expected[i] as number))).toBeLessThan(1e-5);
      });
      r.labels.forEach((label, row) => {
        const top = (expected[row * 2 + 1] as number) > (expected[row * 2] as number) ? "pos" : "neg";
        expect(label).toBe(top);
      });
    });
  });

  it("never puts more than maxBatchSize records in one run", async () => {
    const b = new DynamicBatcher(model, { maxBatchSize: 10 });
    const inputs = Array.from({ length: 6 }, (_, i) => batch(10 + i, 4, i));
    await Promise.all(inputs.map((i) => b.submit(i.msg)));
    // 24 records, at most 2 batches of 4 per run (8 ≤ 10 < 12), the first alone.
    expect(b.stats.runs).toBeGreaterThanOrEqual(3);
  });

  it("answers a batch of the wrong width with invalid_argument for each record", async () => {
    const b = new DynamicBatcher(model);
    const r = await b.submit(batch(20, 3, 1, 0, width + 1).msg);
    expect(r.keys).toEqual([]);
    expect(r.errors.map((e) => e.code)).toEqual(["invalid_argument", "invalid_argument", "invalid_argument"]);
    expect(r.errors[0]?.message).toContain(`takes ${width} features, got ${width + 1}`);
  });

  it("refuses records beyond the queue limit with resource_exhausted and serves the rest", async () => {
    const b = new DynamicBatcher(model, { maxQueueRecords: 10 });
    const results = await Promise.all([batch(30, 6, 1), batch(31, 6, 2), batch(32, 6, 3)].map((i) => b.submit(i.msg)));
    const refused = results.filter((r) => r.errors.some((e) => e.code === "resource_exhausted"));
    const served = results.filter((r) => r.keys.length > 0);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(served.length).toBeGreaterThanOrEqual(1);
    expect(refused.length + served.length).toBe(3);
  });

  it("runs higher priority first when a queue forms", async () => {
    const b = new DynamicBatcher(model, { maxBatchSize: 4 });
    const order: bigint[] = [];
    const first = b.submit(batch(40, 4, 1).msg).then((r) => order.push(r.batchId));
    const low = b.submit(batch(41, 4, 2, 0).msg).then((r) => order.push(r.batchId));
    const high = b.submit(batch(42, 4, 3, 5).msg).then((r) => order.push(r.batchId));
    await Promise.all([first, low, high]);
    expect(order).toEqual([40n, 42n, 41n]);
  });
});
