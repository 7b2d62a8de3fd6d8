import { describe, expect, it } from "vitest";
import { createMemoryStore, isRevisionMismatch, RevisionMismatchError, type WatchEvent } from "./store.js";

/** Reads `n` events from a watch iterator, failing instead of hanging when they do not come. */
async function take(it: AsyncIterator<WatchEvent>, n: number, timeoutMs = 2_000): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  for (let i = 0; i < n; i++) {
    const next = await Promise.race([
      it.next(),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`watch gave ${out.length} of ${n} events`)), timeoutMs),
      ),
    ]);
    if (next.done) throw new Error(`watch ended after ${out.length} of ${n} events`);
    out.push(next.value);
  }
  return out;
}

/** Asserts that the watch ends (instead of waiting forever) after its signal aborted. */
async function expectEnded(it: AsyncIterator<WatchEvent>): Promise<void> {
  const next = await Promise.race([
    it.next(),
    new Promise<"hung">((resolve) => setTimeout(() => resolve("hung"), 2_000)),
  ]);
  expect(next === "hung" ? "watch still open after abort" : next.done).toBe(true);
}

const keyOf = (e: WatchEvent) =>
  "entry" in e ? `${e.entry.key}=${e.entry.present ? e.entry.value : "<deleted>"}` : "<currentDone>";

