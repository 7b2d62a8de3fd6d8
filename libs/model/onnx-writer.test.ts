import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MlpWeights, predictLogits, predictMlp, trainMlp } from "./mlp.js";
import { mlpToOnnx, readOnnxLabels, readOnnxMetadata } from "./onnx-writer.js";
import { createPrng } from "./prng.js";
import { ProtoWriter, readProtoFields } from "./protobuf-wire.js";

const WIDTH = 9;
const CLASSES = 3;

function trainingSet(seed: number): { x: Float32Array; y: Int32Array } {
  const p = createPrng(seed);
  const n = 90;
  const x = new Float32Array(n * WIDTH);
  const y = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    y[r] = r % CLASSES;
    for (let i = 0; i < WIDTH; i++) x[r * WIDTH + i] = p.normal(i % CLASSES === y[r] ? 1.5 : 0, 1);
  }
  return { x, y };
}

function train(seed: number): MlpWeights {
  const { x, y } = trainingSet(1);
  return trainMlp(x, WIDTH, y, CLASSES, { epochs: 15, hidden: [16, 12], seed });
}

describe("protobuf wire", () => {
  it("encodes varints, floats and strings as protobuf does", () => {
    // Known encodings from https://protobuf.dev/programming-guides/encoding/.
    expect(Array.from(new ProtoWriter().varint(1, 150).finish())).toEqual([0x08, 0x96, 0x01]);
    expect(Array.from(new ProtoWriter().string(2, "testing").finish())).toEqual([
      0x12, 0x07, 0x74, 0x65, 0x73, 0x74, 0x69, 0x6e, 0x67,
    ]);
    expect(Array.from(new ProtoWriter().varint(1, -1).finish())).toEqual([
      0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ]);
    expect(Array.from(new ProtoWriter().float(2, 1).finish())).toEqual([0x15, 0x00, 0x00, 0x80, 0x3f]);
    expect(Array.from(new ProtoWriter().varint(20, 2).finish())).toEqual([0xa0, 0x01, 0x02]);
    expect(Array.from(new ProtoWriter().packedVarints(4, [3, 270]).finish())).toEqual([0x22, 0x03, 0x03, 0x8e, 0x02]);
  });

  it("reads back what it writes", () => {
    const big = 2 ** 40 + 3;
    const bytes = new ProtoWriter().varint(3, big).string(14, "é").float(2, 0.5).finish();
    const fields = [...readProtoFields(bytes)];
    expect(fields.map((f) => f.field)).toEqual([3, 14, 2]);
    expect(fields[0]?.varint).toBe(BigInt(big));
    expect(new TextDecoder().decode(fields[1]?.bytes)).toBe("é");
    expect(() => [...readProtoFields(new Uint8Array([0x08, 0x96]))]).toThrow(RangeError);
  });
});

describe("mlpToOnnx", () => {
  const weights = train(5);
  const bytes = mlpToOnnx(weights, { labels: ["Adelie", "Chinstrap", "Gentoo"], metadata: { trainedOn: "synthetic" } });
  let session: ort.InferenceSession;

  beforeAll(async () => {
    session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  });
  afterAll(async () => {
    await session?.release();
  });

  it("gives identical bytes for the same seed and different bytes for another seed", () => {
    const again = mlpToOnnx(train(5), {
      labels: ["Adelie", "Chinstrap", "Gentoo"],
      metadata: { trainedOn: "synthetic" },
    });
    expect(Buffer.from(again).equals(Buffer.from(bytes))).toBe(true);
    expect(
      Buffer.from(
        mlpToOnnx(train(6), { labels: ["Adelie", "Chinstrap", "Gentoo"], metadata: { trainedOn: "synthetic" } }),
      ).equals(Buffer.from(bytes)),
    ).toBe(false);
  });

  it("declares the input and outputs that a server looks for", () => {
    expect(session.inputNames).toEqual(["features"]);
    expect(session.outputNames).toEqual(["probabilities", "logits"]);
    const input = session.inputMetadata[0];
    expect(input?.isTensor && input.type).toBe("float32");
    expect(input?.isTensor && input.shape).toEqual(["N", WIDTH]);
    const output = session.outputMetadata[0];
    expect(output?.isTensor && output.shape).toEqual(["N", CLASSES]);
  });

  for (const batch of [1, 37]) {
    it(`matches predictMlp to 1e-5 in onnxruntime for a batch of ${batch}`, async () => {
      const p = createPrng(100 + batch);
      const x = new Float32Array(batch * WIDTH);
      for (let k = 0; k < x.length; k++) x[k] = p.normal(0, 2);
      const result = await session.run({ features: new ort.Tensor("float32", x, [batch, WIDTH]) });
      const probs = result.probabilities as ort.Tensor;
      const logits = result.logits as ort.Tensor;
      expect(probs.dims).toEqual([batch, CLASSES]);
      const want = predictMlp(weights, x, WIDTH);
      const wantLogits = predictLogits(weights, x, WIDTH);
      const got = probs.data as Float32Array;
      const gotLogits = logits.data as Float32Array;
      for (let k = 0; k < want.length; k++) {
        expect(Math.abs((got[k] as number) - (want[k] as number))).toBeLessThan(1e-5);
        expect(Math.abs((gotLogits[k] as number) - (wantLogits[k] as number))).toBeLessThan(
          1e-4 * Math.max(1, Math.abs(wantLogits[k] as number)),
        );
      }
    });
  }

  it("stores the labels and metadata in metadata_props", () => {
    expect(readOnnxLabels(bytes)).toEqual(["Adelie", "Chinstrap", "Gentoo"]);
    expect(readOnnxMetadata(bytes)).toEqual({ labels: '["Adelie","Chinstrap","Gentoo"]', trainedOn: "synthetic" });
    expect(readOnnxLabels(mlpToOnnx(weights))).toBeUndefined();
  });

  it("writes ir_version 8 and opset 13 and honours custom names", async () => {
    const fields = [...readProtoFields(bytes)];
    expect(fields.find((f) => f.field === 1)?.varint).toBe(8n);
    const opset = fields.find((f) => f.field === 8)?.bytes as Uint8Array;
    expect([...readProtoFields(opset)].find((f) => f.field === 2)?.varint).toBe(13n);
    const custom = await ort.InferenceSession.create(
      mlpToOnnx(weights, { inputName: "x", outputName: "p", includeLogits: false }),
    );
    expect(custom.inputNames).toEqual(["x"]);
    expect(custom.outputNames).toEqual(["p"]);
    await custom.release();
  });

  it("rejects labels that do not match the class count", () => {
    expect(() => mlpToOnnx(weights, { labels: ["a", "b"] })).toThrow(RangeError);
    expect(() => mlpToOnnx({ layers: [] })).toThrow(RangeError);
  });
});
