import { create } from "@bufbuild/protobuf";
import type { NodeLoad } from "../../libs/gen/sluice/v1/balancer_pb.js";
import {
  BatchErrorSchema,
  type ResultBatch,
  ResultBatchSchema,
  type TensorBatch,
} from "../../libs/gen/sluice/v1/batch_pb.js";
import { InferenceService, type InferRequest, type InferResponse } from "../../libs/gen/sluice/v1/inference_pb.js";
import type { NodeEntry } from "../../libs/state/index.js";
import { connectTo, StreamLink } from "../../libs/transport/index.js";

/** Options of {@link NodePool}. */
export interface NodePoolOptions {
  /** A node whose last heartbeat is older than this is down, ms, default 3000. */
  downAfterMs?: number;
  /** A batch unanswered this long marks its node as hung and goes elsewhere, ms, default 15000. */
  batchTimeoutMs?: number;
  /** Tries per batch over different nodes before it fails with unavailable, default 4. */
  maxAttempts?: number;
  /** How long a batch waits for any node to be up before it fails with unavailable, ms, default 10000. */
  waitForNodeMs?: number;
  /** After a failure a node gets no traffic for this long, ms, default 1000. */
  backoffMs?: number;
}

/** Where a routed batch's result goes. */
export type Deliver = (results: ResultBatch) => void;

interface Route {
  id: bigint;
  batch: TensorBatch;
  originalId: bigint;
  deliver: Deliver;
  attempts: number;
  node: Node | undefined;
  sentMs: number;
  firstMs: number;
  tried: Set<string>;
}

interface Node {
  id: string;
  address: string;
  models: Set<string>;
  heartbeatMs: number;
  link: StreamLink<InferRequest, InferResponse> | undefined;
  inFlight: Map<bigint, Route>;
  inFlightRecords: number;
  ewmaMs: number;
  routed: bigint;
  downUntilMs: number;
  removed: boolean;
}

/**
 * The inference nodes a balancer routes over. Each batch goes to the up node that serves its
 * model with the least records in flight (then the lowest latency); a node that fails, stops
 * answering, or goes silent gets no traffic, and what it held is sent again elsewhere. Each
 * batch is delivered once: a late answer from a node given up on is dropped.
 */
export class NodePool {
  private readonly nodes = new Map<string, Node>();
  private readonly waiting: Route[] = [];
  private nextId = 1n;
  private heartbeatsHeard = true;
  private readonly timer: NodeJS.Timeout;
  private readonly opts: Required<NodePoolOptions>;

  constructor(options: NodePoolOptions = {}) {
    this.opts = {
      downAfterMs: options.downAfterMs ?? 3_000,
      batchTimeoutMs: options.batchTimeoutMs ?? 15_000,
      maxAttempts: options.maxAttempts ?? 4,
      waitForNodeMs: options.waitForNodeMs ?? 10_000,
      backoffMs: options.backoffMs ?? 1_000,
    };
    this.timer = setInterval(() => this.sweep(), 250);
    this.timer.unref();
  }

  /** Adds, updates (value) or removes (undefined) a node from the registry. */
  upsert(id: string, entry: NodeEntry | undefined): void {
    const node = this.nodes.get(id);
    if (entry === undefined) {
      if (node) {
        node.removed = true;
        this.nodes.delete(id);
        this.fail(node, new Error(`node ${id} left`));
      }
      return;
    }
    if (node && node.address !== entry.address) {
      this.upsert(id, undefined);
      this.upsert(id, entry);
      return;
    }
    if (node) {
      node.models = new Set(entry.models);
      node.heartbeatMs = Math.max(node.heartbeatMs, entry.heartbeatMs);
    } else {
      this.nodes.set(id, {
        id,
        address: entry.address,
        models: new Set(entry.models),
        heartbeatMs: entry.heartbeatMs,
        link: undefined,
        inFlight: new Map(),
        inFlightRecords: 0,
        ewmaMs: 0,
        routed: 0n,
        downUntilMs: 0,
        removed: false,
      });
    }
    this.drainWaiting();
  }

  /** Routes one batch; `deliver` gets its result (outputs or per-record errors) exactly once. */
  route(batch: TensorBatch, deliver: Deliver): void {
    const now = performance.now();
    const route: Route = {
      id: this.nextId++,
      batch,
      originalId: batch.batchId,
      deliver,
      attempts: 0,
      node: undefined,
      sentMs: now,
      firstMs: now,
      tried: new Set(),
    };
    this.dispatch(route);
  }

  /** The nodes and their load, for ListNodes and `sluice status`. */
  loads(): NodeLoad[] {
    return [...this.nodes.values()].map((n) => ({
      $typeName: "sluice.v1.NodeLoad",
      id: n.id,
      address: n.address,
      status: this.isUp(n, Date.now()) ? "up" : "down",
      inFlightBatches: n.inFlight.size,
      inFlightRecords: n.inFlightRecords,
      ewmaLatencyMs: n.ewmaMs,
      batchesRouted: n.routed,
      models: [...n.models],
    }));
  }

  /** Stops timers and closes every node stream. */
  close(): void {
    clearInterval(this.timer);
    for (const n of this.nodes.values()) n.link?.cancel();
  }

  private isUp(n: Node, nowMs: number): boolean {
    const fresh = this.heartbeatsHeard ? nowMs - n.heartbeatMs <= this.opts.downAfterMs : true;
    return !n.removed && fresh && nowMs >= n.downUntilMs;
  }

