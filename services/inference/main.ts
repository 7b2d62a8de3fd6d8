import { hostname } from "node:os";
import { InferenceService } from "../../libs/gen/sluice/v1/inference_pb.js";
import { connectNats, heartbeatSubject, type NatsConnection, publishJson } from "../../libs/nats/index.js";
import { intOption, requiredOption, runService } from "../../libs/service/index.js";
import { buckets, followBucket, type ModelEntry, type NodeEntry, stateClient } from "../../libs/state/index.js";
import { startServer } from "../../libs/transport/index.js";
import { DynamicBatcher, type ServingParams } from "./dynamic-batcher.js";
import { type InferenceNode, inferenceRoutes } from "./handlers.js";
import { listModels, loadModel } from "./model-repository.js";

await runService(
  "inference",
  {
    models: { env: "SLUICE_MODEL_REPOSITORY", default: ".sluice/models" },
    state: { env: "SLUICE_STATE" },
    nats: { env: "NATS_URL" },
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
    const nc: NatsConnection | undefined =
      typeof opts.nats === "string"
        ? await connectNats({ servers: opts.nats, name: `sluice-inference-${node.id}` })
        : undefined;
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
          await transition(model.name, "ready");
          // Version and labels join the registry entry; its state and params stay as they are.
          for (let attempt = 0; attempt < 10; attempt++) {
            const cur = await state.get({ bucket: buckets.models, key: model.name }).catch(() => undefined);
            const value = cur?.entry
              ? (JSON.parse(cur.entry.value) as ModelEntry)
              : { name: model.name, state: "ready" };
            const ok = await state
              .put({
                bucket: buckets.models,
                key: model.name,
                value: JSON.stringify({ ...value, version: model.version, labels: model.labels }),
                expectedRevision: cur?.entry?.revision ?? 0n,
              })
              .then(() => true)
              .catch(() => false);
            if (ok) break;
          }
        }
      } catch (e) {
        process.stderr.write(`inference: model ${folder} failed to load: ${(e as Error).message}\n`);
        await transition(folder, "failed", (e as Error).message);
      }
    }

    // Serving parameters live in the model registry: apply each change as it comes.
    const applied: Record<string, string> = {};
    const stop = new AbortController();
    if (state) {
      followBucket<ModelEntry>(state, buckets.models, stop.signal, (key, value, revision) => {
        const batcher = node.models.get(key);
        if (batcher === undefined || value === undefined) return;
        const params = (value.params ?? {}) as ServingParams & { intraOpThreads?: number };
        try {
          const threads = params.intraOpThreads;
          if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= 64)) {
            throw new RangeError(`intraOpThreads must be a whole number from 1 to 64, got ${threads}`);
          }
          batcher.configure(params);
          applied[key] = String(revision);
          // The registry shows which revision each node has in force (`sluice status`).
          void register();
          if (
            params.intraOpThreads !== undefined &&
            params.intraOpThreads !== (batcher.model.config.intraOpThreads ?? 1)
          ) {
            void loadModel(repo, key, { intraOpThreads: params.intraOpThreads }).then(
              (m) => {
                const old = batcher.model;
                batcher.model = m;
                void old.session.release().catch(() => undefined);
              },
              (e: Error) => process.stderr.write(`inference: reload of ${key} failed: ${e.message}\n`),
            );
          }
        } catch (e) {
          process.stderr.write(`inference: params of ${key} (rev ${revision}) not applied: ${(e as Error).message}\n`);
        }
      });
    }

    const entry = (): NodeEntry => {
      const batchers = [...node.models.values()];
      return {
        id: node.id,
        address: server.address,
        models: batchers.map((b) => b.model.name),
        heartbeatMs: Date.now(),
        inFlight: node.inFlight,
        queueDepth: batchers.reduce((s, b) => s + b.queueDepth, 0),
        latencyMs: batchers.reduce((s, b) => Math.max(s, b.stats.ewmaRunMs), 0),
        applied: { ...applied },
        params: Object.fromEntries(batchers.map((b) => [b.model.name, b.params])),
      };
    };
    const register = async () => {
      await state?.put({ bucket: buckets.nodes, key: node.id, value: JSON.stringify(entry()) }).catch(() => undefined);
    };
    await register();
    // With NATS, heartbeats go on a core subject (no KV write per beat); without it, into state.
    const beat = () => {
      if (nc) publishJson(nc, heartbeatSubject(node.id), entry());
      else void register();
    };
    const timer = setInterval(beat, heartbeatMs);
    timer.unref();
    return {
      address: server.address,
      async shutdown() {
        clearInterval(timer);
        stop.abort();
        server.setHealth("NOT_SERVING");
        if (state) await state.delete({ bucket: buckets.nodes, key: node.id }).catch(() => undefined);
        await server.close();
        await nc?.drain().catch(() => undefined);
        for (const b of node.models.values()) await b.model.session.release().catch(() => undefined);
      },
    };
  },
);
