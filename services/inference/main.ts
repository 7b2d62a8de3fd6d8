import { hostname } from "node:os";
import { InferenceService } from "../../libs/gen/sluice/v1/inference_pb.js";
import { intOption, requiredOption, runService } from "../../libs/service/index.js";
import { buckets, type NodeEntry, stateClient } from "../../libs/state/index.js";
import { startServer } from "../../libs/transport/index.js";
import { DynamicBatcher } from "./dynamic-batcher.js";
import { type InferenceNode, inferenceRoutes } from "./handlers.js";
import { listModels, loadModel } from "./model-repository.js";

await runService(
  "inference",
  {
    models: { env: "SLUICE_MODEL_REPOSITORY", default: ".sluice/models" },
    state: { env: "SLUICE_STATE" },
    node: { env: "SLUICE_NODE_ID" },
    "heartbeat-ms": { env: "SLUICE_HEARTBEAT_MS", default: "500" },
  },
  async (opts) => {
    const repo = requiredOption(opts, "models");
    const heartbeatMs = intOption(opts, "heartbeat-ms", 500);
    const node: InferenceNode = { id: "", models: new Map(), inFlight: 0 };
    const server = await startServer({
      name: "inference",
      services: [InferenceService],
      routes: inferenceRoutes(node),
      host: opts.host as string,
      port: Number(opts.port),
    });
    node.id = (opts.node as string | undefined) ?? `${hostname()}-${server.port}`;
    const state = typeof opts.state === "string" ? stateClient(opts.state) : undefined;
    const transition = async (model: string, to: string, reason = "") => {
      if (!state) return;
      await state.transition({ bucket: buckets.models, key: model, to, reason }).catch(() => undefined);
    };
    for (const folder of await listModels(repo)) {
      try {
        await state?.get({ bucket: buckets.models, key: folder }).catch(() => transition(folder, "registered"));
        await transition(folder, "loading");
        const model = await loadModel(repo, folder);
        node.models.set(model.name, new DynamicBatcher(model, { node: node.id }));
        if (state) {
          const cur = await state.get({ bucket: buckets.models, key: model.name }).catch(() => undefined);
          const value = cur?.entry ? (JSON.parse(cur.entry.value) as Record<string, unknown>) : {};
          await transition(model.name, "ready");
          await state
            .put({
              bucket: buckets.models,
              key: model.name,
              value: JSON.stringify({ ...value, state: "ready", version: model.version, labels: model.labels }),
            })
            .catch(() => undefined);
        }
      } catch (e) {
        process.stderr.write(`inference: model ${folder} failed to load: ${(e as Error).message}\n`);
        await transition(folder, "failed", (e as Error).message);
      }
    }
    const beat = async () => {
      if (!state) return;
      const batchers = [...node.models.values()];
      const entry: NodeEntry = {
        id: node.id,
        address: server.address,
        models: batchers.map((b) => b.model.name),
        heartbeatMs: Date.now(),
        inFlight: node.inFlight,
        queueDepth: batchers.reduce((s, b) => s + b.queueDepth, 0),
        latencyMs: batchers.reduce((s, b) => Math.max(s, b.stats.ewmaRunMs), 0),
      };
      await state.put({ bucket: buckets.nodes, key: node.id, value: JSON.stringify(entry) }).catch(() => undefined);
    };
    await beat();
    const timer = setInterval(() => void beat(), heartbeatMs);
    timer.unref();
    return {
      address: server.address,
      async shutdown() {
        clearInterval(timer);
        server.setHealth("NOT_SERVING");
        if (state) await state.delete({ bucket: buckets.nodes, key: node.id }).catch(() => undefined);
        await server.close();
        for (const b of node.models.values()) await b.model.session.release().catch(() => undefined);
      },
    };
  },
);
