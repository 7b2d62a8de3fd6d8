import { context, propagation, TraceFlags, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsServer, startNatsServer } from "../../test/helpers/nats.js";
import { createNatsStore, decodeKvKey, encodeKvKey, kvBucketName } from "./nats-store.js";
import { createMemoryStore } from "./store.js";
import { describeStoreConformance } from "./store-conformance.js";

let server: NatsServer | undefined;
let stores = 0;

beforeAll(async () => {
  server = await startNatsServer({ jetstream: true });
});
afterAll(async () => {
  await server?.stop();
});

/** A store on the test server with buckets of its own (a fresh bucket prefix). */
const natsStore = () => {
  if (server === undefined) throw new Error("no nats-server");
  return createNatsStore({ servers: server.url, bucketPrefix: `t${++stores}_` });
};

describeStoreConformance("memory store", async () => createMemoryStore());
describeStoreConformance("NATS KV store", natsStore);

describe("NATS KV names", () => {
  it("maps every key of the name alphabet to a valid KV key and back", () => {
    const kvKey = /^[-/=.\w]+$/;
    for (const k of ["a", "a.b", "a..b", ".a", "a.", "...", "a/b", "a=b", "=3D", "=2E", "x.y.z", "é☃𝄞"]) {
      const e = encodeKvKey(k);
      expect(e).toMatch(kvKey);
      expect(e.startsWith(".") || e.endsWith(".") || e.includes("..")).toBe(false);
      expect(decodeKvKey(e)).toBe(k);
    }
    expect(encodeKvKey("models/penguins.v1")).toBe("models/penguins.v1");
    expect(encodeKvKey("a=b")).toBe("a=3Db");
  });

  it("maps bucket names to KV bucket names", () => {
    expect(kvBucketName("models")).toBe("sluice_models");
    expect(kvBucketName("a.b/c=d-e", "x_")).toBe("x_a-2Eb-2Fc-3Dd-2De");
    expect(kvBucketName("a-2E")).not.toBe(kvBucketName("a.")); // escapes cannot collide
  });
});

describe("NATS KV store", () => {
  it("carries the active span's W3C trace context in the headers of puts and deletes", async () => {
    const manager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(manager);
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const store = await natsStore();
    try {
      await store.put("traced", "warmup", "1"); // creates the bucket
      const seen: string[] = [];
      const sub = store.connection.subscribe(`$KV.${kvBucketName("traced", `t${stores}_`)}.>`, {
        callback: (_err, msg) =>
          seen.push(`${msg.headers?.get("KV-Operation") || "PUT"} ${msg.headers?.get("traceparent") ?? ""}`),
      });
      await store.connection.flush();
      const traceId = "0af7651916cd43dd8448eb211c80319c";
      const spanId = "b7ad6b7169203331";
      const ctx = trace.setSpanContext(context.active(), { traceId, spanId, traceFlags: TraceFlags.SAMPLED });
      await context.with(ctx, async () => {
        await store.put("traced", "k", "1");
        await store.delete("traced", "k");
      });
      await store.connection.flush();
      sub.unsubscribe();
      expect(seen).toEqual([`PUT 00-${traceId}-${spanId}-01`, `DEL 00-${traceId}-${spanId}-01`]);
    } finally {
      await store.close();
      propagation.disable();
      context.disable();
    }
  });

  it("sees another store's changes in its replica and watch", async () => {
    const a = await natsStore();
    const b = await createNatsStore({ servers: (server as NatsServer).url, bucketPrefix: `t${stores}_` });
    try {
      const ac = new AbortController();
      const it = b.watch("models", "", ac.signal)[Symbol.asyncIterator]();
      expect((await it.next()).value).toEqual({ currentDone: true });
      const put = await a.put("models", "m", '"x"');
      const ev = (await it.next()).value;
      expect(ev).toEqual({ entry: expect.objectContaining({ key: "m", value: '"x"', revision: put.revision }) });
      expect((await b.get("models", "m"))?.revision).toBe(put.revision);
      // A compare-and-set on B with A's revision succeeds; a stale one on A is refused.
      const next = await b.put("models", "m", '"y"', put.revision);
      await expect(a.put("models", "m", '"z"', put.revision)).rejects.toMatchObject({
        name: "RevisionMismatchError",
        actual: next.revision,
      });
      // After the mismatch A's replica knows the newer revision, so a retry can succeed at once.
      expect((await a.get("models", "m"))?.revision).toBe(next.revision);
      ac.abort();
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
