import type { MlpLayer, MlpWeights } from "./mlp.js";
import { ProtoWriter, readProtoFields, WireType } from "./protobuf-wire.js";

// Field numbers and enum values from onnx/onnx.proto (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto).
const Model = {
  irVersion: 1,
  producerName: 2,
  producerVersion: 3,
  modelVersion: 5,
  docString: 6,
  graph: 7,
  opsetImport: 8,
  metadataProps: 14,
} as const;
const OperatorSetId = { domain: 1, version: 2 } as const;
const Graph = { node: 1, name: 2, initializer: 5, docString: 10, input: 11, output: 12 } as const;
const Node = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
const Attribute = { name: 1, f: 2, i: 3, s: 4, t: 5, floats: 7, ints: 8, type: 20 } as const;
const AttributeType = { FLOAT: 1, INT: 2, STRING: 3 } as const;
const Tensor = { dims: 1, dataType: 2, name: 8, rawData: 9 } as const;
const TensorDataType = { FLOAT: 1, INT64: 7 } as const;
const ValueInfo = { name: 1, type: 2 } as const;
const TypeProto = { tensorType: 1 } as const;
const TypeTensor = { elemType: 1, shape: 2 } as const;
const TensorShape = { dim: 1 } as const;
const Dimension = { dimValue: 1, dimParam: 2 } as const;
const StringStringEntry = { key: 1, value: 2 } as const;

/** The ONNX IR version {@link mlpToOnnx} writes (8: ONNX 1.10+, ONNX Runtime 1.10+). */
export const ONNX_IR_VERSION = 8;
/** The default-domain opset {@link mlpToOnnx} writes. */
export const ONNX_OPSET = 13;
/** The metadata key under which {@link mlpToOnnx} stores the class labels as a JSON array. */
export const LABELS_METADATA_KEY = "labels";

/** Options for {@link mlpToOnnx}. */
export interface MlpOnnxOptions {
  /** Name of the float input [N, width]. Default `"features"`. */
  inputName?: string;
  /** Name of the softmax output [N, classes]. Default `"probabilities"`. */
  outputName?: string;
  /** Name of the second output holding the raw logits [N, classes]. Default `"logits"`. */
  logitsName?: string;
  /** Also expose the logits as a graph output. Default true. */
  includeLogits?: boolean;
  /** Class names, one per output column; stored in metadata_props under `"labels"` as JSON. */
  labels?: string[];
  /** ModelProto.producer_name. Default `"sluice"`. */
  producer?: string;
  /** ModelProto.producer_version. Default `"0.1.0"`. */
  producerVersion?: string;
  /** ModelProto.model_version. Default 1. */
  modelVersion?: number;
  /** GraphProto.name. Default `"mlp"`. */
  graphName?: string;
  /** ModelProto.doc_string; omitted when not given. */
  docString?: string;
  /** Extra metadata_props, written after `labels` in insertion order. */
  metadata?: Record<string, string>;
}

function tensorProto(name: string, dims: number[], values: Float32Array): Uint8Array {
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  // raw_data is always little-endian (onnx.proto, TensorProto.raw_data).
  for (let k = 0; k < values.length; k++) view.setFloat32(k * 4, values[k] as number, true);
  const w = new ProtoWriter();
  for (const d of dims) w.varint(Tensor.dims, d);
  w.varint(Tensor.dataType, TensorDataType.FLOAT);
  w.string(Tensor.name, name);
  w.bytes(Tensor.rawData, raw);
  return w.finish();
}

/** A float tensor ValueInfoProto; a string dimension is symbolic (dim_param). */
function floatValueInfo(name: string, shape: Array<number | string>): Uint8Array {
  const shapeWriter = new ProtoWriter();
  for (const d of shape) {
    const dim = new ProtoWriter();
    if (typeof d === "string") dim.string(Dimension.dimParam, d);
    else dim.varint(Dimension.dimValue, d);
    shapeWriter.message(TensorShape.dim, dim.finish());
  }
  const tensorType = new ProtoWriter()
    .varint(TypeTensor.elemType, TensorDataType.FLOAT)
    .message(TypeTensor.shape, shapeWriter.finish());
  const type = new ProtoWriter().message(TypeProto.tensorType, tensorType.finish());
  return new ProtoWriter().string(ValueInfo.name, name).message(ValueInfo.type, type.finish()).finish();
}

