import { BalancerService } from "../../libs/gen/sluice/v1/balancer_pb.js";
import { allHeartbeats, connectNats, subscribeJson } from "../../libs/nats/index.js";
import { intOption, requiredOption, runService } from "../../libs/service/index.js";
import { buckets, followBucket, type NodeEntry, stateClient } from "../../libs/state/index.js";
import { startServer } from "../../libs/transport/index.js";
import { balancerRoutes } from "./handlers.js";
import { NodePool } from "./node-pool.js";

await runService(
  "balancer",
  {
    state: { env: "SLUICE_STATE" },
    nats: { env: "NATS_URL" },
    "down-after-ms": { env: "SLUICE_NODE_DOWN_AFTER_MS", default: "3000" },
    "batch-timeout-ms": { env: "SLUICE_BATCH_TIMEOUT_MS", default: "15000" },
  },
  async (opts) => {
    const pool = new NodePool({
      downAfterMs: intOption(opts, "down-after-ms", 3_000),
      batchTimeoutMs: intOption(opts, "batch-timeout-ms", 15_000),
    });
    const stop = new AbortController();
    const ready = new Promise<void>((resolve) => {
      followBucket<NodeEntry>(
        stateClient(requiredOption(opts, "state")),
        buckets.nodes,
        stop.signal,
        (key, value) => pool.upsert(key, value),
        {
          onCurrent: resolve,
        },
      );
    });
    await Promise.race([ready, new Promise((r) => setTimeout(r, 5_000))]);
    // With NATS, nodes of every Sluice node beat on core subjects; liveness is the time a beat
    // arrived here (no clock skew between machines).
    const nc =
      typeof opts.nats === "string" ? await connectNats({ servers: opts.nats, name: "sluice-balancer" }) : undefined;
    if (nc) {
      void (async () => {
        for await (const st of nc.status()) {
          if (st.type === "disconnect") pool.setHeartbeatsHeard(false);
          else if (st.type === "reconnect") pool.setHeartbeatsHeard(true);
        }
      })().catch(() => undefined);
      subscribeJson<NodeEntry>(nc, allHeartbeats, (beat) => {
        if (typeof beat.id === "string" && typeof beat.address === "string" && Array.isArray(beat.models)) {
          pool.upsert(beat.id, { ...beat, heartbeatMs: Date.now() });
        }
      });
    }
    const server = await startServer({
      name: "balancer",
      services: [BalancerService],
      routes: balancerRoutes(pool),
      host: opts.host as string,
      port: Number(opts.port),
    });
    return {
      address: server.address,
      async shutdown() {
        await server.close();
        stop.abort();
        pool.close();
        await nc?.drain().catch(() => undefined);
      },
    };
  },
);
