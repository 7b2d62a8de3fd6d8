import { create, type JsonObject } from "@bufbuild/protobuf";
import { DataType, type Tensor, TensorSchema } from "../gen/sluice/v1/batch_pb.js";

/** A float32 matrix [rows, cols] as a wire tensor. */
export function float32Tensor(name: string, data: Float32Array, rows: number, cols: number): Tensor {
  return create(TensorSchema, {
    name,
    dtype: DataType.FP32,
    shape: [BigInt(rows), BigInt(cols)],
    raw: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  });
}

/** Thrown when a tensor's bytes do not match its dtype and shape. */
export class TensorShapeError extends Error {
  override readonly name = "TensorShapeError";
}

/**
 * A wire tensor's float32 elements with its [rows, cols] (a 1-d tensor is [n, 1]).
 * A decoded `bytes` field is a view into the receive buffer, usually not 4-byte aligned,
 * so the bytes are copied when they are not aligned.
 * @throws TensorShapeError when the dtype is not FP32 or the byte count does not fit the shape.
 */
export function readFloat32(t: Tensor): { data: Float32Array; rows: number; cols: number } {
  if (t.dtype !== DataType.FP32) throw new TensorShapeError(`tensor ${t.name} is ${DataType[t.dtype]}, expected FP32`);
  const dims = t.shape.map(Number);
  if (dims.length === 0 || dims.length > 2 || dims.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new TensorShapeError(`tensor ${t.name} has shape [${dims.join(", ")}], expected [rows, cols]`);
  }
  const rows = dims[0] as number;
  const cols = dims.length === 2 ? (dims[1] as number) : 1;
  if (t.raw.byteLength !== rows * cols * 4) {
    throw new TensorShapeError(
      `tensor ${t.name} has ${t.raw.byteLength} bytes, shape [${rows}, ${cols}] needs ${rows * cols * 4}`,
    );
  }
  // new Uint8Array(view) copies; Buffer#slice would not (it is subarray for Buffers).
  const raw = t.raw.byteOffset % 4 === 0 ? t.raw : new Uint8Array(t.raw);
  return { data: new Float32Array(raw.buffer, raw.byteOffset, rows * cols), rows, cols };
}

/** A float32 output tensor, decoded once per batch. */
export interface DecodedOutput {
  name: string;
  data: Float32Array;
  cols: number;
}

/** Decodes every output tensor of a batch. @throws TensorShapeError as {@link readFloat32}. */
export function decodeOutputs(tensors: readonly Tensor[]): DecodedOutput[] {
  return tensors.map((t) => ({ name: t.name, ...readFloat32(t) }));
}

/** What a model gave one record besides its tensors. */
export interface RowMeta {
  label: string | undefined;
  model: string;
  modelVersion: string;
}

/**
 * The outputs of one record as the JSON a caller sees: `label` (when the model declares
 * labels), one array per output tensor, `model` and `model_version`.
 */
export function rowOutputs(outs: readonly DecodedOutput[], row: number, meta: RowMeta): JsonObject {
  const outputs: JsonObject = {};
  if (meta.label !== undefined) outputs.label = meta.label;
  for (const o of outs) outputs[o.name] = Array.from(o.data.subarray(row * o.cols, (row + 1) * o.cols));
  if (meta.model) outputs.model = meta.model;
  if (meta.modelVersion) outputs.model_version = meta.modelVersion;
  return outputs;
}
