import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StateService } from "../../libs/gen/sluice/v1/state_pb.js";
import { createMemoryStore } from "../../libs/state/index.js";
import { type RunningServer, startServer } from "../../libs/transport/index.js";
import { stateRoutes } from "./handlers.js";

type State = Client<typeof StateService>;

let server: RunningServer;
let state: State;
/** A second caller on its own connection (gRPC over HTTP/2), as another service would be. */
let other: State;

beforeAll(async () => {
  server = await startServer({ name: "state", services: [StateService], routes: stateRoutes(createMemoryStore()) });
  const baseUrl = `http://${server.address}`;
  state = createClient(StateService, createConnectTransport({ baseUrl, httpVersion: "2" }));
  other = createClient(StateService, createGrpcTransport({ baseUrl }));
});

afterAll(async () => {
  await server.close(500);
});

/** The ConnectError a call fails with; fails the test when the call succeeds. */
async function failure(call: Promise<unknown>): Promise<ConnectError> {
  const result = await call.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (result.ok)
    throw new Error(
      `expected the call to fail, it returned ${JSON.stringify(result.v, (_, x) => (typeof x === "bigint" ? String(x) : x))}`,
    );
  return ConnectError.from(result.e);
}

const stateOf = async (bucket: string, key: string) =>
  JSON.parse((await state.get({ bucket, key })).entry?.value ?? "{}") as { state?: string; reason?: string };

let unique = 0;
const freshKey = (prefix: string) => `${prefix}-${++unique}`;

