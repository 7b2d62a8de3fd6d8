import { PreprocessService } from "../../libs/gen/sluice/v1/preprocess_pb.js";
import { compilePipeline, parsePipelineSpec } from "../../libs/pipeline/index.js";
import { requiredOption, runService } from "../../libs/service/index.js";
import { buckets, followBucket, stateClient } from "../../libs/state/index.js";
import { startServer } from "../../libs/transport/index.js";
import { type PipelineTable, preprocessRoutes } from "./handlers.js";

await runService(
  "preprocess",
  {
    state: { env: "SLUICE_STATE" },
    balancer: { env: "SLUICE_BALANCER" },
  },
  async (opts) => {
    const pipelines: PipelineTable = new Map();
    const stop = new AbortController();
    const ready = new Promise<void>((resolve) => {
      followBucket<unknown>(
        stateClient(requiredOption(opts, "state")),
        buckets.pipelines,
        stop.signal,
        (key, value) => {
          if (value === undefined) {
            pipelines.delete(key);
            return;
          }
          try {
            pipelines.set(key, compilePipeline(parsePipelineSpec(value)));
          } catch (e) {
            pipelines.set(key, e as Error);
            process.stderr.write(`preprocess: pipeline ${key} is not usable: ${(e as Error).message}\n`);
          }
        },
        { onCurrent: resolve },
      );
    });
    await Promise.race([ready, new Promise((r) => setTimeout(r, 5_000))]);
    const server = await startServer({
      name: "preprocess",
      services: [PreprocessService],
      routes: preprocessRoutes(pipelines, requiredOption(opts, "balancer")),
      host: opts.host as string,
      port: Number(opts.port),
    });
    return {
      address: server.address,
      async shutdown() {
        await server.close();
        stop.abort();
      },
    };
  },
);
