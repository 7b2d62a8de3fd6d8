import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { type Entry, EntrySchema, StateService } from "../../libs/gen/sluice/v1/state_pb.js";
import {
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
  throw ConnectError.from(e);
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