describe("memory store", () => {
  it("puts, gets, lists and deletes entries", async () => {
    const store = createMemoryStore();
    expect(await store.get("models", "a")).toBeUndefined();
    const a = await store.put("models", "a", '{"x":1}');
    expect(a).toMatchObject({ bucket: "models", key: "a", value: '{"x":1}', present: true });
    expect(a.updatedMs).toBeGreaterThan(0);
    await store.put("models", "b", '{"x":2}');
    await store.put("nodes", "a", '{"other":true}');
    expect((await store.get("models", "a"))?.value).toBe('{"x":1}');
    expect((await store.list("models")).map((e) => e.key).sort()).toEqual(["a", "b"]);
    expect((await store.list("nodes")).map((e) => e.value)).toEqual(['{"other":true}']);
    expect(await store.list("empty")).toEqual([]);
    await store.delete("models", "a");
    expect(await store.get("models", "a")).toBeUndefined();
    expect((await store.list("models")).map((e) => e.key)).toEqual(["b"]);
    // Deleting an absent key is not an error.
    await store.delete("models", "nope");
    await store.close();
  });

  it("lists by prefix", async () => {
    const store = createMemoryStore();
    for (const k of ["seq/1", "seq/2", "sequel", "other/1"]) await store.put("sequences", k, "{}");
    expect((await store.list("sequences", "seq/")).map((e) => e.key).sort()).toEqual(["seq/1", "seq/2"]);
    expect((await store.list("sequences", "seq")).map((e) => e.key).sort()).toEqual(["seq/1", "seq/2", "sequel"]);
  });

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

  it("compare-and-set: 0 creates an absent entry, the current revision updates, a stale one is refused", async () => {
    const store = createMemoryStore();
    const created = await store.put("models", "m", '{"state":"registered"}', 0);
    // 0 means "must be absent": a second create fails.
    const again = await store.put("models", "m", "{}", 0).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(RevisionMismatchError);
    expect(isRevisionMismatch(again)).toBe(true);
    expect(again).toMatchObject({ key: "m", expected: 0, actual: created.revision });

    const updated = await store.put("models", "m", '{"state":"loading"}', created.revision);
    expect(updated.revision).toBeGreaterThan(created.revision);

    const stale = await store.put("models", "m", '{"state":"ready"}', created.revision).catch((e: unknown) => e);
    expect(isRevisionMismatch(stale)).toBe(true);
    expect((stale as Error).message).toContain(String(updated.revision));
    // The refused write changed nothing.
    expect(await store.get("models", "m")).toEqual(updated);

    // A non-zero expectation on an absent key fails too.
    const absent = await store.put("models", "ghost", "{}", 5).catch((e: unknown) => e);
    expect(absent).toMatchObject({ name: "RevisionMismatchError", expected: 5, actual: 0 });
    expect(isRevisionMismatch(new Error("x"))).toBe(false);
  });

  it("watch delivers the current entries, then currentDone, then each change in order", async () => {
    const store = createMemoryStore();
    await store.put("models", "a", '"a1"');
    await store.put("models", "b", '"b1"');
    await store.put("nodes", "n", '"not this bucket"');
    const ac = new AbortController();
    const it = store.watch("models", "", ac.signal)[Symbol.asyncIterator]();
    const first = await take(it, 3);
    expect(first.slice(0, 2).map(keyOf).sort()).toEqual(['a="a1"', 'b="b1"']);
    expect(first[2]).toEqual({ currentDone: true });

    await store.put("models", "a", '"a2"');
    await store.put("nodes", "n", '"ignored"');
    await store.put("models", "c", '"c1"');
    await store.delete("models", "b");
    const changes = await take(it, 3);
    expect(changes.map(keyOf)).toEqual(['a="a2"', 'c="c1"', "b=<deleted>"]);
    const revisions = changes.map((e) => ("entry" in e ? e.entry.revision : 0));
    expect(revisions).toEqual([...revisions].sort((x, y) => x - y));
    ac.abort();
    await expectEnded(it);
  });

  it("watch with skipCurrent starts with currentDone", async () => {
    const store = createMemoryStore();
    await store.put("models", "a", "1");
    const ac = new AbortController();
    const it = store.watch("models", "", ac.signal, true)[Symbol.asyncIterator]();
    expect(await take(it, 1)).toEqual([{ currentDone: true }]);
    await store.put("models", "a", "2");
    expect((await take(it, 1)).map(keyOf)).toEqual(["a=2"]);
    ac.abort();
    await expectEnded(it);
  });

  it("watch filters by prefix, for the snapshot and for changes", async () => {
    const store = createMemoryStore();
    await store.put("sequences", "s1/state", "1");
    await store.put("sequences", "s2/state", "2");
    const ac = new AbortController();
    const it = store.watch("sequences", "s1/", ac.signal)[Symbol.asyncIterator]();
    expect((await take(it, 2)).map(keyOf)).toEqual(["s1/state=1", "<currentDone>"]);
    await store.put("sequences", "s2/state", "22");
    await store.put("sequences", "s1/other", "3");
    // Only the s1/ change arrives; the s2/ one would come first if the filter leaked.
    expect((await take(it, 1)).map(keyOf)).toEqual(["s1/other=3"]);
    ac.abort();
    await expectEnded(it);
  });

  it("abort ends a watch that is waiting for changes, and it sees no more changes", async () => {
    const store = createMemoryStore();
    const ac = new AbortController();
    const seen: WatchEvent[] = [];
    const done = (async () => {
      for await (const ev of store.watch("models", "", ac.signal)) seen.push(ev);
    })();
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual([{ currentDone: true }]);
    await store.put("models", "a", "1");
    await new Promise((r) => setTimeout(r, 20));
    ac.abort();
    await Promise.race([
      done,
      new Promise((_, reject) => setTimeout(() => reject(new Error("watch did not end on abort")), 2_000)),
    ]);
    await store.put("models", "b", "2");
    expect(seen.map(keyOf)).toEqual(["<currentDone>", "a=1"]);
  });

  it("an already-aborted signal ends the watch after the snapshot", async () => {
    const store = createMemoryStore();
    await store.put("models", "a", "1");
    const seen: WatchEvent[] = [];
    for await (const ev of store.watch("models", "", AbortSignal.abort())) seen.push(ev);
    expect(seen.map(keyOf)).toEqual(["a=1", "<currentDone>"]);
  });
});
