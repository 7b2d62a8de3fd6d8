import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { IngestService, type StreamResponse } from "../../libs/gen/sluice/v1/ingest_pb.js";
import type { Result, Record as SluiceRecord } from "../../libs/gen/sluice/v1/records_pb.js";
import { AsyncQueue } from "../../libs/transport/index.js";
import type { Dispatcher } from "./dispatcher.js";

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
        // Results that arrive together go out in one message.
        const sinkFor = (key: () => bigint) => (result: Result) => {
          mine.delete(key());
          buffer.push(result);
          if (!flushing) {
            flushing = true;
            setImmediate(flush);
          }
        };
        void (async () => {
          try {
            for await (const req of requests) {
              const pipeline = req.pipeline || options.defaultPipeline;
              for (const rec of req.records) {
                let k = 0n;
                k = dispatcher.submit(
                  recordId(rec),
                  (rec.fields ?? {}) as JsonObject,
                  pipeline,
                  sinkFor(() => k),
                );
                mine.add(k);
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
              dispatcher.submit(recordId(rec), (rec.fields ?? {}) as JsonObject, pipeline, (r) => {
                results[i] = r;
                if (--left === 0) resolve();
              }),
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
