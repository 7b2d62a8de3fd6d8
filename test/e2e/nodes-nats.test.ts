import { execFile } from "node:child_process";
import path from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packageRoot } from "../../libs/cli/paths.js";
import { BalancerService } from "../../libs/gen/sluice/v1/balancer_pb.js";
import { InferenceService } from "../../libs/gen/sluice/v1/inference_pb.js";
import { IngestService } from "../../libs/gen/sluice/v1/ingest_pb.js";
import { StateService } from "../../libs/gen/sluice/v1/state_pb.js";
import { type Mesh, startMesh } from "../../libs/mesh/index.js";
import { connectTo } from "../../libs/transport/index.js";
import { penguinRows, penguinsArtifacts } from "../helpers/mesh.js";
import { type NatsServer, startNatsServer } from "../helpers/nats.js";

/** Polls `check` until it returns a value, or fails after `ms`. */
async function until<T>(
  what: string,
  ms: number,
  check: () => Promise<T | undefined>,
): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return { value: v, ms: performance.now() - start };
    if (performance.now() - start > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

describe("two Sluice nodes sharing state through NATS JetStream", () => {
  let nats: NatsServer;
  let a: Mesh;
  let b: Mesh;
  let rows: Array<Record<string, unknown>>;
  const startNode = async (node: string) => {
    const art = await penguinsArtifacts();
    return startMesh({
      nats: nats.url,
      node,
      inference: 1,
      models: art.models,
      pipelines: [art.pipelineFile],
      portBase: 0,
    });
  };

  beforeAll(async () => {
    nats = await startNatsServer({ jetstream: true });
    rows = await penguinRows();
    a = await startNode("a");
    b = await startNode("b");
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await nats?.stop();
  });

  it("shows a change made on node A on node B within one second (p50/p99 measured)", async () => {
    const stateA = connectTo(StateService, a.address("state"));
    const stateB = connectTo(StateService, b.address("state"));
    const seen = new Map<string, number>();
    const abort = new AbortController();
    const watching = (async () => {
      for await (const res of stateB.watch({ bucket: "convergence" }, { signal: abort.signal })) {
        if (res.entry) seen.set(res.entry.value, performance.now());
      }
    })().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    const lags: number[] = [];
    for (let i = 0; i < 100; i++) {
      const value = JSON.stringify({ i });
      const t0 = performance.now();
      await stateA.put({ bucket: "convergence", key: `k${i % 10}`, value });
      await until(`change ${i} on B`, 1_000, async () => (seen.has(value) ? true : undefined));
      // From before the put on A to the moment B's watch delivered it.
      lags.push((seen.get(value) as number) - t0);
    }
    abort.abort();
    await watching;
    lags.sort((x, y) => x - y);
    console.log(`change on A visible on B: p50 ${pct(lags, 50).toFixed(1)} ms, p99 ${pct(lags, 99).toFixed(1)} ms`);
    expect(pct(lags, 99)).toBeLessThan(1_000);
  });

  it("lets every balancer see and use the inference processes of every node", async () => {
    for (const mesh of [a, b]) {
      const { value } = await until("both nodes up", 5_000, async () => {
        const nodes = await connectTo(BalancerService, mesh.address("balancer")).listNodes({});
        const up = nodes.nodes
          .filter((n) => n.status === "up")
          .map((n) => n.id)
          .sort();
        return up.length === 2 ? up : undefined;
      });
      expect(value).toEqual(["a-inference-1", "b-inference-1"]);
    }
    const client = connectTo(IngestService, a.address("ingest"));
    const many = Array.from({ length: 30 }, () => rows).flat();
    let answered = 0;
    for await (const res of client.stream(
      (async function* () {
        for (let i = 0; i < many.length; i += 64) {
          yield { records: many.slice(i, i + 64).map((r, k) => ({ id: String(i + k), fields: r as JsonObject })) };
        }
      })(),
    )) {
      answered += res.results.filter((r) => r.outcome.case === "outputs").length;
    }
    expect(answered).toBe(many.length);
    const loads = await connectTo(BalancerService, a.address("balancer")).listNodes({});
    for (const n of loads.nodes) expect(n.batchesRouted, n.id).toBeGreaterThan(0n);
  });

  it("applies a serving parameter changed on node A on node B's inference within one second, without a restart", async () => {
    const stateA = connectTo(StateService, a.address("state"));
    const pidBefore = b.services.find((s) => s.name === "inference-1")?.process.pid;
    const cur = await stateA.get({ bucket: "models", key: "penguins-mlp" });
    const value = JSON.parse(cur.entry?.value ?? "{}") as Record<string, unknown>;
    expect(value.state).toBe("ready");
    const put = await stateA.put({
      bucket: "models",
      key: "penguins-mlp",
      value: JSON.stringify({ ...value, params: { maxBatchSize: 7, cache: true } }),
      expectedRevision: cur.entry?.revision ?? 0n,
    });
    const inferenceB = connectTo(InferenceService, b.address("inference-1"));
    const { ms } = await until("params in force on B", 1_000, async () => {
      const m = (await inferenceB.listModels({})).models[0];
      return m?.parameters.max_batch_size === "7" && m.parameters.cache === "true" ? true : undefined;
    });
    console.log(`parameter change on A in force on B's inference after ${ms.toFixed(0)} ms`);
    expect(b.services.find((s) => s.name === "inference-1")?.process.pid).toBe(pidBefore);
    // The registry says which revision each node has in force.
    const stateB = connectTo(StateService, b.address("state"));
    await until("revision in force recorded", 2_000, async () => {
      const n = await stateB.get({ bucket: "nodes", key: "b-inference-1" });
      const applied = (JSON.parse(n.entry?.value ?? "{}") as { applied?: Record<string, string> }).applied;
      return applied?.["penguins-mlp"] === String(put.entry?.revision) ? true : undefined;
    });
    // The cache is really on: the same records again are answered from it on B.
    const submitB = connectTo(IngestService, b.address("ingest"));
    const few = rows.slice(0, 5).map((r, i) => ({ id: String(i), fields: r as JsonObject }));
    for (let k = 0; k < 4; k++) await submitB.submit({ records: few });
    const hitsA = Number(
      (await connectTo(InferenceService, a.address("inference-1")).listModels({})).models[0]?.parameters.cache_hits,
    );
    const hitsB = Number((await inferenceB.listModels({})).models[0]?.parameters.cache_hits);
    expect(hitsA + hitsB).toBeGreaterThan(0);
  });

  it("puts a pipeline made on node A in force on node B", async () => {
    const stateA = connectTo(StateService, a.address("state"));
    const spec = JSON.parse(
      (await stateA.get({ bucket: "pipelines", key: "penguins" })).entry?.value ?? "{}",
    ) as Record<string, unknown>;
    await stateA.put({
      bucket: "pipelines",
      key: "penguins-copy",
      value: JSON.stringify({ ...spec, name: "penguins-copy" }),
    });
    const ingestB = connectTo(IngestService, b.address("ingest"));
    const { ms } = await until("pipeline usable on B", 1_000, async () => {
      const r = await ingestB.submit({
        pipeline: "penguins-copy",
        records: [{ id: "x", fields: rows[0] as JsonObject }],
      });
      return r.results[0]?.outcome.case === "outputs" ? true : undefined;
    });
    console.log(`new pipeline on A usable through B after ${ms.toFixed(0)} ms`);
  });

  it("marks a silent node down (no traffic) and up again when it speaks", async () => {
    const victim = b.services.find((s) => s.name === "inference-1");
    victim?.process.kill("SIGSTOP");
    try {
      const { ms } = await until("b-inference-1 down on A", 6_000, async () => {
        const nodes = await connectTo(BalancerService, a.address("balancer")).listNodes({});
        return nodes.nodes.find((n) => n.id === "b-inference-1")?.status === "down" ? true : undefined;
      });
      console.log(`silent node marked down after ${ms.toFixed(0)} ms`);
      // Traffic meanwhile goes to the live node only, and every record is answered.
      const r = await connectTo(IngestService, a.address("ingest")).submit({
        records: rows.slice(0, 50).map((x, i) => ({ id: String(i), fields: x as JsonObject })),
      });
      expect(r.results.filter((x) => x.outcome.case === "outputs").length).toBe(50);
    } finally {
      victim?.process.kill("SIGCONT");
    }
    await until("b-inference-1 up again", 5_000, async () => {
      const nodes = await connectTo(BalancerService, a.address("balancer")).listNodes({});
      return nodes.nodes.find((n) => n.id === "b-inference-1")?.status === "up" ? true : undefined;
    });
  });

  it("keeps serving records while NATS is down, and syncs changes again once it is back", async () => {
    await nats.kill("SIGKILL");
    try {
      // Longer than the 3 s after which a silent node counts as down.
      await new Promise((r) => setTimeout(r, 5_000));
      for (const mesh of [a, b]) {
        const r = await connectTo(IngestService, mesh.address("ingest")).submit({
          records: rows.slice(0, 40).map((x, i) => ({ id: String(i), fields: x as JsonObject })),
        });
        expect(r.results.filter((x) => x.outcome.case === "outputs").length).toBe(40);
      }
    } finally {
      await nats.restart();
    }
    const stateA = connectTo(StateService, a.address("state"));
    const stateB = connectTo(StateService, b.address("state"));
    const { ms } = await until("a put on A after the restart, seen on B", 15_000, async () => {
      await stateA.put({ bucket: "convergence", key: "after-restart", value: '"back"' });
      const got = await stateB.get({ bucket: "convergence", key: "after-restart" });
      return got.entry?.value === '"back"' ? true : undefined;
    });
    console.log(`state syncing again ${ms.toFixed(0)} ms after the NATS restart`);
  });

  it("resynchronises a Sluice node that was killed and restarted, and serves with the current state", async () => {
    for (const s of b.services) s.process.kill("SIGKILL");
    await new Promise((r) => setTimeout(r, 300));
    const stateA = connectTo(StateService, a.address("state"));
    const cur = await stateA.get({ bucket: "models", key: "penguins-mlp" });
    const value = JSON.parse(cur.entry?.value ?? "{}") as Record<string, unknown>;
    await stateA.put({
      bucket: "models",
      key: "penguins-mlp",
      value: JSON.stringify({ ...value, params: { maxBatchSize: 9 } }),
    });
    await stateA.put({ bucket: "convergence", key: "while-b-was-down", value: '"yes"' });
    b = await startNode("b");
    const stateB = connectTo(StateService, b.address("state"));
    expect((await stateB.get({ bucket: "convergence", key: "while-b-was-down" })).entry?.value).toBe('"yes"');
    await until("B's inference has the current params", 3_000, async () => {
      const m = (await connectTo(InferenceService, b.address("inference-1")).listModels({})).models[0];
      return m?.parameters.max_batch_size === "9" ? true : undefined;
    });
    const r = await connectTo(IngestService, b.address("ingest")).submit({
      records: rows.slice(0, 20).map((x, i) => ({ id: String(i), fields: x as JsonObject })),
    });
    expect(r.results.filter((x) => x.outcome.case === "outputs").length).toBe(20);
  });

  it("shows each node's services and the parameter revision in force with `sluice status` against either node", async () => {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        [
          path.join(packageRoot, "dist/libs/cli/sluice.js"),
          "status",
          "--state",
          b.address("state"),
          "--balancer",
          b.address("balancer"),
        ],
        { timeout: 20_000, env: { ...process.env, SLUICE_HOME: path.join(packageRoot, ".sluice-test-none") } },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
      );
    });
    expect(out).toMatch(/penguins-mlp\s+ready/);
    expect(out).toMatch(/a-inference-1 .* up .*params in force penguins-mlp@rev\d+/);
    expect(out).toMatch(/b-inference-1 .* up .*params in force penguins-mlp@rev\d+/);
    // Pipelines: the revision each node's preprocess has in force.
    const pipelineRev = (
      await connectTo(StateService, a.address("state")).get({ bucket: "pipelines", key: "penguins-copy" })
    ).entry?.revision;
    expect(out).toMatch(new RegExp(`\\ba\\s+preprocess .*penguins-copy@rev${pipelineRev}`));
    expect(out).toMatch(new RegExp(`\\bb\\s+preprocess .*penguins-copy@rev${pipelineRev}`));
  });
});