  /**
   * While the channel that carries heartbeats (NATS) is down, silence proves nothing: judge
   * nodes by their streams alone (a failed stream still takes a node out), so the data path
   * does not depend on NATS. When heartbeats are heard again, every node gets a fresh grace.
   */
  setHeartbeatsHeard(heard: boolean): void {
    if (heard && !this.heartbeatsHeard) {
      const now = Date.now();
      for (const n of this.nodes.values()) n.heartbeatMs = Math.max(n.heartbeatMs, now);
    }
    this.heartbeatsHeard = heard;
    this.drainWaiting();
  }

  private pick(route: Route): Node | undefined {
    const now = Date.now();
    let best: Node | undefined;
    for (const n of this.nodes.values()) {
      if (!this.isUp(n, now) || !n.models.has(route.batch.model)) continue;
      // Prefer nodes this batch has not failed on yet.
      if (best === undefined) {
        best = n;
        continue;
      }
      const a = [route.tried.has(n.id) ? 1 : 0, n.inFlightRecords, n.ewmaMs] as const;
      const b = [route.tried.has(best.id) ? 1 : 0, best.inFlightRecords, best.ewmaMs] as const;
      if (a[0] < b[0] || (a[0] === b[0] && (a[1] < b[1] || (a[1] === b[1] && a[2] < b[2])))) best = n;
    }
    return best;
  }

  private dispatch(route: Route): void {
    if (route.attempts >= this.opts.maxAttempts) {
      this.failRoute(route, "unavailable", `no inference node answered after ${route.attempts} attempts`);
      return;
    }
    const node = this.pick(route);
    if (node === undefined) {
      const anyServes = [...this.nodes.values()].some((n) => n.models.has(route.batch.model));
      if (!anyServes && this.nodes.size > 0 && [...this.nodes.values()].every((n) => this.isUp(n, Date.now()))) {
        this.failRoute(route, "not_found", `no inference node serves model ${route.batch.model}`);
        return;
      }
      this.waiting.push(route);
      return;
    }
    route.attempts++;
    route.node = node;
    route.sentMs = performance.now();
    route.tried.add(node.id);
    node.inFlight.set(route.id, route);
    node.inFlightRecords += route.batch.keys.length;
    node.routed++;
    const link = this.linkOf(node);
    const batch = { ...route.batch, batchId: route.id };
    link.send({ $typeName: "sluice.v1.InferRequest", batch }).catch((e) => this.fail(node, e));
  }

  private linkOf(node: Node): StreamLink<InferRequest, InferResponse> {
    if (node.link && !node.link.ended) return node.link;
    const client = connectTo(InferenceService, node.address);
    const link = new StreamLink<InferRequest, InferResponse>(
      (reqs, signal) => client.infer(reqs, { signal }),
      (res) => this.onResult(node, res),
    );
    node.link = link;
    void link.done.then((err) => {
      if (node.link === link) node.link = undefined;
      if (node.inFlight.size > 0) this.fail(node, err ?? new Error("stream ended"));
    });
    return link;
  }

  private onResult(node: Node, res: InferResponse): void {
    const r = res.results;
    if (r === undefined) return;
    const route = node.inFlight.get(r.batchId);
    if (route === undefined) return; // Given up on this node: the batch went elsewhere.
    node.inFlight.delete(r.batchId);
    node.inFlightRecords -= route.batch.keys.length;
    const ms = performance.now() - route.sentMs;
    node.ewmaMs = node.ewmaMs === 0 ? ms : 0.8 * node.ewmaMs + 0.2 * ms;
    route.deliver({ ...r, batchId: route.originalId });
    this.drainWaiting();
  }

  /** Takes a node out of rotation for a while and re-routes what it held. */
  private fail(node: Node, _err: unknown): void {
    node.downUntilMs = Date.now() + this.opts.backoffMs;
    const link = node.link;
    node.link = undefined;
    link?.cancel();
    const held = [...node.inFlight.values()];
    node.inFlight.clear();
    node.inFlightRecords = 0;
    for (const route of held) this.dispatch(route);
  }

  private failRoute(route: Route, code: string, message: string): void {
    route.deliver(
      create(ResultBatchSchema, {
        batchId: route.originalId,
        model: route.batch.model,
        errors: route.batch.keys.map((key) => create(BatchErrorSchema, { key, code, message })),
      }),
    );
  }

  private drainWaiting(): void {
    if (this.waiting.length === 0) return;
    const now = Date.now();
    if (![...this.nodes.values()].some((n) => this.isUp(n, now))) return;
    const waiting = this.waiting.splice(0);
    for (const r of waiting) this.dispatch(r);
  }

  private sweep(): void {
    const now = performance.now();
    for (const n of this.nodes.values()) {
      for (const r of n.inFlight.values()) {
        if (now - r.sentMs > this.opts.batchTimeoutMs) {
          this.fail(n, new Error(`node ${n.id} did not answer in ${this.opts.batchTimeoutMs} ms`));
          break;
        }
      }
      // A silent node's batches go elsewhere at once.
      if (this.heartbeatsHeard && n.inFlight.size > 0 && Date.now() - n.heartbeatMs > this.opts.downAfterMs) {
        this.fail(n, new Error("silent"));
      }
    }
    const expired = this.waiting.filter((r) => now - r.firstMs > this.opts.waitForNodeMs);
    if (expired.length > 0) {
      for (const r of expired) this.waiting.splice(this.waiting.indexOf(r), 1);
      for (const r of expired) this.failRoute(r, "unavailable", `no inference node up for model ${r.batch.model}`);
    }
    this.drainWaiting();
  }
}
