import { readFile } from "node:fs/promises";
import { StateService } from "../../libs/gen/sluice/v1/state_pb.js";
import { parsePipelineSpec } from "../../libs/pipeline/index.js";
import { intOption, runService } from "../../libs/service/index.js";
import { buckets, createMemoryStore, isRevisionMismatch, type StateStore } from "../../libs/state/index.js";
import { createNatsStore } from "../../libs/state/nats-store.js";
import { startServer } from "../../libs/transport/index.js";
import { stateRoutes } from "./handlers.js";

await runService(
  "state",
  {
    // Pipeline spec files (JSON or YAML) put into the store at start, unless already there.
    pipeline: { env: "SLUICE_PIPELINES", multiple: true },
    // NATS server URLs (comma-separated): JetStream KV instead of the in-memory store.
    nats: { env: "NATS_URL" },
    "kv-replicas": { env: "SLUICE_KV_REPLICAS", default: "1" },
    node: { env: "SLUICE_NODE" },
  },
  async (opts) => {
    const store: StateStore =
      typeof opts.nats === "string"
        ? await createNatsStore({
            servers: opts.nats.split(","),
            replicas: intOption(opts, "kv-replicas", 1),
            name: `sluice-state-${(opts.node as string | undefined) ?? process.pid}`,
          })
        : createMemoryStore();
    for (const file of (opts.pipeline as string[] | undefined) ?? []) {
      const spec = parsePipelineSpec(await readFile(file, "utf8"));
      // Another node may have put (and since changed) this pipeline: never overwrite it.
      await store.put(buckets.pipelines, spec.name, JSON.stringify(spec), 0).catch((e) => {
        if (!isRevisionMismatch(e)) throw e;
      });
    }
    const server = await startServer({
      name: "state",
      services: [StateService],
      routes: stateRoutes(store),
      host: opts.host as string,
      port: Number(opts.port),
    });
    return {
      address: server.address,
      async shutdown() {
        await server.close();
        await store.close();
      },
    };
  },
);
