import { create, type JsonObject } from "@bufbuild/protobuf";
import type { Span } from "@opentelemetry/api";
import { rowsToColumns } from "../../libs/batch/index.js";
import {
  type Column,
  type RecordBatch,
  RecordBatchSchema,
  type RecordTrace,
  type ResultBatch,
} from "../../libs/gen/sluice/v1/batch_pb.js";
import {
  PreprocessService,
  type ProcessRequest,
  type ProcessResponse,
} from "../../libs/gen/sluice/v1/preprocess_pb.js";
import type { Result } from "../../libs/gen/sluice/v1/records_pb.js";
import { recordTraceOf, sluiceTracer } from "../../libs/telemetry/index.js";
import { type DecodedOutput, decodeOutputs, rowOutputs } from "../../libs/tensor/index.js";
import { connectTo, StreamLink } from "../../libs/transport/index.js";
import { errorResult } from "./result-columns.js";

/** Options of {@link Dispatcher}. */
export interface DispatcherOptions {
  /** Preprocess "host:port". */
  preprocess: string;
  /** Most records in one micro-batch, default 256. */
  maxBatchRecords?: number;
  /** Longest a record waits for its batch to fill, ms, default 2. */
  maxBatchDelayMs?: number;
  /** Records in flight beyond which callers are slowed down (not refused), default 65536. */
  window?: number;
  /** Tries per batch when the stream to preprocess breaks, default 4. */
  maxAttempts?: number;
  /** Parallel streams to preprocess, default 2 (two batches in flight per hop at the least). */
  streams?: number;
  /** Fraction of records traced end to end when spans are exported, default 0.01. */
  traceRatio?: number;
}

/** Receives the one result of a record. */
export interface RecordSink {
  /** Record `key` (the caller's `id`) has outputs in row `row` of `r`; `outs` are decoded once per batch. */
  output(key: bigint, id: string, r: ResultBatch, row: number, outs: readonly DecodedOutput[]): void;
  /** Record `key` failed. */
  error(key: bigint, id: string, code: string, message: string, field: string): void;
  /** After the results of one result batch were handed out. */
  flush?(): void;
}

/** A sink that turns each record's result into a `Result` message. */
export function resultSink(onResult: (key: bigint, result: Result) => void): RecordSink {
  return {
    output(key, id, r, row, outs) {
      onResult(key, {
        $typeName: "sluice.v1.Result",
        id,
        outcome: {
          case: "outputs",
          value: rowOutputs(outs, row, { label: r.labels[row], model: r.model, modelVersion: r.modelVersion }),
        },
      });
    },
    error(key, id, code, message, field) {
      onResult(key, errorResult(id, code, message, field));
    },
  };
}

interface PendingRecord {
  id: string;
  sink: RecordSink;
  span: Span | undefined;
}

interface Building {
  pipeline: string;
  keys: bigint[];
  rows: JsonObject[];
  traces: RecordTrace[];
  timer: NodeJS.Timeout | undefined;
}

interface InFlight {
  batch: RecordBatch;
  attempts: number;
  link: Link | undefined;
}

type Link = StreamLink<ProcessRequest, ProcessResponse>;

/**
 * Cuts records from every caller into micro-batches by size and by time, sends them to
 * preprocess over a few long-lived streams, and hands each record its one result. When a
 * stream breaks, the batches it held are sent again on a new one; results that come twice
 * are dropped, so each caller sees one result per record.
 */
export class Dispatcher {
  private readonly opts: Required<Omit<DispatcherOptions, "preprocess">>;
  private readonly client;
  private readonly pending = new Map<bigint, PendingRecord>();
  private readonly building = new Map<string, Building>();
  private readonly inFlight = new Map<bigint, InFlight>();
  private readonly links: Array<Link | undefined>;
  private nextKey = 1n;
  private nextBatch = 1n;
  private waiters: Array<() => void> = [];
  private closed = false;
  readonly traced: boolean;