type AttributeValue = { int: number } | { float: number } | { string: string };

function attributeProto(name: string, value: AttributeValue): Uint8Array {
  const w = new ProtoWriter().string(Attribute.name, name);
  if ("int" in value) w.varint(Attribute.i, value.int).varint(Attribute.type, AttributeType.INT);
  else if ("float" in value) w.float(Attribute.f, value.float).varint(Attribute.type, AttributeType.FLOAT);
  else w.string(Attribute.s, value.string).varint(Attribute.type, AttributeType.STRING);
  return w.finish();
}

function nodeProto(
  opType: string,
  name: string,
  inputs: string[],
  outputs: string[],
  attributes: Record<string, AttributeValue> = {},
): Uint8Array {
  const w = new ProtoWriter();
  for (const i of inputs) w.string(Node.input, i);
  for (const o of outputs) w.string(Node.output, o);
  w.string(Node.name, name);
  w.string(Node.opType, opType);
  for (const [key, value] of Object.entries(attributes)) w.message(Node.attribute, attributeProto(key, value));
  return w.finish();
}

/**
 * Writes a trained perceptron as a self-contained ONNX model (ModelProto bytes).
 *
 * The graph is `Gemm(transB=1) → Relu → … → Gemm → Softmax(axis=1)`: input `features` float
 * [N, width] with a symbolic batch dimension `N`, output `probabilities` float [N, classes] and,
 * unless `includeLogits` is false, `logits` float [N, classes]. Initializers are
 * `layer<k>.weight` ([outDim, inDim]) and `layer<k>.bias` ([outDim]). IR version 8, opset 13 of
 * the default domain. The same weights and options always give the same bytes.
 *
 * ONNX Runtime's JavaScript API does not expose model metadata; use {@link readOnnxMetadata}
 * on the bytes to get the labels back.
 *
 * @throws RangeError when the weights are empty or the layers do not chain, when `labels` has a
 * length other than the class count, or when two names collide.
 */
