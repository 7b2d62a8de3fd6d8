import { afterEach, describe, expect, it } from "vitest";
import { isRevisionMismatch, RevisionMismatchError, type StateStore, type WatchEvent } from "./store.js";

/** Reads `n` events from a watch iterator, failing instead of hanging when they do not come. */
export async function takeEvents(it: AsyncIterator<WatchEvent>, n: number, timeoutMs = 3_000): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  for (let i = 0; i < n; i++) {
    let timer: NodeJS.Timeout | undefined;
    const next = await Promise.race([
      it.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`watch gave ${out.length} of ${n} events`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    if (next.done) throw new Error(`watch ended after ${out.length} of ${n} events`);
    out.push(next.value);
  }
  return out;
}

/** `key=value`, `key=<deleted>` or `<currentDone>`: a watch event as a test reads it. */
export const describeEvent = (e: WatchEvent): string =>
  "entry" in e ? `${e.entry.key}=${e.entry.present ? e.entry.value : "<deleted>"}` : "<currentDone>";

/**
 * The {@link StateStore} contract as a vitest suite: every backend runs it. `makeStore` gives a
 * fresh, empty store for each test (the suite closes it after the test).
 */
export function describeStoreConformance(name: string, makeStore: () => Promise<StateStore>): void {
  describe(`${name}: StateStore contract`, () => {
    const open: StateStore[] = [];
    const fresh = async () => {
      const s = await makeStore();
      open.push(s);
      return s;
    };
    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.close()));
    });

    it("puts, gets, lists and deletes entries", async () => {
      const store = await fresh();
      expect(await store.get("models", "a")).toBeUndefined();
      const a = await store.put("models", "a", '{"x":1}');
      expect(a).toMatchObject({ bucket: "models", key: "a", value: '{"x":1}', present: true });
      expect(a.revision).toBeGreaterThan(0);
      expect(a.updatedMs).toBeGreaterThan(0);
      await store.put("models", "b", '{"x":2}');
      await store.put("nodes", "a", '{"other":true}');
      expect(await store.get("models", "a")).toMatchObject({ value: '{"x":1}', revision: a.revision, present: true });
      expect((await store.list("models")).map((e) => e.key).sort()).toEqual(["a", "b"]);
      expect((await store.list("nodes")).map((e) => e.value)).toEqual(['{"other":true}']);
      expect(await store.list("empty")).toEqual([]);
      await store.delete("models", "a");
      expect(await store.get("models", "a")).toBeUndefined();
      expect((await store.list("models")).map((e) => e.key)).toEqual(["b"]);
      // Deleting an absent key is not an error.
      await store.delete("models", "nope");
      expect(await store.get("models", "nope")).toBeUndefined();
    });

    it("keeps every key of the name alphabet apart, dots, slashes and equals signs included", async () => {
      const store = await fresh();
      const keys = ["a", "a.b", "a..b", ".a", "a.", "...", "a/b", "a=b", "=3D", "=2E", "a_b", "a-b", "A/B.c=d_e-f"];
      for (const [i, k] of keys.entries()) await store.put("odd.bucket/name=1", k, JSON.stringify(i));
      for (const [i, k] of keys.entries())
        expect((await store.get("odd.bucket/name=1", k))?.value).toBe(JSON.stringify(i));
      expect((await store.list("odd.bucket/name=1")).map((e) => e.key).sort()).toEqual([...keys].sort());
      expect((await store.list("odd.bucket/name=1", "a.")).map((e) => e.key).sort()).toEqual(
        ["a.", "a.b", "a..b"].sort(),
      );
    });

    it("lists by string prefix, not by token", async () => {
      const store = await fresh();
      for (const k of ["seq/1", "seq/2", "sequel", "other/1", "seq.3"]) await store.put("sequences", k, "{}");
      expect((await store.list("sequences", "seq/")).map((e) => e.key).sort()).toEqual(["seq/1", "seq/2"]);
      expect((await store.list("sequences", "seq")).map((e) => e.key).sort()).toEqual([
        "seq.3",
        "seq/1",
        "seq/2",
        "sequel",
      ]);
    });

    it("gives every change of a bucket a higher revision", async () => {
      const store = await fresh();
      const r1 = (await store.put("models", "a", "1")).revision;
      const r2 = (await store.put("models", "b", "2")).revision;
      const r3 = (await store.put("models", "a", "3")).revision;
      expect(r1).toBeGreaterThan(0);
      expect(r2).toBeGreaterThan(r1);
      expect(r3).toBeGreaterThan(r2);
      expect((await store.get("models", "a"))?.revision).toBe(r3);
      expect((await store.get("models", "b"))?.revision).toBe(r2);
    });

    it("compare-and-set: 0 creates an absent entry, the current revision updates, a stale one is refused", async () => {
      const store = await fresh();
      const created = await store.put("models", "m", '{"state":"registered"}', 0);
      const again = await store.put("models", "m", "{}", 0).catch((e: unknown) => e);
      expect(again).toBeInstanceOf(RevisionMismatchError);
      expect(isRevisionMismatch(again)).toBe(true);
      expect(again).toMatchObject({ key: "m", expected: 0, actual: created.revision });
      const updated = await store.put("models", "m", '{"state":"loading"}', created.revision);
      expect(updated.revision).toBeGreaterThan(created.revision);
      const stale = await store.put("models", "m", '{"state":"ready"}', created.revision).catch((e: unknown) => e);
      expect(stale).toMatchObject({
        name: "RevisionMismatchError",
        expected: created.revision,
        actual: updated.revision,
      });
      expect((await store.get("models", "m"))?.value).toBe('{"state":"loading"}');
      // Updating an absent key with a revision is refused; the actual revision of an absent key is 0.
      const absent = await store.put("models", "nobody", "{}", 7).catch((e: unknown) => e);
      expect(absent).toMatchObject({ name: "RevisionMismatchError", expected: 7, actual: 0 });
    });

    it("compare-and-set treats a deleted entry as absent", async () => {
      const store = await fresh();
      const first = await store.put("jobs", "j", '{"n":1}', 0);
      await store.delete("jobs", "j");
      const stale = await store.put("jobs", "j", '{"n":2}', first.revision).catch((e: unknown) => e);
      expect(stale).toMatchObject({ name: "RevisionMismatchError", actual: 0 });
      const again = await store.put("jobs", "j", '{"n":3}', 0);
      expect(again.revision).toBeGreaterThan(first.revision);
      expect((await store.get("jobs", "j"))?.value).toBe('{"n":3}');
    });

    it("counts every successful compare-and-set increment under contention", async () => {
      const store = await fresh();
      let wins = 0;
      const worker = async (n: number) => {
        for (let i = 0; i < n; ) {
          const cur = await store.get("jobs", "counter");
          const v = cur === undefined ? 0 : (JSON.parse(cur.value) as number);
          try {
            await store.put("jobs", "counter", JSON.stringify(v + 1), cur?.revision ?? 0);
            wins++;
            i++;
          } catch (e) {
            if (!isRevisionMismatch(e)) throw e;
          }
        }
      };
      await Promise.all([worker(20), worker(20), worker(20)]);
      expect(wins).toBe(60);
      expect((await store.get("jobs", "counter"))?.value).toBe("60");
    });

    it("watch: current entries, currentDone, then each change, deletions as present:false", async () => {
      const store = await fresh();
      await store.put("models", "a", '"a1"');
      await store.put("models", "b", '"b1"');
      await store.put("other", "a", '"elsewhere"');
      const ac = new AbortController();
      const it = store.watch("models", "", ac.signal)[Symbol.asyncIterator]();
      const initial = await takeEvents(it, 3);
      expect(initial.slice(0, 2).map(describeEvent).sort()).toEqual(['a="a1"', 'b="b1"']);
      expect(initial[2]).toEqual({ currentDone: true });
      const b2 = await store.put("models", "b", '"b2"');
      await store.delete("models", "a");
      await store.put("other", "x", '"not this bucket"');
      await store.put("models", "c", '"c1"');
      const changes = await takeEvents(it, 3);
      expect(changes.map(describeEvent)).toEqual(['b="b2"', "a=<deleted>", 'c="c1"']);
      const [first, deleted] = changes as [WatchEvent, WatchEvent];
      expect("entry" in first && first.entry.revision).toBe(b2.revision);
      expect("entry" in deleted && deleted.entry).toMatchObject({ bucket: "models", key: "a", present: false });
      expect("entry" in deleted && deleted.entry.revision).toBeGreaterThan(b2.revision);
      ac.abort();
      await it.return?.();
    });

    it("watch filters by key prefix and can skip the current entries", async () => {
      const store = await fresh();
      await store.put("sequences", "s/1", "1");
      await store.put("sequences", "t/1", "1");
      const ac = new AbortController();
      const all = store.watch("sequences", "s/", ac.signal)[Symbol.asyncIterator]();
      const skip = store.watch("sequences", "s/", ac.signal, true)[Symbol.asyncIterator]();
      expect((await takeEvents(all, 2)).map(describeEvent)).toEqual(["s/1=1", "<currentDone>"]);
      expect((await takeEvents(skip, 1)).map(describeEvent)).toEqual(["<currentDone>"]);
      await store.put("sequences", "t/2", "2");
      await store.put("sequences", "s/2", "2");
      expect((await takeEvents(all, 1)).map(describeEvent)).toEqual(["s/2=2"]);
      expect((await takeEvents(skip, 1)).map(describeEvent)).toEqual(["s/2=2"]);
      ac.abort();
    });

    it("ends a watch when its signal aborts, also while it waits for a change", async () => {
      const store = await fresh();
      const ac = new AbortController();
      const it = store.watch("models", "", ac.signal)[Symbol.asyncIterator]();
      expect(await takeEvents(it, 1)).toEqual([{ currentDone: true }]);
      const waiting = it.next();
      setTimeout(() => ac.abort(), 20);
      let timer: NodeJS.Timeout | undefined;
      const next = await Promise.race([
        waiting,
        new Promise<"hung">((resolve) => {
          timer = setTimeout(() => resolve("hung"), 2_000);
        }),
      ]).finally(() => clearTimeout(timer));
      expect(next === "hung" ? "watch still open after abort" : next.done).toBe(true);
      // A store keeps working for other callers after one watch ended.
      await store.put("models", "after", "1");
      expect((await store.get("models", "after"))?.value).toBe("1");
    });
  });
}
