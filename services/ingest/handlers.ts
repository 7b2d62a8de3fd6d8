import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { checkColumn } from "../../libs/batch/index.js";
import { IngestService, type StreamResponse } from "../../libs/gen/sluice/v1/ingest_pb.js";
import type { Result, Record as SluiceRecord } from "../../libs/gen/sluice/v1/records_pb.js";
import { AsyncQueue } from "../../libs/transport/index.js";
import { type Dispatcher, resultSink } from "./dispatcher.js";
import { columnSink, errorResult } from "./result-columns.js";

/** Options of {@link ingestRoutes}. */
export interface IngestOptions {
  /** Pipeline for requests that name none. */
  defaultPipeline: string;
  /** Most records one Submit call may carry, default 100000. */
  maxSubmitRecords?: number;
}

let idCounter = 0;
const idPrefix = Math.random().toString(36).slice(2, 8);

function recordId(r: SluiceRecord): string {
  return r.id !== "" ? r.id : `${idPrefix}-${++idCounter}`;
}

/** Registers IngestService: the bidi Stream and the unary Submit. */
export function ingestRoutes(dispatcher: Dispatcher, options: IngestOptions): (router: ConnectRouter) => void {
  const maxSubmit = options.maxSubmitRecords ?? 100_000;
  return (router) =>
    router.service(IngestService, {
      async *stream(requests, ctx) {
        const out = new AsyncQueue<StreamResponse>();
        const mine = new Set<bigint>();
        let buffer: Result[] = [];
        let flushing = false;
        let inputDone = false;
        const flush = () => {
          flushing = false;
          if (buffer.length > 0) {
            out.push({ $typeName: "sluice.v1.StreamResponse", results: buffer });
            buffer = [];
          }
          if (inputDone && mine.size === 0) out.close();
        };
        const scheduleFlush = () => {
          if (!flushing) {
            flushing = true;
            setImmediate(flush);
          }
        };
        // Results of Record messages that arrive together go out in one message.
        const rows = resultSink((key, result) => {
          mine.delete(key);
          buffer.push(result);
          scheduleFlush();
        });
        // Results of records sent in columns go back in columns, one message per result batch.
        const columns = columnSink(
          (key) => mine.delete(key),
          (c) => {
            out.push({ $typeName: "sluice.v1.StreamResponse", results: [], columns: c });
            scheduleFlush();
          },
        );
        void (async () => {
          try {
            for await (const req of requests) {
              const pipeline = req.pipeline || options.defaultPipeline;
              for (const rec of req.records) {
                mine.add(dispatcher.submit(recordId(rec), (rec.fields ?? {}) as JsonObject, pipeline, rows));
              }
              if (req.columns !== undefined) {
                const c = req.columns;
                const count = c.ids.length;
                const ids = c.ids.map((id) => (id !== "" ? id : `${idPrefix}-${++idCounter}`));
                const bad = c.columns.map((col) => checkColumn(col, count)).find((m) => m !== undefined);
                if (bad !== undefined) {
                  // A malformed message: each of its records gets the error, the stream goes on.
                  out.push({
                    $typeName: "sluice.v1.StreamResponse",
                    results: [],
                    columns: {
                      $typeName: "sluice.v1.ResultColumns",
                      ids: [],
                      outputs: [],
                      labels: [],
                      model: "",
                      modelVersion: "",
                      errors: ids.map((id) => errorResult(id, "invalid_argument", `malformed columns: ${bad}`)),
                    },
                  });
                } else {
                  for (const k of dispatcher.submitColumns(ids, c.columns, pipeline, columns)) mine.add(k);
                }
              }
              await dispatcher.room();
            }
            inputDone = true;
            if (!flushing) flush();
          } catch (e) {
            out.fail(e);
          }
        })();
        ctx.signal.addEventListener("abort", () => {
          dispatcher.forget(mine);
          out.close();
        });
        yield* out;
      },
      async submit(req, ctx) {
        if (req.records.length > maxSubmit) {
          throw new ConnectError(
            `${req.records.length} records in one Submit; the limit is ${maxSubmit}: use Stream`,
            Code.InvalidArgument,
          );
        }
        const pipeline = req.pipeline || options.defaultPipeline;
        const results: Result[] = new Array(req.records.length);
        let left = req.records.length;
        if (left === 0) return { results: [] };
        const keys: bigint[] = [];
        await new Promise<void>((resolve) => {
          req.records.forEach((rec, i) => {
            keys.push(
              dispatcher.submit(
                recordId(rec),
                (rec.fields ?? {}) as JsonObject,
                pipeline,
                resultSink((_key, r) => {
                  results[i] = r;
                  if (--left === 0) resolve();
                }),
              ),
            );
          });
          ctx.signal.addEventListener("abort", () => {
            dispatcher.forget(keys);
            resolve();
          });
        });
        if (ctx.signal.aborted) throw new ConnectError("cancelled", Code.Canceled);
        return { results };
      },
    });
}
