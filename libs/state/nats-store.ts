import { randomUUID } from "node:crypto";
import {
  AckPolicy,
  consumerOpts,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamPublishOptions,
  type JetStreamSubscription,
  type JsMsg,
  type KV,
  type KvEntry,
  type NatsConnection,
  type NatsError,
  nanos,
} from "nats";
import { connectNats, traceHeaders } from "../nats/index.js";
import { RevisionMismatchError, type StateStore, type StoredEntry, type WatchEvent } from "./store.js";

/** Options of {@link createNatsStore}. */
export interface NatsStoreOptions {
  /** NATS server URL(s), e.g. `nats://127.0.0.1:4222`; give every cluster member for failover. */
  servers: string | string[];
  /** KV replicas of each bucket created by this store (1, 3 or 5), default 1. Existing buckets keep theirs. */
  replicas?: number;
  /** Values kept per key in each bucket created by this store, default 10. */
  history?: number;
  /** Connection name shown by the server's monitor, default "sluice-state". */
  name?: string;
  /** Prefix of the KV bucket names, default "sluice_". */
  bucketPrefix?: string;
  /** Try the servers in the given order instead of a random one first, default false. */
  noRandomize?: boolean;
  /** How long a put or delete waits for JetStream's acknowledgement (and for a reconnect), ms, default 5000. */
  timeoutMs?: number;
  /** Idle heartbeat of the watch consumers, ms, default 1000: a lost consumer is re-created after two missed. */
  heartbeatMs?: number;
}

/** A {@link StateStore} on JetStream KV, with its NATS connection (for heartbeats and events). */
export type NatsStore = StateStore & { connection: NatsConnection };

/** The JetStream API error code for "wrong last sequence" (a failed compare-and-set). */
const wrongLastSequence = 10071;
const operationHeader = "KV-Operation";

/**
 * KV keys are NATS subject tokens (`[-/_=.A-Za-z0-9]`, `.` separates tokens, so no empty token
 * and no leading or trailing `.`). Sluice keys keep their characters where KV allows them;
 * `=` is the escape (`=3D`), as are a leading, trailing or repeated `.` (`=2E`) and anything
 * else (`=XX` per UTF-8 byte). The mapping is reversible with {@link decodeKvKey}.
 * @throws Error for an empty key.
 */