describe("Transition on models", () => {
  it("follows registered → loading → ready → draining → unloaded, with a higher revision each time", async () => {
    const key = freshKey("mlp");
    let revision = 0n;
    let previous = "";
    for (const to of ["registered", "loading", "ready", "draining", "unloaded"]) {
      const res = await state.transition({ bucket: "models", key, to });
      expect(res.previous).toBe(previous);
      expect(res.entry?.revision).toBeGreaterThan(revision);
      expect(JSON.parse(res.entry?.value ?? "")).toMatchObject({ name: key, state: to });
      revision = res.entry?.revision ?? 0n;
      previous = to;
    }
    expect((await stateOf("models", key)).state).toBe("unloaded");
    // unloaded → loading → ready: a model can come back.
    await state.transition({ bucket: "models", key, to: "loading" });
    await state.transition({ bucket: "models", key, to: "ready" });
    expect((await stateOf("models", key)).state).toBe("ready");
  });

  it("refuses ready → registered with FailedPrecondition naming the current state, and changes nothing", async () => {
    const key = freshKey("mlp");
    for (const to of ["registered", "loading", "ready"]) await state.transition({ bucket: "models", key, to });
    const before = (await state.get({ bucket: "models", key })).entry;
    const err = await failure(state.transition({ bucket: "models", key, to: "registered" }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("ready");
    expect(err.rawMessage).toMatch(/is ready/);
    expect((await state.get({ bucket: "models", key })).entry).toEqual(before);
  });

  it("skipping a state is refused: registered → ready", async () => {
    const key = freshKey("mlp");
    await state.transition({ bucket: "models", key, to: "registered" });
    const err = await failure(state.transition({ bucket: "models", key, to: "ready" }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("registered");
  });

  it("an absent model starts only as registered", async () => {
    const key = freshKey("ghost");
    const err = await failure(state.transition({ bucket: "models", key, to: "loading" }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("registered");
    expect((await failure(state.get({ bucket: "models", key }))).code).toBe(Code.NotFound);
  });

  it("a move with `from` happens only from that state", async () => {
    const key = freshKey("mlp");
    await state.transition({ bucket: "models", key, to: "registered" });
    const err = await failure(state.transition({ bucket: "models", key, to: "loading", from: "ready" }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("registered");
    const ok = await state.transition({ bucket: "models", key, to: "loading", from: "registered" });
    expect(ok.previous).toBe("registered");
  });
});

describe("Transition on jobs", () => {
  it("follows initialized → training → serving → done", async () => {
    const key = freshKey("train");
    let previous = "";
    for (const to of ["initialized", "training", "serving", "done"]) {
      const res = await state.transition({ bucket: "jobs", key, to });
      expect(res.previous).toBe(previous);
      previous = to;
    }
    expect((await stateOf("jobs", key)).state).toBe("done");
  });

  it("moves from any state to failed, keeping the reason", async () => {
    const path = ["initialized", "training", "serving", "done"];
    for (let i = 0; i < path.length; i++) {
      const key = freshKey("job");
      for (const to of path.slice(0, i + 1)) await state.transition({ bucket: "jobs", key, to });
      const res = await state.transition({ bucket: "jobs", key, to: "failed", reason: `broke while ${path[i]}` });
      expect(res.previous).toBe(path[i]);
      expect(await stateOf("jobs", key)).toMatchObject({ state: "failed", reason: `broke while ${path[i]}` });
    }
  });

  it("failed → reset → initialized, and the reason goes away", async () => {
    const key = freshKey("job");
    await state.transition({ bucket: "jobs", key, to: "initialized" });
    await state.transition({ bucket: "jobs", key, to: "training" });
    await state.transition({ bucket: "jobs", key, to: "failed", reason: "out of memory" });
    // failed goes only to reset.
    const err = await failure(state.transition({ bucket: "jobs", key, to: "initialized" }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("failed");
    await state.transition({ bucket: "jobs", key, to: "reset" });
    const res = await state.transition({ bucket: "jobs", key, to: "initialized" });
    expect(res.previous).toBe("reset");
    const value = await stateOf("jobs", key);
    expect(value.state).toBe("initialized");
    expect(value.reason).toBeUndefined();
    // And it can run again.
    await state.transition({ bucket: "jobs", key, to: "training" });
  });

  it("done → training is refused", async () => {
    const key = freshKey("job");
    for (const to of ["initialized", "training", "serving", "done"])
      await state.transition({ bucket: "jobs", key, to });
    const err = await failure(state.transition({ bucket: "jobs", key, to: "training" }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("done");
  });
});

describe("racing transitions", () => {
  it("two callers moving the same entry with `from` set: exactly one wins, every time", async () => {
    for (let round = 0; round < 25; round++) {
      const key = freshKey("race");
      for (const to of ["registered", "loading", "ready", "draining"])
        await state.transition({ bucket: "models", key, to });
      // Both legal from draining; each insists on draining, so at most one can happen.
      const results = await Promise.allSettled([
        state.transition({ bucket: "models", key, to: "unloaded", from: "draining" }),
        other.transition({ bucket: "models", key, to: "ready", from: "draining" }),
      ]);
      const won = results.filter((r) => r.status === "fulfilled");
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      expect(won.length, `round ${round}`).toBe(1);
      expect(lost.length).toBe(1);
      expect(ConnectError.from(lost[0]?.reason).code).toBe(Code.FailedPrecondition);
      const winner = (won[0] as PromiseFulfilledResult<{ entry?: { value: string } }>).value;
      expect(winner.entry?.value).toBeDefined();
      // The stored state is the winner's.
      expect((await stateOf("models", key)).state).toBe(JSON.parse(winner.entry?.value ?? "{}").state);
    }
  });

  it("two callers creating the same job: exactly one creates it", async () => {
    for (let round = 0; round < 10; round++) {
      const key = freshKey("create");
      const results = await Promise.allSettled([
        state.transition({ bucket: "jobs", key, to: "initialized" }),
        other.transition({ bucket: "jobs", key, to: "initialized" }),
      ]);
      expect(results.filter((r) => r.status === "fulfilled").length, `round ${round}`).toBe(1);
    }
  });

  it("a compare-and-set Put with a stale revision is refused with FailedPrecondition", async () => {
    const key = freshKey("cas");
    const first = await state.put({ bucket: "settings", key, value: "{}", expectedRevision: 0n });
    const second = await other.put({
      bucket: "settings",
      key,
      value: '{"v":2}',
      expectedRevision: first.entry?.revision ?? 0n,
    });
    const err = await failure(
      state.put({ bucket: "settings", key, value: '{"v":3}', expectedRevision: first.entry?.revision ?? 0n }),
    );
    expect(err.code).toBe(Code.FailedPrecondition);
    expect((await state.get({ bucket: "settings", key })).entry?.revision).toBe(second.entry?.revision);
    const again = await failure(state.put({ bucket: "settings", key, value: "{}", expectedRevision: 0n }));
    expect(again.code).toBe(Code.FailedPrecondition);
  });
});

describe("validation", () => {
  const badNames = ["", "has space", "star*", "gt>", "ünïcode"];

  it.each(badNames)("refuses the bucket or key name %j with InvalidArgument on every call", async (bad) => {
    const calls: Array<[string, () => Promise<unknown>]> = [
      ["get bucket", () => state.get({ bucket: bad, key: "k" })],
      ["get key", () => state.get({ bucket: "models", key: bad })],
      ["put bucket", () => state.put({ bucket: bad, key: "k", value: "{}" })],
      ["put key", () => state.put({ bucket: "models", key: bad, value: "{}" })],
      ["delete key", () => state.delete({ bucket: "models", key: bad })],
      ["list bucket", () => state.list({ bucket: bad })],
      ["transition key", () => state.transition({ bucket: "models", key: bad, to: "registered" })],
    ];
    for (const [what, call] of calls) {
      const err = await failure(call());
      expect(err.code, what).toBe(Code.InvalidArgument);
      expect(err.rawMessage, what).toContain("not valid");
    }
    const watch = async () => {
      for await (const _ of state.watch({ bucket: bad })) break;
    };
    expect((await failure(watch())).code).toBe(Code.InvalidArgument);
  });

  it("accepts the whole KV alphabet in names", async () => {
    const key = "a-b_c.d/e=f9";
    await state.put({ bucket: "Bucket_1-x", key, value: "true" });
    expect((await state.get({ bucket: "Bucket_1-x", key })).entry?.value).toBe("true");
  });

  it.each(["not json", "{", "{'single': 1}", "", "undefined"])(
    "refuses the non-JSON value %j with InvalidArgument and stores nothing",
    async (value) => {
      const key = freshKey("json");
      const err = await failure(state.put({ bucket: "pipelines", key, value }));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toContain("JSON");
      expect((await failure(state.get({ bucket: "pipelines", key }))).code).toBe(Code.NotFound);
    },
  );

  it("refuses a bucket without a lifecycle and a state outside the graph", async () => {
    const noGraph = await failure(state.transition({ bucket: "pipelines", key: "p", to: "ready" }));
    expect(noGraph.code).toBe(Code.InvalidArgument);
    const noState = await failure(state.transition({ bucket: "models", key: freshKey("m"), to: "flying" }));
    expect(noState.code).toBe(Code.InvalidArgument);
    expect(noState.rawMessage).toContain("flying");
  });
});

describe("Watch", () => {
  it("sees a Put and a Delete from another client, after the snapshot", async () => {
    const bucket = "nodes";
    await state.put({ bucket, key: "watch/existing", value: '{"n":0}' });
    const ac = new AbortController();
    const seen: Array<{ key: string; value: string; present: boolean } | "done"> = [];
    let notify: (() => void) | undefined;
    const watching = (async () => {
      try {
        for await (const ev of state.watch({ bucket, prefix: "watch/" }, { signal: ac.signal })) {
          seen.push(
            ev.currentDone
              ? "done"
              : { key: ev.entry?.key ?? "", value: ev.entry?.value ?? "", present: ev.entry?.present ?? false },
          );
          notify?.();
        }
      } catch (e) {
        if (!ac.signal.aborted) throw e;
      }
    })();
    const waitFor = async (n: number) => {
      const until = Date.now() + 5_000;
      while (seen.length < n && Date.now() < until) {
        await new Promise<void>((r) => {
          notify = r;
          setTimeout(r, 50);
        });
      }
      expect(seen.length, JSON.stringify(seen)).toBeGreaterThanOrEqual(n);
    };
    await waitFor(2);
    expect(seen).toEqual([{ key: "watch/existing", value: '{"n":0}', present: true }, "done"]);

    await other.put({ bucket, key: "watch/new", value: '{"n":1}' });
    await other.put({ bucket, key: "elsewhere", value: '{"n":2}' });
    await other.delete({ bucket, key: "watch/existing" });
    await waitFor(4);
    expect(seen.slice(2)).toEqual([
      { key: "watch/new", value: '{"n":1}', present: true },
      { key: "watch/existing", value: "", present: false },
    ]);
    ac.abort();
    await watching;
  });

  it("with skipCurrent sees only the marker, then changes", async () => {
    const bucket = "sequences";
    await state.put({ bucket, key: "s/1", value: "1" });
    const ac = new AbortController();
    const it = state.watch({ bucket, skipCurrent: true }, { signal: ac.signal })[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value?.currentDone).toBe(true);
    await other.transition({ bucket: "jobs", key: freshKey("noise"), to: "initialized" });
    await other.put({ bucket, key: "s/2", value: "2" });
    const second = await it.next();
    expect(second.value?.entry?.key).toBe("s/2");
    ac.abort();
    await it.next().catch(() => undefined);
  });
});

describe("Put on buckets Sluice reads", () => {
  it("refuses a pipeline that is not a valid spec, naming the bad key, or one stored under another name", async () => {
    const bad = await failure(
      state.put({ bucket: "pipelines", key: "p1", value: JSON.stringify({ name: "p1", model: "m", feilds: [] }) }),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.rawMessage).toContain("feilds");
    const misnamed = await failure(
      state.put({
        bucket: "pipelines",
        key: "p2",
        value: JSON.stringify({
          name: "other",
          model: "m",
          fields: [{ name: "x", type: "number", fill: { strategy: "constant", value: 0 } }],
        }),
      }),
    );
    expect(misnamed.code).toBe(Code.InvalidArgument);
    expect(misnamed.rawMessage).toContain("must equal");
    const ok = await state.put({
      bucket: "pipelines",
      key: "p3",
      value: JSON.stringify({
        name: "p3",
        model: "m",
        fields: [{ name: "x", type: "number", fill: { strategy: "constant", value: 0 } }],
      }),
    });
    expect(ok.entry?.key).toBe("p3");
  });

  it("refuses a Put that would change a model's or job's state: that is Transition's job", async () => {
    await state.transition({ bucket: "jobs", key: "put-job", to: "initialized" });
    const skip = await failure(
      state.put({ bucket: "jobs", key: "put-job", value: JSON.stringify({ name: "put-job", state: "done" }) }),
    );
    expect(skip.code).toBe(Code.FailedPrecondition);
    expect(skip.rawMessage).toContain("Transition");
    const same = await state.put({
      bucket: "jobs",
      key: "put-job",
      value: JSON.stringify({ name: "put-job", state: "initialized", owner: "me" }),
    });
    expect(JSON.parse(same.entry?.value ?? "{}").owner).toBe("me");
    const fresh = await failure(
      state.put({ bucket: "models", key: "put-model", value: JSON.stringify({ state: "ready" }) }),
    );
    expect(fresh.code).toBe(Code.FailedPrecondition);
    const notObject = await failure(state.put({ bucket: "models", key: "put-model", value: "[1]" }));
    expect(notObject.code).toBe(Code.InvalidArgument);
  });

  it("refuses an unfitted pipeline spec and out-of-range serving parameters", async () => {
    const unfitted = await failure(
      state.put({
        bucket: "pipelines",
        key: "p4",
        value: JSON.stringify({ name: "p4", model: "m", fields: [{ name: "x", type: "number", scale: "zscore" }] }),
      }),
    );
    expect(unfitted.code).toBe(Code.InvalidArgument);
    expect(unfitted.rawMessage).toContain("sluice fit");
    await state.transition({ bucket: "models", key: "param-model", to: "registered" });
    const put = (params: unknown) =>
      state.put({
        bucket: "models",
        key: "param-model",
        value: JSON.stringify({ name: "param-model", state: "registered", params }),
      });
    for (const bad of [{ intraOpThreads: 99_999 }, { maxBatchSize: 0 }, { cache: "yes" }, { bogus: 1 }, [1]]) {
      expect((await failure(put(bad))).code, JSON.stringify(bad)).toBe(Code.InvalidArgument);
    }
    const ok = await put({ maxBatchSize: 32, cache: true, intraOpThreads: 2 });
    expect(JSON.parse(ok.entry?.value ?? "{}").params.maxBatchSize).toBe(32);
  });
});
