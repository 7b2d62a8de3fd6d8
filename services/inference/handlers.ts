import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { BatchErrorSchema, DataType, type ResultBatch, ResultBatchSchema } from "../../libs/gen/sluice/v1/batch_pb.js";
import { InferenceService, type InferRequest, type InferResponse } from "../../libs/gen/sluice/v1/inference_pb.js";
import { endSpans, startRecordSpans } from "../../libs/telemetry/index.js";
import { answerEach } from "../../libs/transport/index.js";
import type { DynamicBatcher } from "./dynamic-batcher.js";

/** The models a node serves, by name, and its live counters. */
export interface InferenceNode {
  id: string;
  models: Map<string, DynamicBatcher>;
  /** Records accepted and not yet answered. */
  inFlight: number;
}

/** Registers the InferenceService handlers of `node`. */
export function inferenceRoutes(node: InferenceNode): (router: ConnectRouter) => void {
  return (router) =>
    router.service(InferenceService, {
      infer(requests, ctx) {
        return answerEach<InferRequest, InferResponse>(requests, ctx.signal, (req, reply) => {
          const finish = (results: ResultBatch) => reply({ $typeName: "sluice.v1.InferResponse", results });
          const batch = req.batch;
          if (batch === undefined) {
            reply({ $typeName: "sluice.v1.InferResponse" });
            return;
          }
          const batcher = node.models.get(batch.model);
          if (batcher === undefined) {
            finish(
              create(ResultBatchSchema, {
                batchId: batch.batchId,
                node: node.id,
                errors: batch.keys.map((key) =>
                  create(BatchErrorSchema, {
                    key,
                    code: "not_found",
                    message: `model ${batch.model} is not served by node ${node.id}`,
                  }),
                ),
              }),
            );
            return;
          }
          const { spans, next } = startRecordSpans("inference.run", batch.traces, {
            "sluice.model": batch.model,
            "sluice.node": node.id,
          });
          node.inFlight += batch.keys.length;
          // The run's batch span links to these record spans.
          void batcher.submit(next.length > 0 ? { ...batch, traces: next } : batch).then((r) => {
            node.inFlight -= batch.keys.length;
            endSpans(spans);
            finish(r);
          });
        });
      },
      listModels() {
        return {
          node: node.id,
          models: [...node.models.values()].map((b) => ({
            name: b.model.name,
            version: b.model.version,
            state: "ready",
            labels: b.model.labels,
            parameters: {
              max_batch_size: String(b.params.maxBatchSize),
              max_queue_delay_ms: String(b.params.maxQueueDelayMs),
              max_queue_records: String(b.params.maxQueueRecords),
              cache: String(b.params.cache),
              intra_op_threads: String(b.model.config.intraOpThreads ?? 1),
              cache_hits: String(b.stats.cacheHits),
              runs: String(b.stats.runs),
              records: String(b.stats.records),
            },
            inputs: [{ name: b.model.inputName, dtype: DataType.FP32, shape: [-1n, BigInt(b.model.width)] }],
            outputs: b.model.outputNames.map((name) => ({ name, dtype: DataType.FP32, shape: [-1n, -1n] })),
          })),
        };
      },
    });
}
