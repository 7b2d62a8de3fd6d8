import { readFile } from "node:fs/promises";
import { StateService } from "../../libs/gen/sluice/v1/state_pb.js";
import { parsePipelineSpec } from "../../libs/pipeline/index.js";
import { runService } from "../../libs/service/index.js";
import { buckets, createMemoryStore } from "../../libs/state/index.js";
import { startServer } from "../../libs/transport/index.js";
import { stateRoutes } from "./handlers.js";

await runService(
  "state",
  {
    // Pipeline spec files (JSON or YAML) put into the store at start.
    pipeline: { env: "SLUICE_PIPELINES", multiple: true },
  },
  async (opts) => {
    const store = createMemoryStore();
    for (const file of (opts.pipeline as string[] | undefined) ?? []) {
      const spec = parsePipelineSpec(await readFile(file, "utf8"));
      await store.put(buckets.pipelines, spec.name, JSON.stringify(spec));
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
