import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createNatsStore, type NatsStore } from "../../libs/state/nats-store.js";
import { isRevisionMismatch, type StoredEntry } from "../../libs/state/store.js";
import { type NatsCluster, type NatsServer, startNatsCluster, startNatsServer } from "../helpers/nats.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true, failing with `what` after `timeoutMs`. */
async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** A watch that folds every event into a map, as a service following a bucket would. */
function follow(store: NatsStore, bucket: string) {
  const ac = new AbortController();
  const seen = new Map<string, StoredEntry>();
  let current = false;
  let events = 0;
  const listeners = new Set<(e: StoredEntry) => void>();
  const done = (async () => {
    for await (const ev of store.watch(bucket, "", ac.signal)) {
      if ("currentDone" in ev) {
        current = true;
        continue;
      }
      events++;
      if (ev.entry.present) seen.set(ev.entry.key, ev.entry);
      else seen.delete(ev.entry.key);
      for (const l of listeners) l(ev.entry);
    }
  })();
  return {
    seen,
    listeners,
    get current() {
      return current;
    },
    get events() {
      return events;
    },
    async stop() {
      ac.abort();
      await done;
    },
  };
}

/** `put` until the store acknowledges it: during a failover a write may time out and must be redone. */
async function putRetrying(store: NatsStore, bucket: string, key: string, value: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await store.put(bucket, key, value);
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(100);
    }
  }
}

const values = (entries: StoredEntry[]) =>
  Object.fromEntries(entries.map((e) => [e.key, e.value]).sort(([a], [b]) => (a as string).localeCompare(b as string)));

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;

