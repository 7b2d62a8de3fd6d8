/** One revisioned entry of a bucket. */
export interface StoredEntry {
  bucket: string;
  key: string;
  /** JSON text. */
  value: string;
  /** Store-wide increasing revision of the last change to this key. */
  revision: number;
  /** False for a deletion seen on a watch. */
  present: boolean;
  updatedMs: number;
}

/** A change seen by a watch: an entry, or the marker that the initial snapshot is complete. */
export type WatchEvent = { entry: StoredEntry } | { currentDone: true };

/** Thrown when a compare-and-set finds another revision. */
export class RevisionMismatchError extends Error {
  override readonly name = "RevisionMismatchError";
  constructor(
    readonly key: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`${key} is at revision ${actual}, not ${expected}`);
  }
}

/** Guard for {@link RevisionMismatchError}. */
export function isRevisionMismatch(e: unknown): e is RevisionMismatchError {
  return e instanceof RevisionMismatchError;
}

/**
 * The state store behind the state service: buckets of revisioned JSON entries with
 * compare-and-set and watches. The embedded backend keeps them in memory; a JetStream KV
 * backend implements the same interface.
 */
export interface StateStore {
  get(bucket: string, key: string): Promise<StoredEntry | undefined>;
  /** With `expectedRevision` (0 = must be absent) the write is a compare-and-set. */
  put(bucket: string, key: string, value: string, expectedRevision?: number): Promise<StoredEntry>;
  delete(bucket: string, key: string): Promise<void>;
  list(bucket: string, prefix?: string): Promise<StoredEntry[]>;
  /** Current entries (unless skipCurrent), a currentDone marker, then each change until the signal aborts. */
  watch(bucket: string, prefix: string, signal: AbortSignal, skipCurrent?: boolean): AsyncIterable<WatchEvent>;
  close(): Promise<void>;
}

/** Bucket and key names: letters, digits, `-`, `_`, `.`, `/`, `=` (JetStream KV's alphabet). */
export const namePattern = /^[A-Za-z0-9_\-./=]+$/;

/** The in-memory store: the embedded default when no NATS address is given. */
export function createMemoryStore(): StateStore {
  const buckets = new Map<string, Map<string, StoredEntry>>();
  const watchers = new Set<{ bucket: string; prefix: string; push: (e: StoredEntry) => void }>();
  let revision = 0;
  const bucketOf = (b: string) => {
    let m = buckets.get(b);
    if (m === undefined) {
      m = new Map();
      buckets.set(b, m);
    }
    return m;
  };
  const publish = (e: StoredEntry) => {
    for (const w of watchers) if (w.bucket === e.bucket && e.key.startsWith(w.prefix)) w.push(e);
  };
  return {
    async get(bucket, key) {
      return buckets.get(bucket)?.get(key);
    },
    async put(bucket, key, value, expectedRevision) {
      const m = bucketOf(bucket);
      const current = m.get(key);
      if (expectedRevision !== undefined && (current?.revision ?? 0) !== expectedRevision) {
        throw new RevisionMismatchError(key, expectedRevision, current?.revision ?? 0);
      }
      const entry: StoredEntry = { bucket, key, value, revision: ++revision, present: true, updatedMs: Date.now() };
      m.set(key, entry);
      publish(entry);
      return entry;
    },
    async delete(bucket, key) {
      const m = buckets.get(bucket);
      if (m?.delete(key))
        publish({ bucket, key, value: "", revision: ++revision, present: false, updatedMs: Date.now() });
    },
    async list(bucket, prefix = "") {
      return [...(buckets.get(bucket)?.values() ?? [])].filter((e) => e.key.startsWith(prefix));
    },
    async *watch(bucket, prefix, signal, skipCurrent = false) {
      const pending: StoredEntry[] = [];
      let wake: (() => void) | undefined;
      const w = {
        bucket,
        prefix,
        push(e: StoredEntry) {
          pending.push(e);
          wake?.();
        },
      };
      watchers.add(w);
      const onAbort = () => wake?.();
      signal.addEventListener("abort", onAbort);
      try {
        if (!skipCurrent) {
          for (const e of buckets.get(bucket)?.values() ?? []) if (e.key.startsWith(prefix)) yield { entry: e };
        }
        yield { currentDone: true };
        while (!signal.aborted) {
          while (pending.length > 0) {
            const e = pending.shift() as StoredEntry;
            yield { entry: e };
          }
          // The abort may have come while the consumer held the last event (wake was unset then).
          if (signal.aborted) break;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      } finally {
        watchers.delete(w);
        signal.removeEventListener("abort", onAbort);
      }
    },
    async close() {
      watchers.clear();
    },
  };
}
