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
    // Names this preprocess in the registry of what is in force where (`sluice status`).
    node: { env: "SLUICE_NODE", default: "local" },
  },
  async (opts) => {
    const pipelines: PipelineTable = new Map();
    const stop = new AbortController();
    const state = stateClient(requiredOption(opts, "state"));
    const key = `${opts.node as string}-preprocess-${process.pid}`;
    // Which revision of each pipeline is in force here, for `sluice status`.
    const inForce: Record<string, string> = {};
    let address = "";
    const report = () =>
      state
        .put({
          bucket: buckets.services,
          key,
          value: JSON.stringify({
            service: "preprocess",
            node: opts.node,
            address,
            pipelines: inForce,
            updatedMs: Date.now(),
          }),
        })
        .catch(() => undefined);
    const ready = new Promise<void>((resolve) => {
      followBucket<unknown>(
        state,
        buckets.pipelines,
        stop.signal,
        (name, value, revision) => {
          if (value === undefined) {
            pipelines.delete(name);
            delete inForce[name];
          } else {
            try {
              pipelines.set(name, compilePipeline(parsePipelineSpec(value)));
              inForce[name] = String(revision);
            } catch (e) {
              pipelines.set(name, e as Error);
              inForce[name] = `${revision} (not usable)`;
              process.stderr.write(`preprocess: pipeline ${name} is not usable: ${(e as Error).message}\n`);
            }
          }
          if (address !== "") void report();
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
    address = server.address;
    await report();
    return {
      address: server.address,
      async shutdown() {
        await server.close();
        stop.abort();
        await state.delete({ bucket: buckets.services, key }).catch(() => undefined);
      },
    };
  },
);
