import type { ResultBatch } from "../../libs/gen/sluice/v1/batch_pb.js";
import type { ResultColumns } from "../../libs/gen/sluice/v1/ingest_pb.js";
import type { Result } from "../../libs/gen/sluice/v1/records_pb.js";
import { type DecodedOutput, float32Tensor } from "../../libs/tensor/index.js";
import type { RecordSink } from "./dispatcher.js";

/** A `Result` holding an error. */
export function errorResult(id: string, code: string, message: string, field = ""): Result {
  return {
    $typeName: "sluice.v1.Result",
    id,
    outcome: { case: "error", value: { $typeName: "sluice.v1.RecordError", code, message, field } },
  };
}

/**
 * A sink for records sent in columns: collects the rows of each result batch and hands them on
 * as one `ResultColumns`. When a result batch's rows all belong to one caller in order (the
 * usual case), its output tensors are passed on as they are, without a copy.
 */
export function columnSink(onRecord: (key: bigint) => void, onColumns: (c: ResultColumns) => void): RecordSink {
  let ids: string[] = [];
  let rows: number[] = [];
  let batch: ResultBatch | undefined;
  let outs: readonly DecodedOutput[] = [];
  let errors: Result[] = [];
  const emit = () => {
    if (ids.length === 0 && errors.length === 0) return;
    const c: ResultColumns = {
      $typeName: "sluice.v1.ResultColumns",
      ids,
      outputs: [],
      labels: [],
      model: batch?.model ?? "",
      modelVersion: batch?.modelVersion ?? "",
      errors,
    };
    if (batch !== undefined && ids.length > 0) {
      const whole = rows.length === batch.keys.length && rows.every((r, i) => r === i);
      c.outputs = whole
        ? batch.outputs
        : outs.map((o) => {
            const data = new Float32Array(rows.length * o.cols);
            rows.forEach((r, i) => {
              data.set(o.data.subarray(r * o.cols, (r + 1) * o.cols), i * o.cols);
            });
            return float32Tensor(o.name, data, rows.length, o.cols);
          });
      const labels = batch.labels;
      if (labels.length > 0) c.labels = whole ? labels : rows.map((r) => labels[r] ?? "");
    }
    onColumns(c);
    ids = [];
    rows = [];
    errors = [];
    batch = undefined;
    outs = [];
  };
  return {
    output(key, id, r, row, decoded) {
      onRecord(key);
      if (batch !== undefined && batch !== r) emit();
      batch = r;
      outs = decoded;
      ids.push(id);
      rows.push(row);
    },
    error(key, id, code, message, field) {
      onRecord(key);
      errors.push(errorResult(id, code, message, field));
    },
    flush: emit,
  };
}
