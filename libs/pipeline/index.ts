/**
 * Pipeline specs: parse and validate them, fit their statistics to data, and
 * compile them into a transform from record columns to a model's feature
 * tensor.
 *
 * @module
 */

export {
  type CompiledPipeline,
  compilePipeline,
  RECORD_ERROR_CODE,
  type RecordError,
  type TransformResult,
} from "./compile.js";
export { fitPipeline } from "./fit.js";
export { type LabelIndex, labelIndex } from "./label.js";
export {
  type ClipSpec,
  DEFAULT_MISSING_MARKERS,
  type FieldSpec,
  type FieldStats,
  type FieldType,
  type FillSpec,
  type FillStrategy,
  isPipelineSpecError,
  type LabelSpec,
  type OutlierSpec,
  type PipelineSpec,
  PipelineSpecError,
  parsePipelineSpec,
  type ScaleKind,
  stringifyPipelineSpec,
} from "./spec.js";
