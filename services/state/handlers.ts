import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { type Entry, EntrySchema, StateService } from "../../libs/gen/sluice/v1/state_pb.js";
import { compilePipeline, parsePipelineSpec } from "../../libs/pipeline/index.js";
import {
  buckets,
  canTransition,
  IllegalTransitionError,
  initialState,
  isIllegalTransition,
  isRevisionMismatch,
  lifecycles,
  namePattern,
  type StateStore,
  type StoredEntry,
} from "../../libs/state/index.js";

function toEntry(e: StoredEntry): Entry {
  return create(EntrySchema, {
    bucket: e.bucket,
    key: e.key,
    value: e.value,
    revision: BigInt(e.revision),
    present: e.present,
    updatedMs: BigInt(e.updatedMs),
  });
}

function checkName(what: string, name: string): void {
  if (!namePattern.test(name)) {
    throw new ConnectError(
      `${what} ${JSON.stringify(name)} is not valid: use letters, digits and - _ . / =`,
      Code.InvalidArgument,
    );
  }
}

function checkJson(value: string): void {
  try {
    JSON.parse(value);
  } catch (e) {
    throw new ConnectError(`value is not JSON: ${(e as Error).message}`, Code.InvalidArgument);
  }
}

function rethrow(e: unknown): never {
  if (isRevisionMismatch(e)) throw new ConnectError(e.message, Code.FailedPrecondition);
  if (isIllegalTransition(e)) throw new ConnectError(e.message, Code.FailedPrecondition);
  if (e instanceof ConnectError) throw e;
  const message = e instanceof Error ? e.message : String(e);
  // The backend (NATS) is unreachable or failing over: the caller may try again.
  if (
    /NATS|disconnected|TIMEOUT|no responders|CONNECTION_/i.test(message) ||
    (e as { code?: unknown }).code === "TIMEOUT"
  ) {
    throw new ConnectError(`state backend unavailable: ${message}`, Code.Unavailable);
  }
  throw ConnectError.from(e);
}

/** Serving parameters a model entry may carry, with their ranges. */
const paramRanges: Record<string, [number, number] | "boolean"> = {
  maxBatchSize: [1, 10_000_000],
  maxQueueDelayMs: [0, 60_000],
  maxQueueRecords: [1, 100_000_000],
  intraOpThreads: [1, 64],
  cache: "boolean",
};

function checkParams(key: string, params: unknown): void {
  if (params === undefined) return;
  if (params === null || typeof params !== "object" || Array.isArray(params)) {
    throw new ConnectError(`models/${key}: params must be an object`, Code.InvalidArgument);
  }
  for (const [name, value] of Object.entries(params)) {
    const range = paramRanges[name];
    if (range === undefined) {
      throw new ConnectError(
        `models/${key}: unknown parameter ${name} (known: ${Object.keys(paramRanges).join(", ")})`,
        Code.InvalidArgument,
      );
    }
    const ok =
      range === "boolean"
        ? typeof value === "boolean"
        : typeof value === "number" && Number.isInteger(value) && value >= range[0] && value <= range[1];
    if (!ok) {
      const want = range === "boolean" ? "true or false" : `a whole number from ${range[0]} to ${range[1]}`;
      throw new ConnectError(
        `models/${key}: ${name} must be ${want}, got ${JSON.stringify(value)}`,
        Code.InvalidArgument,
      );
    }
  }
}

/**
 * Checks a value written with Put to a bucket whose entries Sluice reads: a pipeline must be a
 * valid spec named like its key; a model or job must be an object whose state only changes
 * through Transition.
 */
async function checkValue(store: StateStore, bucket: string, key: string, value: string): Promise<void> {
  if (bucket === buckets.pipelines) {
    try {
      const spec = parsePipelineSpec(value);
      if (spec.name !== key) {
        throw new ConnectError(`pipeline key ${key} must equal the spec's name ${spec.name}`, Code.InvalidArgument);
      }
      // Only a spec that compiles (fitted statistics present) can be put in force.
      compilePipeline(spec);
    } catch (e) {
      if (e instanceof ConnectError) throw e;
      throw new ConnectError(`pipeline ${key}: ${(e as Error).message}`, Code.InvalidArgument);
    }
    return;
  }
  const graph = lifecycles[bucket];
  if (graph === undefined) return;
  const v = JSON.parse(value) as unknown;
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new ConnectError(`${bucket}/${key} must be a JSON object`, Code.InvalidArgument);
  }
  if (bucket === buckets.models) checkParams(key, (v as { params?: unknown }).params);
  const state = (v as { state?: unknown }).state;
  const current = await store.get(bucket, key);
  const currentState = current
    ? ((JSON.parse(current.value) as { state?: unknown }).state ?? "")
    : initialState(bucket);
  if (state !== currentState) {
    throw new ConnectError(
      `${bucket}/${key}: state ${JSON.stringify(state)} differs from ${JSON.stringify(currentState)}; move it with Transition (sluice job move for jobs; inference moves models as it loads them)`,
      Code.FailedPrecondition,
    );
  }
}