  constructor(options: DispatcherOptions, exporting: boolean) {
    this.opts = {
      maxBatchRecords: options.maxBatchRecords ?? 256,
      maxBatchDelayMs: options.maxBatchDelayMs ?? 2,
      window: options.window ?? 65_536,
      maxAttempts: options.maxAttempts ?? 4,
      streams: options.streams ?? 2,
      traceRatio: options.traceRatio ?? 0.01,
    };
    this.client = connectTo(PreprocessService, options.preprocess);
    this.links = new Array(this.opts.streams).fill(undefined);
    this.traced = exporting && this.opts.traceRatio > 0;
  }

  /** Records accepted and not yet answered. */
  get inFlightRecords(): number {
    return this.pending.size;
  }

  /** Accepts one record; `sink` gets its result exactly once. Returns its key. */
  submit(id: string, fields: JsonObject, pipeline: string, sink: RecordSink): bigint {
    const key = this.nextKey++;
    let span: Span | undefined;
    let b = this.building.get(pipeline);
    if (b === undefined) {
      b = { pipeline, keys: [], rows: [], traces: [], timer: undefined };
      this.building.set(pipeline, b);
    }
    if (this.traced && Math.random() < this.opts.traceRatio) {
      span = sluiceTracer().startSpan("ingest.record", {
        attributes: { "sluice.record.id": id, "sluice.pipeline": pipeline },
      });
      b.traces.push(recordTraceOf(span, b.keys.length));
    }
    this.pending.set(key, { id, sink, span });
    b.keys.push(key);
    b.rows.push(fields);
    if (b.keys.length >= this.opts.maxBatchRecords) this.cut(b);
    else b.timer ??= setTimeout(() => this.cut(b), this.opts.maxBatchDelayMs);
    return key;
  }

  /**
   * Accepts records that come in columns (row i is `ids[i]`) as one batch of their own, without
   * going through rows: the caller already batched them. Returns their keys.
   */
  submitColumns(ids: readonly string[], columns: Column[], pipeline: string, sink: RecordSink): bigint[] {
    const keys: bigint[] = [];
    const traces: RecordTrace[] = [];
    for (let i = 0; i < ids.length; i++) {
      const key = this.nextKey++;
      const id = ids[i] as string;
      let span: Span | undefined;
      if (this.traced && Math.random() < this.opts.traceRatio) {
        span = sluiceTracer().startSpan("ingest.record", {
          attributes: { "sluice.record.id": id, "sluice.pipeline": pipeline },
        });
        traces.push(recordTraceOf(span, i));
      }
      this.pending.set(key, { id, sink, span });
      keys.push(key);
    }
    if (keys.length === 0) return keys;
    const batch = create(RecordBatchSchema, { batchId: this.nextBatch++, keys, columns, pipeline, traces });
    const f: InFlight = { batch, attempts: 0, link: undefined };
    this.inFlight.set(batch.batchId, f);
    this.send(f);
    return keys;
  }

  /** Forgets a caller's records (it went away); their results are dropped. */
  forget(keys: Iterable<bigint>): void {
    for (const k of keys) {
      this.pending.get(k)?.span?.end();
      this.pending.delete(k);
    }
    this.wakeWaiters();
  }