export function encodeKvKey(key: string): string {
  if (key === "") throw new Error("empty key");
  let out = "";
  for (let i = 0; i < key.length; i++) {
    const c = key[i] as string;
    if (c === "=") out += "=3D";
    else if (c === ".") out += i === 0 || i === key.length - 1 || key[i - 1] === "." ? "=2E" : ".";
    else if (/[-/\w]/.test(c)) out += c;
    else {
      // A surrogate pair is one code point: encode both halves together.
      const cp = key.codePointAt(i) as number;
      const s = String.fromCodePoint(cp);
      if (s.length === 2) i++;
      out += encodeURIComponent(s).replace(/%/g, "=");
      // encodeURIComponent keeps a few marks (!'()*~) as they are; escape them too.
      out = out.replace(/[!'()*~]/g, (m) => `=${m.charCodeAt(0).toString(16).toUpperCase()}`);
    }
  }
  return out;
}

/** The Sluice key of a KV key made by {@link encodeKvKey}. */
export function decodeKvKey(kvKey: string): string {
  // `%` is not in the KV alphabet, so the only percent signs are the ones made here.
  return decodeURIComponent(kvKey.replace(/=([0-9A-F]{2})/g, "%$1"));
}

/**
 * KV bucket names allow `[A-Za-z0-9_-]`; `-` is the escape here (`-2D`), and `.`, `/`, `=` or
 * anything else become `-XX` per UTF-8 byte.
 */
export function kvBucketName(bucket: string, prefix = "sluice_"): string {
  if (bucket === "") throw new Error("empty bucket name");
  let out = prefix;
  for (const b of Buffer.from(bucket, "utf8")) {
    const c = String.fromCharCode(b);
    out += /\w/.test(c) ? c : `-${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** W3C trace context of the active span (if any) as NATS headers, merged into `h`. */

function isWrongLastSequence(e: unknown): boolean {
  const api = (e as Partial<NatsError> | undefined)?.api_error;
  return api?.err_code === wrongLastSequence;
}

const sleep = (ms: number) =>
  new Promise<void>((r) => {
    setTimeout(r, ms).unref();
  });

/** The local copy of one bucket, fed by an ordered consumer on the KV stream. */
class Replica {
  /** Every key seen, deletions included (present: false), so a late older event never wins. */
  readonly entries = new Map<string, StoredEntry>();
  readonly listeners = new Set<(e: StoredEntry) => void>();
  /** Highest stream sequence delivered by the consumer: a re-created watch resumes after it. */
  lastSeq = 0;
  readonly ready: Promise<void>;
  private markReady!: () => void;
  private isReady = false;
  private sub: JetStreamSubscription | undefined;
  private closed = false;
  private restarting = false;
  readonly subjectPrefix: string;

  constructor(
    readonly bucket: string,
    readonly kv: KV,
    readonly stream: string,
    private readonly js: JetStreamClient,
    private readonly heartbeatMs: number,
  ) {
    this.subjectPrefix = `$KV.${stream.replace(/^KV_/, "")}.`;
    this.ready = new Promise((resolve) => {
      this.markReady = () => {
        if (this.isReady) return;
        this.isReady = true;
        resolve();
      };
    });
  }

  /**
   * Applies a change if it is newer than what the replica holds for its key, and tells the
   * local watches. Returns the entry the replica holds afterwards.
   */
  apply(e: StoredEntry): StoredEntry {
    const current = this.entries.get(e.key);
    if (current !== undefined && current.revision >= e.revision) return current;
    this.entries.set(e.key, e);
    for (const l of this.listeners) l(e);
    return e;
  }

  applyKvEntry(k: KvEntry): void {
    this.apply({
      bucket: this.bucket,
      key: decodeKvKey(k.key),
      value: k.operation === "PUT" ? k.string() : "",
      revision: k.revision,
      present: k.operation === "PUT",
      updatedMs: k.created.getTime(),
    });
  }

  private onMessage(jm: JsMsg): void {
    if (!jm.subject.startsWith(this.subjectPrefix)) return;
    const op = jm.headers?.get(operationHeader) ?? "";
    const present = op !== "DEL" && op !== "PURGE";
    this.lastSeq = Math.max(this.lastSeq, jm.seq);
    this.apply({
      bucket: this.bucket,
      key: decodeKvKey(jm.subject.slice(this.subjectPrefix.length)),
      value: present ? new TextDecoder().decode(jm.data) : "",
      revision: jm.seq,
      present,
      updatedMs: Math.floor(jm.info.timestampNanos / 1e6),
    });
    if (jm.info.pending === 0) this.markReady();
  }

  /**
   * Subscribes an ordered consumer: the last value per key first (or every message after
   * `lastSeq` when resuming), then each change.
   */
  async subscribe(): Promise<void> {
    const resume = this.lastSeq > 0;
    const opts = consumerOpts({
      filter_subject: `${this.subjectPrefix}>`,
      deliver_policy: DeliverPolicy.LastPerSubject,
      ack_policy: AckPolicy.None,
      flow_control: true,
      idle_heartbeat: nanos(this.heartbeatMs),
    });
    opts.bindStream(this.stream);
    if (resume) opts.startSequence(this.lastSeq + 1);
    opts.orderedConsumer();
    opts.callback((err, jm) => {
      if (err !== null) {
        // The consumer could not be re-created by the client (e.g. the stream was gone for a
        // while): make a fresh one from the last sequence seen.
        if (!this.closed) void this.restart();
        return;
      }
      if (jm !== null) this.onMessage(jm);
    });
    const old = this.sub;
    this.sub = await this.js.subscribe(`${this.subjectPrefix}>`, opts);
    old?.unsubscribe();
    if (!this.isReady) {
      // Nothing to load (an empty bucket): the consumer was created with nothing pending.
      const last = (
        this.sub as unknown as { info?: { last?: { num_pending: number; delivered: { stream_seq: number } } } }
      ).info?.last;
      if (last !== undefined && last.num_pending === 0 && last.delivered.stream_seq <= this.lastSeq) this.markReady();
    }
  }

  /**
   * Re-creates the consumer from the last sequence seen, retrying until it works. Changes seen
   * twice are dropped by {@link apply}, so restarting while the old consumer also recovers is safe.
   */
  async restart(): Promise<void> {
    if (this.restarting || this.closed) return;
    this.restarting = true;
    try {
      while (!this.closed) {
        try {
          await this.subscribe();
          return;
        } catch {
          await sleep(250);
        }
      }
    } finally {
      this.restarting = false;
    }
  }

  close(): void {
    this.closed = true;
    this.sub?.unsubscribe();
    this.listeners.clear();
  }
}

/**
 * A {@link StateStore} on JetStream KV: one KV bucket per Sluice bucket (named by
 * {@link kvBucketName}, created on first use with `replicas` and `history`).
 *
 * Reads are local: every bucket in use has an in-memory replica fed by an ordered consumer
 * (last value per key, then each change), so `get`, `list` and `watch` never wait on the
 * network once the bucket is loaded. A put or delete made through this store is applied to the
 * replica as soon as JetStream acknowledges it (read your own writes); changes from other nodes
 * arrive through the consumer (eventually consistent, typically within milliseconds).
 *
 * Revisions are the KV stream sequence of each change: they increase within a bucket (not
 * across buckets, unlike the memory store). A compare-and-set uses JetStream's expected last
 * subject sequence; a mismatch throws {@link RevisionMismatchError}, and a deleted key counts as
 * absent (revision 0) as in the memory store.
 *
 * The connection reconnects forever (`maxReconnectAttempts: -1`, 250 ms apart) and every
 * replica re-creates its consumer after a reconnect, resuming after the last sequence it saw,
 * so watches continue over server restarts and cluster failover.
 *
 * Puts and deletes are published directly to the KV subjects (as `kv.put` does) so that they
 * carry the active span's W3C trace context in their headers; `kv.put` takes no headers.
 *
 * @throws whatever `connect` throws when no server answers at first.
 */
/** Errors a write may meet while a cluster fails over: worth trying again. */
function isTransient(e: unknown): boolean {
  const code = String((e as { code?: unknown }).code ?? "");
  const message = e instanceof Error ? e.message : String(e);
  return (
    code === "TIMEOUT" ||
    code === "503" ||
    /timeout|no responders|disconnected|leader|not available|stream .*unavailable/i.test(message)
  );
}

export async function createNatsStore(options: NatsStoreOptions): Promise<NatsStore> {
  const nc = await connectNats({
    servers: options.servers,
    name: options.name ?? "sluice-state",
    noRandomize: options.noRandomize ?? false,
  });
  const js = nc.jetstream();
  const prefix = options.bucketPrefix ?? "sluice_";
  const heartbeatMs = options.heartbeatMs ?? 1_000;
  const publishTimeoutMs = options.timeoutMs ?? 5_000;
  const replicas = new Map<string, Promise<Replica>>();
  const opened = new Set<Replica>();
  const closing = new AbortController();

  // While disconnected, writes wait for the reconnect instead of being buffered by the client:
  // a JetStream publish buffered across a server restart was seen to get no ack (a 5 s timeout).
  let disconnected: { promise: Promise<void>; resolve: () => void } | undefined;
  const whenConnected = async () => {
    if (disconnected === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      disconnected.promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("NATS is disconnected")), publishTimeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  };
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" && disconnected === undefined) {
        let resolve!: () => void;
        const promise = new Promise<void>((r) => {
          resolve = r;
        });
        disconnected = { promise, resolve };
      } else if (s.type === "reconnect") {
        disconnected?.resolve();
        disconnected = undefined;
        // The consumers may be gone (a restarted server forgets ephemeral consumers): re-create
        // them at once instead of waiting for the client's missed-heartbeat reset.
        for (const r of opened) void r.restart();
      }
    }
  })().catch(() => undefined);

  // A write during a failover (stream leader re-election takes seconds) times out or finds no
  // responders: try again until a deadline. The message id makes JetStream drop a retry whose
  // first try did land, so a retried compare-and-set cannot fail against its own write.
  const retryForMs = Math.max(publishTimeoutMs * 3, 15_000);
  const open = (bucket: string): Promise<Replica> => {
    if (closing.signal.aborted) return Promise.reject(new Error("store is closed"));
    let p = replicas.get(bucket);
    if (p === undefined) {
      p = (async () => {
        // Opening during a failover (a JetStream leader being elected) times out: try again.
        const deadline = Date.now() + retryForMs;
        for (;;) {
          try {
            const kv = await js.views.kv(kvBucketName(bucket, prefix), {
              replicas: options.replicas ?? 1,
              history: options.history ?? 10,
            });
            const stream = (await kv.status()).streamInfo.config.name;
            const r = new Replica(bucket, kv, stream, js, heartbeatMs);
            await r.subscribe();
            opened.add(r);
            await r.ready;
            return r;
          } catch (e) {
            if (!isTransient(e) || Date.now() >= deadline || closing.signal.aborted) throw e;
            await new Promise((resolve) => setTimeout(resolve, 250));
          }
        }
      })();
      replicas.set(bucket, p);
      // A failed open (no JetStream yet, say) is retried by the next call.
      p.catch(() => replicas.delete(bucket));
    }
    return p;
  };

  const publish = async (r: Replica, key: string, data: Uint8Array, opts: Partial<JetStreamPublishOptions>) => {
    const deadline = Date.now() + retryForMs;
    const withId = { ...opts, msgID: opts.msgID ?? randomUUID() };
    for (;;) {
      try {
        await whenConnected();
        return await js.publish(r.subjectPrefix + encodeKvKey(key), data, { timeout: publishTimeoutMs, ...withId });
      } catch (e) {
        if (!isTransient(e) || Date.now() >= deadline || closing.signal.aborted) throw e;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  };

  /** What the server holds for `key` now (deletions count as absent), merged into the replica. */
  const fetchCurrent = async (r: Replica, key: string): Promise<KvEntry | null> => {
    const k = await r.kv.get(encodeKvKey(key));
    if (k !== null) r.applyKvEntry(k);
    return k;
  };

  const store: NatsStore = {
    connection: nc,

    async get(bucket, key) {
      const e = (await open(bucket)).entries.get(key);
      return e?.present ? e : undefined;
    },

    async put(bucket, key, value, expectedRevision) {
      const r = await open(bucket);
      const data = new TextEncoder().encode(value);
      let expected = expectedRevision;
      if (expected !== undefined && expected > 0) {
        // KV would accept the revision of a delete marker; the store's contract says a deleted key has none.
        const local = r.entries.get(key);
        if (local !== undefined && !local.present && local.revision === expected)
          throw new RevisionMismatchError(key, expected, 0);
      }
      for (let attempt = 0; ; attempt++) {
        const opts: Partial<JetStreamPublishOptions> = { headers: traceHeaders() };
        if (expected !== undefined) opts.expect = { lastSubjectSequence: expected };
        try {
          const ack = await publish(r, key, data, opts);
          return r.apply({ bucket, key, value, revision: ack.seq, present: true, updatedMs: Date.now() });
        } catch (e) {
          if (expected === undefined || expectedRevision === undefined || !isWrongLastSequence(e)) throw e;
          const current = await fetchCurrent(r, key);
          const present = current !== null && current.operation === "PUT";
          // Creating over a delete marker is allowed (as kv.create does): expect the marker's sequence.
          if (expectedRevision === 0 && current !== null && !present && attempt < 3) {
            expected = current.revision;
            continue;
          }
          throw new RevisionMismatchError(key, expectedRevision, present ? current.revision : 0);
        }
      }
    },

    async delete(bucket, key) {
      const r = await open(bucket);
      const h = traceHeaders();
      h.set(operationHeader, "DEL");
      const ack = await publish(r, key, new Uint8Array(0), { headers: h });
      r.apply({ bucket, key, value: "", revision: ack.seq, present: false, updatedMs: Date.now() });
    },

    async list(bucket, prefix = "") {
      const r = await open(bucket);
      const out: StoredEntry[] = [];
      for (const e of r.entries.values()) if (e.present && e.key.startsWith(prefix)) out.push(e);
      return out;
    },

    async *watch(bucket, keyPrefix, signal, skipCurrent = false): AsyncGenerator<WatchEvent> {
      const r = await open(bucket);
      const pending: StoredEntry[] = [];
      let wake: (() => void) | undefined;
      const listener = (e: StoredEntry) => {
        if (!e.key.startsWith(keyPrefix)) return;
        pending.push(e);
        wake?.();
      };
      const onAbort = () => wake?.();
      // Registered in the same tick as the snapshot below, so no change falls between them.
      r.listeners.add(listener);
      signal.addEventListener("abort", onAbort);
      closing.signal.addEventListener("abort", onAbort);
      const ended = () => signal.aborted || closing.signal.aborted;
      try {
        if (!skipCurrent) {
          const snapshot = [...r.entries.values()].filter((e) => e.present && e.key.startsWith(keyPrefix));
          for (const e of snapshot) yield { entry: e };
        }
        yield { currentDone: true };
        while (!ended()) {
          while (pending.length > 0) yield { entry: pending.shift() as StoredEntry };
          if (ended()) break;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      } finally {
        r.listeners.delete(listener);
        signal.removeEventListener("abort", onAbort);
        closing.signal.removeEventListener("abort", onAbort);
      }
    },

    async close() {
      if (closing.signal.aborted) return;
      closing.abort();
      for (const r of opened) r.close();
      opened.clear();
      if (!nc.isClosed()) await nc.drain().catch(() => nc.close());
    },
  };
  return store;
}