export function mlpToOnnx(weights: MlpWeights, options: MlpOnnxOptions = {}): Uint8Array {
  const layers = weights.layers;
  if (layers.length === 0) throw new RangeError("weights have no layers");
  for (let l = 0; l < layers.length; l++) {
    const layer = layers[l] as MlpLayer;
    if (layer.weight.length !== layer.inDim * layer.outDim || layer.bias.length !== layer.outDim) {
      throw new RangeError(`layer ${l}: weight/bias sizes do not match ${layer.outDim}×${layer.inDim}`);
    }
    if (l > 0 && (layers[l - 1] as MlpLayer).outDim !== layer.inDim)
      throw new RangeError(`layer ${l}: inDim does not match the previous outDim`);
  }
  const width = (layers[0] as MlpLayer).inDim;
  const classes = (layers[layers.length - 1] as MlpLayer).outDim;
  const inputName = options.inputName ?? "features";
  const outputName = options.outputName ?? "probabilities";
  const logitsName = options.logitsName ?? "logits";
  const includeLogits = options.includeLogits ?? true;
  if (inputName === outputName || logitsName === outputName || logitsName === inputName) {
    throw new RangeError("input, output and logits names must differ");
  }
  if (options.labels !== undefined && options.labels.length !== classes) {
    throw new RangeError(`labels has ${options.labels.length} entries, the model has ${classes} classes`);
  }

  const graph = new ProtoWriter();
  let current = inputName;
  for (let l = 0; l < layers.length; l++) {
    const last = l === layers.length - 1;
    const gemmOut = last ? logitsName : `layer${l}.dense`;
    graph.message(
      Graph.node,
      nodeProto("Gemm", `layer${l}.gemm`, [current, `layer${l}.weight`, `layer${l}.bias`], [gemmOut], {
        transB: { int: 1 },
      }),
    );
    current = gemmOut;
    if (!last) {
      graph.message(Graph.node, nodeProto("Relu", `layer${l}.relu`, [current], [`layer${l}.relu`]));
      current = `layer${l}.relu`;
    }
  }
  graph.message(Graph.node, nodeProto("Softmax", "softmax", [current], [outputName], { axis: { int: 1 } }));
  graph.string(Graph.name, options.graphName ?? "mlp");
  layers.forEach((layer, l) => {
    graph.message(Graph.initializer, tensorProto(`layer${l}.weight`, [layer.outDim, layer.inDim], layer.weight));
    graph.message(Graph.initializer, tensorProto(`layer${l}.bias`, [layer.outDim], layer.bias));
  });
  graph.string(
    Graph.docString,
    `MLP ${[width, ...layers.map((x) => x.outDim)].join("-")}, ReLU hidden layers, softmax output`,
  );
  graph.message(Graph.input, floatValueInfo(inputName, ["N", width]));
  graph.message(Graph.output, floatValueInfo(outputName, ["N", classes]));
  if (includeLogits) graph.message(Graph.output, floatValueInfo(logitsName, ["N", classes]));

  const model = new ProtoWriter();
  model.varint(Model.irVersion, ONNX_IR_VERSION);
  model.string(Model.producerName, options.producer ?? "sluice");
  model.string(Model.producerVersion, options.producerVersion ?? "0.1.0");
  model.varint(Model.modelVersion, options.modelVersion ?? 1);
  if (options.docString !== undefined) model.string(Model.docString, options.docString);
  model.message(Model.graph, graph.finish());
  model.message(
    Model.opsetImport,
    new ProtoWriter().string(OperatorSetId.domain, "").varint(OperatorSetId.version, ONNX_OPSET).finish(),
  );
  const metadata: Array<[string, string]> = [];
  if (options.labels !== undefined) metadata.push([LABELS_METADATA_KEY, JSON.stringify(options.labels)]);
  for (const [key, value] of Object.entries(options.metadata ?? {})) {
    if (key === LABELS_METADATA_KEY && options.labels !== undefined) continue;
    metadata.push([key, value]);
  }
  for (const [key, value] of metadata) {
    model.message(
      Model.metadataProps,
      new ProtoWriter().string(StringStringEntry.key, key).string(StringStringEntry.value, value).finish(),
    );
  }
  return model.finish();
}

/**
 * Reads `metadata_props` from encoded ONNX ModelProto bytes, without parsing the graph.
 *
 * @returns key → value, in file order (a later duplicate key wins).
 * @throws RangeError when the bytes are not a well-formed protobuf message.
 */
export function readOnnxMetadata(bytes: Uint8Array): Record<string, string> {
  const decoder = new TextDecoder();
  const out: Record<string, string> = {};
  for (const f of readProtoFields(bytes)) {
    if (f.field !== Model.metadataProps || f.wireType !== WireType.lengthDelimited || f.bytes === undefined) continue;
    let key = "";
    let value = "";
    for (const e of readProtoFields(f.bytes)) {
      if (e.bytes === undefined) continue;
      if (e.field === StringStringEntry.key) key = decoder.decode(e.bytes);
      else if (e.field === StringStringEntry.value) value = decoder.decode(e.bytes);
    }
    out[key] = value;
  }
  return out;
}

/**
 * The class labels stored by {@link mlpToOnnx} (metadata key `"labels"`), or undefined when the
 * model has none or the value is not a JSON array of strings.
 */
export function readOnnxLabels(bytes: Uint8Array): string[] | undefined {
  const raw = readOnnxMetadata(bytes)[LABELS_METADATA_KEY];
  if (raw === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(raw);
    return Array.isArray(parsed) && parsed.every((x) => typeof x === "string") ? parsed : undefined;
  } catch {
    return undefined;
  }
}