  /** Resolves when fewer records than the window are in flight: callers await it to slow down. */
  room(): Promise<void> {
    if (this.pending.size < this.opts.window) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Fails whatever is still pending and closes the streams. */
  close(): void {
    this.closed = true;
    for (const l of this.links) l?.cancel();
    for (const [k, p] of this.pending) {
      this.pending.delete(k);
      p.sink.error(k, p.id, "unavailable", "ingest is shutting down", "");
      p.sink.flush?.();
    }
  }

  private cut(b: Building): void {
    if (b.timer) clearTimeout(b.timer);
    this.building.delete(b.pipeline);
    if (b.keys.length === 0) return;
    const batch = create(RecordBatchSchema, {
      batchId: this.nextBatch++,
      keys: b.keys,
      columns: rowsToColumns(b.rows),
      pipeline: b.pipeline,
      traces: b.traces,
    });
    const f: InFlight = { batch, attempts: 0, link: undefined };
    this.inFlight.set(batch.batchId, f);
    this.send(f);
  }

  private linkFor(): Link {
    let best = 0;
    let bestLoad = Number.POSITIVE_INFINITY;
    for (let i = 0; i < this.links.length; i++) {
      const l = this.links[i];
      if (l === undefined || l.ended) return this.openLink(i);
      let load = 0;
      for (const f of this.inFlight.values()) if (f.link === l) load++;
      if (load < bestLoad) {
        best = i;
        bestLoad = load;
      }
    }
    return this.links[best] as Link;
  }

  private openLink(slot: number): Link {
    const link: Link = new StreamLink<ProcessRequest, ProcessResponse>(
      (reqs, signal) => this.client.process(reqs, { signal }),
      (res) => {
        if (res.results) this.deliver(res.results);
      },
    );
    this.links[slot] = link;
    void link.done.then((err) => {
      if (this.links[slot] === link) this.links[slot] = undefined;
      this.retryFrom(link, err);
    });
    return link;
  }

  private send(f: InFlight): void {
    if (this.closed) return;
    f.attempts++;
    const link = this.linkFor();
    f.link = link;
    link.send({ $typeName: "sluice.v1.ProcessRequest", batch: f.batch }).catch(() => {
      // The stream ended: retryFrom re-sends everything it held, this batch included.
    });
  }

  private retryFrom(link: Link, err: unknown): void {
    const held = [...this.inFlight.values()].filter((f) => f.link === link);
    if (held.length === 0 || this.closed) return;
    const message = err instanceof Error ? err.message : "stream to preprocess ended";
    for (const f of held) {
      f.link = undefined;
      if (f.attempts >= this.opts.maxAttempts) {
        this.inFlight.delete(f.batch.batchId);
        const touched = new Set<RecordSink>();
        for (const key of f.batch.keys) {
          this.fail(key, "unavailable", `preprocess unavailable after ${f.attempts} attempts: ${message}`, "", touched);
        }
        for (const sink of touched) sink.flush?.();
        continue;
      }
      // Back off a little more on each attempt, so a restarting service has time to come back.
      setTimeout(() => this.send(f), 100 * 2 ** (f.attempts - 1)).unref();
    }
  }

  /** The pending record of `key`, removed; undefined when it was answered already or forgotten. */
  private take(key: bigint): PendingRecord | undefined {
    const p = this.pending.get(key);
    if (p === undefined) return undefined; // A re-sent batch answered twice, or the caller left.
    this.pending.delete(key);
    p.span?.end();
    return p;
  }

  private fail(key: bigint, code: string, message: string, field: string, touched: Set<RecordSink>): void {
    const p = this.take(key);
    if (p === undefined) return;
    p.sink.error(key, p.id, code, message, field);
    touched.add(p.sink);
  }

  private deliver(r: ResultBatch): void {
    const touched = new Set<RecordSink>();
    if (r.keys.length > 0) {
      let outs: DecodedOutput[] | undefined;
      try {
        outs = decodeOutputs(r.outputs);
      } catch (e) {
        for (const key of r.keys) this.fail(key, "internal", `bad model output: ${(e as Error).message}`, "", touched);
      }
      if (outs !== undefined) {
        for (let row = 0; row < r.keys.length; row++) {
          const key = r.keys[row] as bigint;
          const p = this.take(key);
          if (p === undefined) continue;
          p.sink.output(key, p.id, r, row, outs);
          touched.add(p.sink);
        }
      }
    }
    for (const e of r.errors) this.fail(e.key, e.code, e.message, e.field, touched);
    for (const sink of touched) sink.flush?.();
    this.settle(r.batchId);
  }

  private settle(batchId: bigint): void {
    const f = this.inFlight.get(batchId);
    if (f?.batch.keys.every((k) => !this.pending.has(k))) this.inFlight.delete(batchId);
    this.wakeWaiters();
  }

  private wakeWaiters(): void {
    if (this.pending.size >= this.opts.window || this.waiters.length === 0) return;
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }
}