/**
 * Moves `bucket/key` to `to` along its lifecycle graph with a compare-and-set on the
 * revision, retrying when another writer changed the entry in between. Creating an
 * absent entry is allowed only into the graph's first state.
 */
export async function transition(
  store: StateStore,
  bucket: string,
  key: string,
  to: string,
  from = "",
  reason = "",
): Promise<{ entry: StoredEntry; previous: string }> {
  const graph = lifecycles[bucket];
  if (graph === undefined)
    throw new ConnectError(`bucket ${bucket} has no lifecycle (use models or jobs)`, Code.InvalidArgument);
  if (!(to in graph))
    throw new ConnectError(
      `${to} is not a state of ${bucket} (states: ${Object.keys(graph).join(", ")})`,
      Code.InvalidArgument,
    );
  for (let attempt = 0; attempt < 50; attempt++) {
    const current = await store.get(bucket, key);
    let value: Record<string, unknown>;
    let previous = "";
    if (current === undefined) {
      if (to !== initialState(bucket)) {
        throw new ConnectError(
          `${bucket}/${key} does not exist; it starts as ${initialState(bucket)}`,
          Code.FailedPrecondition,
        );
      }
      value = { name: key };
    } else {
      const parsed = JSON.parse(current.value) as unknown;
      if (
        parsed === null ||
        typeof parsed !== "object" ||
        Array.isArray(parsed) ||
        typeof (parsed as { state?: unknown }).state !== "string"
      ) {
        throw new ConnectError(
          `${bucket}/${key} has no lifecycle state (its value is not an object with a "state")`,
          Code.FailedPrecondition,
        );
      }
      value = parsed as Record<string, unknown>;
      previous = value.state as string;
      if (from !== "" && previous !== from) {
        throw new ConnectError(`${bucket}/${key} is ${previous}, not ${from}`, Code.FailedPrecondition);
      }
      if (!canTransition(bucket, previous, to)) throw new IllegalTransitionError(bucket, key, previous, to);
    }
    value.state = to;
    if (to === "failed" && reason !== "") value.reason = reason;
    else delete value.reason;
    try {
      const entry = await store.put(bucket, key, JSON.stringify(value), current?.revision ?? 0);
      return { entry, previous };
    } catch (e) {
      if (!isRevisionMismatch(e)) throw e;
    }
  }
  throw new ConnectError(`${bucket}/${key}: too much contention`, Code.Aborted);
}

/** Registers the StateService handlers over `store`. */
export function stateRoutes(store: StateStore): (router: ConnectRouter) => void {
  return (router) =>
    router.service(StateService, {
      async get(req) {
        checkName("bucket", req.bucket);
        checkName("key", req.key);
        const e = await store.get(req.bucket, req.key);
        if (e === undefined) throw new ConnectError(`${req.bucket}/${req.key} not found`, Code.NotFound);
        return { entry: toEntry(e) };
      },
      async put(req) {
        checkName("bucket", req.bucket);
        checkName("key", req.key);
        checkJson(req.value);
        try {
          await checkValue(store, req.bucket, req.key, req.value);
          const e = await store.put(
            req.bucket,
            req.key,
            req.value,
            req.expectedRevision === undefined ? undefined : Number(req.expectedRevision),
          );
          return { entry: toEntry(e) };
        } catch (e) {
          rethrow(e);
        }
      },
      async delete(req) {
        checkName("bucket", req.bucket);
        checkName("key", req.key);
        await store.delete(req.bucket, req.key);
        return {};
      },
      async list(req) {
        checkName("bucket", req.bucket);
        const entries = await store.list(req.bucket, req.prefix);
        return { entries: entries.map(toEntry) };
      },
      async *watch(req, ctx) {
        checkName("bucket", req.bucket);
        for await (const ev of store.watch(req.bucket, req.prefix, ctx.signal, req.skipCurrent)) {
          if ("currentDone" in ev) yield { currentDone: true };
          else yield { entry: toEntry(ev.entry) };
        }
      },
      async transition(req) {
        checkName("key", req.key);
        try {
          const { entry, previous } = await transition(store, req.bucket, req.key, req.to, req.from, req.reason);
          return { entry: toEntry(entry), previous };
        } catch (e) {
          rethrow(e);
        }
      },
    });
}
