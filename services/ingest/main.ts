import { IngestService } from "../../libs/gen/sluice/v1/ingest_pb.js";
import { intOption, requiredOption, runService } from "../../libs/service/index.js";
import { otlpConfigured } from "../../libs/telemetry/index.js";
import { startServer } from "../../libs/transport/index.js";
import { Dispatcher } from "./dispatcher.js";
import { ingestRoutes } from "./handlers.js";

await runService(
  "ingest",
  {
    preprocess: { env: "SLUICE_PREPROCESS" },
    pipeline: { env: "SLUICE_DEFAULT_PIPELINE", default: "penguins" },
    "batch-records": { env: "SLUICE_BATCH_RECORDS", default: "256" },
    "batch-delay-ms": { env: "SLUICE_BATCH_DELAY_MS", default: "2" },
    "max-message-bytes": { env: "SLUICE_MAX_MESSAGE_BYTES", default: String(64 * 1024 * 1024) },
    "trace-ratio": { env: "SLUICE_TRACE_RATIO", default: "0.01" },
  },
  async (opts) => {
    const dispatcher = new Dispatcher(
      {
        preprocess: requiredOption(opts, "preprocess"),
        maxBatchRecords: intOption(opts, "batch-records", 256),
        maxBatchDelayMs: intOption(opts, "batch-delay-ms", 2),
        traceRatio: Number(opts["trace-ratio"]),
      },
      otlpConfigured(),
    );
    const server = await startServer({
      name: "ingest",
      services: [IngestService],
      routes: ingestRoutes(dispatcher, { defaultPipeline: opts.pipeline as string }),
      host: opts.host as string,
      port: Number(opts.port),
      readMaxBytes: intOption(opts, "max-message-bytes", 64 * 1024 * 1024),
    });
    return {
      address: server.address,
      async shutdown() {
        await server.close();
        dispatcher.close();
      },
    };
  },
);