const stores: NatsStore[] = [];
const servers: Array<NatsServer | NatsCluster> = [];
const track = <T extends NatsStore>(s: T) => {
  stores.push(s);
  return s;
};
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close().catch(() => undefined)));
});
afterAll(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

describe("state on NATS JetStream KV, with real servers", () => {
  it("shows a put on node A in node B's watch within a second (200 changes)", async () => {
    const server = await startNatsServer({ jetstream: true });
    servers.push(server);
    const a = track(await createNatsStore({ servers: server.url, name: "node-a" }));
    const b = track(await createNatsStore({ servers: server.url, name: "node-b" }));
    const watch = follow(b, "models");
    await waitFor("B's watch to be current", () => watch.current);
    const latencies: number[] = [];
    for (let i = 0; i < 200; i++) {
      const value = JSON.stringify({ i });
      const t0 = performance.now();
      const seen = new Promise<void>((resolve) => {
        const l = (e: StoredEntry) => {
          if (e.key === `m${i % 20}` && e.value === value) {
            watch.listeners.delete(l);
            resolve();
          }
        };
        watch.listeners.add(l);
      });
      await a.put("models", `m${i % 20}`, value);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        seen,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`change ${i} not seen on B within 1 s`)), 1_000);
        }),
      ]).finally(() => clearTimeout(timer));
      latencies.push(performance.now() - t0);
    }
    latencies.sort((x, y) => x - y);
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    console.log(
      `A put -> B watch over ${latencies.length} changes: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`,
    );
    expect(p99).toBeLessThan(1_000);
    expect(values(await b.list("models"))).toEqual(values(await a.list("models")));
    await watch.stop();
  });

  it("keeps every change on both nodes when a cluster server is killed (-9) mid-stream", async () => {
    const cluster = await startNatsCluster(3);
    servers.push(cluster);
    const [s1, s2, s3] = cluster.servers as [NatsServer, NatsServer, NatsServer];
    const a = track(
      await createNatsStore({ servers: [s1.url, s2.url, s3.url], replicas: 3, noRandomize: true, name: "node-a" }),
    );
    const b = track(
      await createNatsStore({ servers: [s2.url, s3.url, s1.url], replicas: 3, noRandomize: true, name: "node-b" }),
    );
    expect(a.connection.getServer()).toBe(`127.0.0.1:${s1.port}`);
    expect(b.connection.getServer()).toBe(`127.0.0.1:${s2.port}`);
    // Open the bucket from both sides before the stream of changes starts.
    await a.put("jobs", "start", '"a"');
    await waitFor("B to load the bucket", async () => (await b.get("jobs", "start")) !== undefined);
    const watchA = follow(a, "jobs");
    const watchB = follow(b, "jobs");
    await waitFor("both watches current", () => watchA.current && watchB.current);

    const written = new Map<string, string>([["start", '"a"']]);
    const perWriter = 150;
    let killedAt = -1;
    const writer = async (store: NatsStore, side: string) => {
      for (let i = 0; i < perWriter; i++) {
        const key = `${side}/${i}`;
        const value = JSON.stringify({ side, i });
        await putRetrying(store, "jobs", key, value);
        written.set(key, value);
        await sleep(10);
      }
    };
    const killer = (async () => {
      await waitFor("a third of the changes", () => written.size > perWriter * 0.66, 30_000);
      killedAt = written.size;
      await s1.kill("SIGKILL");
    })();
    const t0 = Date.now();
    await Promise.all([writer(a, "a"), writer(b, "b"), killer]);
    const writeMs = Date.now() - t0;
    expect(killedAt).toBeGreaterThan(0);
    expect(s1.running).toBe(false);
    // A failed over to one of the servers still up.
    expect(a.connection.getServer()).not.toBe(`127.0.0.1:${s1.port}`);

    // Changes after the failover, from both sides.
    await putRetrying(a, "jobs", "after/a", '"a"');
    await putRetrying(b, "jobs", "after/b", '"b"');
    written.set("after/a", '"a"');
    written.set("after/b", '"b"');
    const expected = Object.fromEntries([...written].sort(([x], [y]) => x.localeCompare(y)));
    const t1 = Date.now();
    await waitFor(
      "both replicas to hold every change",
      async () =>
        JSON.stringify(values(await a.list("jobs"))) === JSON.stringify(expected) &&
        JSON.stringify(values(await b.list("jobs"))) === JSON.stringify(expected),
      30_000,
    );
    // The watches resumed too: they saw every change, not just a re-read.
    await waitFor(
      "both watches to hold every change",
      () =>
        JSON.stringify(values([...watchA.seen.values()])) === JSON.stringify(expected) &&
        JSON.stringify(values([...watchB.seen.values()])) === JSON.stringify(expected),
      30_000,
    );
    console.log(
      `failover: ${written.size} changes written in ${writeMs} ms (s1 killed after ${killedAt}); ` +
        `replicas and watches complete ${Date.now() - t1} ms after the last write`,
    );
    // The servers agree with the replicas: a fresh node that loads the bucket now sees the same.
    const c = track(await createNatsStore({ servers: [s2.url, s3.url], name: "node-c" }));
    expect(values(await c.list("jobs"))).toEqual(expected);
    await Promise.all([watchA.stop(), watchB.stop()]);
  });

  it("resumes watches after a server restart (SIGTERM, same store directory)", async () => {
    const server = await startNatsServer({ jetstream: true });
    servers.push(server);
    const a = track(await createNatsStore({ servers: server.url, name: "node-a" }));
    const b = track(await createNatsStore({ servers: server.url, name: "node-b" }));
    await a.put("nodes", "n1", '{"v":1}');
    const watchB = follow(b, "nodes");
    await waitFor("B's watch to see n1", () => watchB.seen.get("n1")?.value === '{"v":1}');
    await server.kill("SIGTERM");
    await server.restart();
    const t0 = Date.now();
    await putRetrying(a, "nodes", "n1", '{"v":2}');
    const putMs = Date.now() - t0;
    await waitFor(
      "B's watch to see the change after the restart",
      () => watchB.seen.get("n1")?.value === '{"v":2}',
      15_000,
    );
    console.log(`restart: first put ${putMs} ms after the server was back, B saw it ${Date.now() - t0} ms after`);
    // Writes wait for the reconnect instead of being buffered into a lost request (a 5 s timeout).
    expect(putMs).toBeLessThan(3_000);
    // The restarted server kept the bucket, and the revision went on from where it was.
    expect((await b.get("nodes", "n1"))?.revision).toBeGreaterThan(1);
    await a.put("nodes", "n2", '{"v":1}');
    await waitFor("B's watch to see the next change", () => watchB.seen.has("n2"), 5_000);
    await watchB.stop();
  });

  it("converges after a burst of 10,000 changes from two nodes, with CAS on a shared counter", async () => {
    const server = await startNatsServer({ jetstream: true });
    servers.push(server);
    const a = track(await createNatsStore({ servers: server.url, name: "node-a", history: 5 }));
    const b = track(await createNatsStore({ servers: server.url, name: "node-b", history: 5 }));
    await a.put("sequences", "counter", "0", 0);
    await waitFor("B to load the counter", async () => (await b.get("sequences", "counter")) !== undefined);
    const watchA = follow(a, "sequences");
    const watchB = follow(b, "sequences");
    const written = new Map<string, Set<string>>();
    let increments = 0;
    let mismatches = 0;
    const perNode = 5_000;
    const concurrency = 16;
    const node = async (store: NatsStore, side: string) => {
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < perNode; i = next++) {
          if (i % 10 === 0) {
            // One compare-and-set attempt on the shared counter, from the local replica.
            const cur = await store.get("sequences", "counter");
            try {
              await store.put("sequences", "counter", String(Number(cur?.value) + 1), cur?.revision ?? 0);
              increments++;
            } catch (e) {
              if (!isRevisionMismatch(e)) throw e;
              mismatches++;
            }
            continue;
          }
          const key = `k/${i % 250}`;
          const value = JSON.stringify({ side, i });
          let set = written.get(key);
          if (set === undefined) written.set(key, (set = new Set()));
          set.add(value);
          if (i % 97 === 0) await store.delete("sequences", key);
          else await store.put("sequences", key, value);
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
    };
    const t0 = Date.now();
    await Promise.all([node(a, "a"), node(b, "b")]);
    const writeMs = Date.now() - t0;
    const snapshot = async (s: NatsStore) =>
      JSON.stringify((await s.list("sequences")).map((e) => [e.key, e.value, e.revision]).sort());
    await waitFor("both replicas to converge", async () => (await snapshot(a)) === (await snapshot(b)), 20_000);
    const convergedMs = Date.now() - t0 - writeMs;
    // A fresh node loading from the server sees the same state.
    const c = track(await createNatsStore({ servers: server.url, name: "node-c" }));
    expect(await snapshot(c)).toBe(await snapshot(a));
    await waitFor(
      "both watches to match the replicas",
      () => JSON.stringify(values([...watchA.seen.values()])) === JSON.stringify(values([...watchB.seen.values()])),
      10_000,
    );
    expect(values([...watchA.seen.values()])).toEqual(values(await a.list("sequences")));
    expect((await a.get("sequences", "counter"))?.value).toBe(String(increments));
    for (const e of await a.list("sequences")) {
      if (e.key !== "counter") expect(written.get(e.key)?.has(e.value), e.key).toBe(true);
    }
    console.log(
      `burst: ${2 * perNode} changes in ${writeMs} ms (${Math.round((2 * perNode * 1000) / writeMs)}/s), ` +
        `converged ${convergedMs} ms after; counter ${increments} (${mismatches} CAS mismatches)`,
    );
    expect(increments).toBeGreaterThan(0);
    await Promise.all([watchA.stop(), watchB.stop()]);
  });
});
