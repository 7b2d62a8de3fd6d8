/**
 * Model training and export: a seeded PRNG, a small MLP classifier trained by the project's own
 * code, and an ONNX writer (own protobuf encoder) so inference nodes can serve what was trained.
 *
 * @module
 */

export {
  accuracy,
  argmaxRows,
  MLP_DEFAULTS,
  type MlpLayer,
  type MlpOptions,
  type MlpWeights,
  predictLogits,
  predictMlp,
  selectRows,
  splitTrainTest,
  type TrainTestSplit,
  trainMlp,
} from "./mlp.js";
export {
  LABELS_METADATA_KEY,
  type MlpOnnxOptions,
  mlpToOnnx,
  ONNX_IR_VERSION,
  ONNX_OPSET,
  readOnnxLabels,
  readOnnxMetadata,
} from "./onnx-writer.js";
export { createPrng, type Prng } from "./prng.js";
