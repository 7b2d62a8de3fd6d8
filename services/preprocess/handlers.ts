import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { BalancerService, type RouteRequest, type RouteResponse } from "../../libs/gen/sluice/v1/balancer_pb.js";
import {
  type BatchError,
  BatchErrorSchema,
  type RecordBatch,
  type RecordTrace,
  ResultBatchSchema,
  TensorBatchSchema,
} from "../../libs/gen/sluice/v1/batch_pb.js";
import { PreprocessService, type ProcessResponse } from "../../libs/gen/sluice/v1/preprocess_pb.js";
import type { CompiledPipeline } from "../../libs/pipeline/index.js";
import { endSpans, startRecordSpans } from "../../libs/telemetry/index.js";
import { float32Tensor } from "../../libs/tensor/index.js";
import { AsyncQueue, connectTo, StreamLink } from "../../libs/transport/index.js";

/** The compiled pipelines by name, as followed from the state service. */
export type PipelineTable = Map<string, CompiledPipeline | Error>;

/**
 * Registers the PreprocessService: each caller stream gets its own stream to the balancer;
 * records that cannot be cleaned get their error at once, the rest go on as one tensor batch.
 */
export function preprocessRoutes(pipelines: PipelineTable, balancerAddress: string): (router: ConnectRouter) => void {
  const balancer = connectTo(BalancerService, balancerAddress);
  return (router) =>
    router.service(PreprocessService, {
      async *process(requests, ctx) {
        const out = new AsyncQueue<ProcessResponse>();
        let outstanding = 0;
        let inputDone = false;
        const done = () => {
          if (--outstanding === 0 && inputDone) out.close();
        };
        const link = new StreamLink<RouteRequest, RouteResponse>(
          (reqs, signal) => balancer.route(reqs, { signal }),
          (res) => {
            if (res.results === undefined) return;
            out.push({ $typeName: "sluice.v1.ProcessResponse", results: res.results });
            done();
          },
        );
        // The balancer stream breaking fails this stream: ingest re-sends what it had in flight.
        void link.done.then((err) => {
          if (outstanding > 0 || !inputDone) out.fail(err ?? new Error("balancer stream ended early"));
        });
        ctx.signal.addEventListener("abort", () => link.cancel());
        void (async () => {
          try {
            for await (const req of requests) {
              if (req.batch === undefined) continue;
              const { errorsOnly, tensors } = transformBatch(pipelines, req.batch);
              if (errorsOnly) out.push({ $typeName: "sluice.v1.ProcessResponse", results: errorsOnly });
              if (tensors) {
                outstanding++;
                await link.send({ $typeName: "sluice.v1.RouteRequest", batch: tensors });
              }
            }
            inputDone = true;
            if (outstanding === 0) out.close();
            link.closeRequests();
          } catch (e) {
            out.fail(e);
            link.cancel();
          }
        })();
        try {
          yield* out;
        } finally {
          link.cancel();
        }
      },
    });
}

/**
 * Cleans one batch. Returns the per-record errors (as a result batch) and the model input
 * of the records that were clean (undefined when none were).
 */
export function transformBatch(pipelines: PipelineTable, batch: RecordBatch) {
  const count = batch.keys.length;
  const compiled = pipelines.get(batch.pipeline);
  const errorBatch = (errors: BatchError[]) => create(ResultBatchSchema, { batchId: batch.batchId, errors });
  if (compiled === undefined || compiled instanceof Error) {
    const message =
      compiled === undefined
        ? `pipeline ${JSON.stringify(batch.pipeline)} does not exist (known: ${[...pipelines.keys()].join(", ") || "none"})`
        : `pipeline ${batch.pipeline} is not usable: ${compiled.message}`;
    const code = compiled === undefined ? "not_found" : "failed_precondition";
    return {
      errorsOnly: errorBatch(batch.keys.map((key) => create(BatchErrorSchema, { key, code, message }))),
      tensors: undefined,
    };
  }
  const { spans, next } = startRecordSpans("preprocess.transform", batch.traces, { "sluice.pipeline": batch.pipeline });
  const result = compiled.transform(batch.columns, count);
  endSpans(spans);
  const errorsOnly =
    result.errors.length > 0
      ? errorBatch(
          result.errors.map((e) =>
            create(BatchErrorSchema, {
              key: batch.keys[e.row] as bigint,
              code: e.code,
              message: e.message,
              field: e.field,
            }),
          ),
        )
      : undefined;
  if (result.rows.length === 0) return { errorsOnly, tensors: undefined };
  // Row indices change when records drop out: carry sampled traces to their new rows.
  const newRow = new Map<number, number>();
  if (next.length > 0) for (let i = 0; i < result.rows.length; i++) newRow.set(result.rows[i] as number, i);
  const traces: RecordTrace[] = [];
  for (const t of next) {
    const row = newRow.get(t.index);
    if (row !== undefined) traces.push({ ...t, index: row });
  }
  const tensors = create(TensorBatchSchema, {
    batchId: batch.batchId,
    keys: result.rows.map((r) => batch.keys[r] as bigint),
    model: compiled.spec.model,
    modelVersion: compiled.spec.modelVersion ?? "",
    inputs: [float32Tensor(compiled.spec.input, result.features, result.rows.length, compiled.width)],
    traces,
  });
  return { errorsOnly, tensors };
}
