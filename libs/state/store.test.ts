import { describe, expect, it } from "vitest";
import { createMemoryStore, type WatchEvent } from "./store.js";

const keyOf = (e: WatchEvent) =>
  "entry" in e ? `${e.entry.key}=${e.entry.present ? e.entry.value : "<deleted>"}` : "<currentDone>";

// The StateStore contract itself (put/get/list/delete, CAS, watch) runs for this store and
// the NATS store in store-conformance.ts; here: what only the memory store promises.
describe("memory store", () => {
  it("gives every change a higher revision, across keys and buckets", async () => {
    const store = createMemoryStore();
    const r1 = (await store.put("models", "a", "1")).revision;
    const r2 = (await store.put("models", "b", "2")).revision;
    const r3 = (await store.put("jobs", "a", "3")).revision;
    const r4 = (await store.put("models", "a", "4")).revision;
    expect(r1).toBeGreaterThan(0);
    expect(r2).toBeGreaterThan(r1);
    expect(r3).toBeGreaterThan(r2);
    expect(r4).toBeGreaterThan(r3);
    expect((await store.get("models", "a"))?.revision).toBe(r4);
  });

  it("an already-aborted signal ends the watch after the snapshot", async () => {
    const store = createMemoryStore();
    await store.put("models", "a", "1");
    const seen: WatchEvent[] = [];
    for await (const ev of store.watch("models", "", AbortSignal.abort())) seen.push(ev);
    expect(seen.map(keyOf)).toEqual(["a=1", "<currentDone>"]);
  });
});
