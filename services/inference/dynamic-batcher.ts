import { create } from "@bufbuild/protobuf";
import * as ort from "onnxruntime-node";
import {
  type BatchError,
  BatchErrorSchema,
  type ResultBatch,
  ResultBatchSchema,
  type TensorBatch,
} from "../../libs/gen/sluice/v1/batch_pb.js";
import { linksOf, sluiceTracer } from "../../libs/telemetry/index.js";
import { float32Tensor, readFloat32 } from "../../libs/tensor/index.js";
import type { LoadedModel } from "./model-repository.js";

/** Options of {@link DynamicBatcher}; defaults come from the model's config. */
export interface DynamicBatcherOptions {
  /** Most records in one run, default 256. */
  maxBatchSize?: number;
  /** How long the oldest request may wait for others to join its run, ms, default 0. */
  maxQueueDelayMs?: number;
  /** Records waiting beyond this are refused with resource_exhausted, default 65536. */
  maxQueueRecords?: number;
  /** Node id written into results. */
  node?: string;
  /** Answer repeated inputs from a result cache, default false. */
  cache?: boolean;
  /** Rows the result cache keeps at most, default 10000. */
  cacheRows?: number;
}

/** Serving parameters that can change while serving (from the model registry). */
export interface ServingParams {
  maxBatchSize?: number;
  maxQueueDelayMs?: number;
  maxQueueRecords?: number;
  cache?: boolean;
}

interface CachedRow {
  outputs: Float32Array[];
  label: string | undefined;
}

interface Pending {
  batch: TensorBatch;
  data: Float32Array;
  rows: number;
  enqueuedMs: number;
  resolve: (r: ResultBatch) => void;
}

function errorsFor(batch: TensorBatch, code: string, message: string): BatchError[] {
  return batch.keys.map((key) => create(BatchErrorSchema, { key, code, message }));
}

/**
 * Joins the batches that arrive while the model is busy into one run of up to
 * maxBatchSize records (higher priority first), then splits the outputs back per batch.
 * A batch whose input does not fit the model gets an invalid_argument error per record.
 */
export class DynamicBatcher {
  private queue: Pending[] = [];
  private queuedRecords = 0;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private maxBatchSize: number;
  private maxQueueDelayMs: number;
  private maxQueueRecords: number;
  private cache: Map<string, CachedRow> | undefined;
  private readonly cacheRows: number;
  /** Runs done, records served, cache hits, and the EWMA of a run's duration (ms). */
  readonly stats = { runs: 0, records: 0, cacheHits: 0, ewmaRunMs: 0 };

  constructor(
    public model: LoadedModel,
    private readonly options: DynamicBatcherOptions = {},
  ) {
    this.maxBatchSize = options.maxBatchSize ?? model.config.maxBatchSize ?? 256;
    this.maxQueueDelayMs = options.maxQueueDelayMs ?? model.config.maxQueueDelayMs ?? 0;
    this.maxQueueRecords = options.maxQueueRecords ?? model.config.maxQueueRecords ?? 65_536;
    this.cacheRows = options.cacheRows ?? 10_000;
    if (options.cache) this.cache = new Map();
  }

  /** The parameters in force. */
  get params(): Required<ServingParams> {
    return {
      maxBatchSize: this.maxBatchSize,
      maxQueueDelayMs: this.maxQueueDelayMs,
      maxQueueRecords: this.maxQueueRecords,
      cache: this.cache !== undefined,
    };
  }

  /**
   * Changes serving parameters while serving; the next run uses them.
   * @throws RangeError naming a parameter that is not a positive number.
   */
  configure(params: ServingParams): void {
    const check = (name: string, v: number | undefined, min: number) => {
      if (v !== undefined && !(Number.isInteger(v) && v >= min))
        throw new RangeError(`${name} must be a whole number ≥ ${min}, got ${v}`);
    };
    check("maxBatchSize", params.maxBatchSize, 1);
    check("maxQueueDelayMs", params.maxQueueDelayMs, 0);
    check("maxQueueRecords", params.maxQueueRecords, 1);
    if (params.maxBatchSize !== undefined) this.maxBatchSize = params.maxBatchSize;
    if (params.maxQueueDelayMs !== undefined) this.maxQueueDelayMs = params.maxQueueDelayMs;
    if (params.maxQueueRecords !== undefined) this.maxQueueRecords = params.maxQueueRecords;
    if (params.cache === true) this.cache ??= new Map();
    if (params.cache === false) this.cache = undefined;
    this.pump();
  }

  private rowKey(data: Float32Array, row: number, cols: number): string {
    return Buffer.from(data.buffer, data.byteOffset + row * cols * 4, cols * 4).toString("latin1");
  }

  /** All rows of a batch from the cache, or undefined when any row is missing. */
  private fromCache(batch: TensorBatch, data: Float32Array, rows: number, cols: number): ResultBatch | undefined {
    const cache = this.cache;
    if (cache === undefined || rows === 0) return undefined;
    const hits: CachedRow[] = [];
    for (let r = 0; r < rows; r++) {
      const hit = cache.get(this.rowKey(data, r, cols));
      if (hit === undefined) return undefined;
      hits.push(hit);
    }
    this.stats.cacheHits += rows;
    const first = hits[0] as CachedRow;
    const outputs = this.model.outputNames.map((name, i) => {
      const width = (first.outputs[i] as Float32Array).length;
      const joined = new Float32Array(rows * width);
      hits.forEach((h, r) => {
        joined.set(h.outputs[i] as Float32Array, r * width);
      });
      return float32Tensor(name, joined, rows, width);
    });
    const labels = hits.every((h) => h.label !== undefined) ? hits.map((h) => h.label as string) : [];
    return create(ResultBatchSchema, {
      batchId: batch.batchId,
      keys: batch.keys,
      outputs,
      labels,
      model: this.model.name,
      modelVersion: this.model.version,
      node: this.options.node ?? "",
    });
  }

  private remember(
    data: Float32Array,
    rows: number,
    cols: number,
    outs: Array<{ data: Float32Array; width: number }>,
    labels: string[],
    first: number,
  ): void {
    const cache = this.cache;
    if (cache === undefined) return;
    for (let r = 0; r < rows; r++) {
      if (cache.size >= this.cacheRows) {
        // Oldest first: a Map iterates in insertion order.
        const oldest = cache.keys().next().value;
        if (oldest !== undefined) cache.delete(oldest);
      }
      const at = first + r;
      cache.set(this.rowKey(data, r, cols), {
        outputs: outs.map((o) => o.data.slice(at * o.width, (at + 1) * o.width)),
        label: labels[r],
      });
    }
  }

  /** Records waiting for a run. */
  get queueDepth(): number {
    return this.queuedRecords;
  }

  /** Runs `batch` (possibly together with others) and resolves with its results; never rejects. */
  submit(batch: TensorBatch): Promise<ResultBatch> {
    const base = {
      batchId: batch.batchId,
      model: this.model.name,
      modelVersion: this.model.version,
      node: this.options.node ?? "",
    };
    const input = batch.inputs.find((t) => t.name === this.model.inputName) ?? batch.inputs[0];
    if (input === undefined) {
      return Promise.resolve(
        create(ResultBatchSchema, {
          ...base,
          errors: errorsFor(batch, "invalid_argument", "batch has no input tensor"),
        }),
      );
    }
    let decoded: { data: Float32Array; rows: number; cols: number };
    try {
      decoded = readFloat32(input);
      if (decoded.rows !== batch.keys.length)
        throw new Error(`tensor has ${decoded.rows} rows for ${batch.keys.length} records`);
      if (this.model.width >= 0 && decoded.cols !== this.model.width) {
        throw new Error(`model ${this.model.name} takes ${this.model.width} features, got ${decoded.cols}`);
      }
    } catch (e) {
      return Promise.resolve(
        create(ResultBatchSchema, { ...base, errors: errorsFor(batch, "invalid_argument", (e as Error).message) }),
      );
    }
    const cached = this.fromCache(batch, decoded.data, decoded.rows, decoded.cols);
    if (cached !== undefined) return Promise.resolve(cached);
    if (this.queuedRecords + decoded.rows > this.maxQueueRecords) {
      return Promise.resolve(
        create(ResultBatchSchema, {
          ...base,
          errors: errorsFor(
            batch,
            "resource_exhausted",
            `model ${this.model.name} queue is full (${this.queuedRecords} records)`,
          ),
        }),
      );
    }
    return new Promise((resolve) => {
      this.queue.push({ batch, data: decoded.data, rows: decoded.rows, enqueuedMs: performance.now(), resolve });
      this.queuedRecords += decoded.rows;
      this.pump();
    });
  }

  private pump(): void {
    if (this.running || this.queue.length === 0) return;
    if (this.maxQueueDelayMs > 0 && this.queuedRecords < this.maxBatchSize) {
      const waited = performance.now() - (this.queue[0] as Pending).enqueuedMs;
      if (waited < this.maxQueueDelayMs) {
        this.timer ??= setTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, this.maxQueueDelayMs - waited);
        return;
      }
    }
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    // Highest priority first; arrival order within a priority (sort is stable).
    this.queue.sort((a, b) => b.batch.priority - a.batch.priority);
    const take: Pending[] = [];
    let rows = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0] as Pending;
      if (take.length > 0 && rows + next.rows > this.maxBatchSize) break;
      take.push(next);
      rows += next.rows;
      this.queue.shift();
    }
    this.queuedRecords -= rows;
    this.running = true;
    void this.run(take, rows).finally(() => {
      this.running = false;
      this.pump();
    });
  }

  private async run(items: Pending[], rows: number): Promise<void> {
    const cols =
      this.model.width >= 0
        ? this.model.width
        : rows > 0
          ? (items[0] as Pending).data.length / (items[0] as Pending).rows
          : 0;
    const joined = items.length === 1 ? (items[0] as Pending).data : new Float32Array(rows * cols);
    if (items.length > 1) {
      let off = 0;
      for (const it of items) {
        joined.set(it.data, off);
        off += it.data.length;
      }
    }
    const started = performance.now();
    // One span per run, linked to the sampled records it served (only when some were sampled).
    const links = linksOf(items.flatMap((it) => it.batch.traces));
    const span =
      links.length > 0
        ? sluiceTracer().startSpan("inference.batch", {
            links,
            attributes: {
              "sluice.model": this.model.name,
              "sluice.batch.records": rows,
              "sluice.batch.requests": items.length,
            },
          })
        : undefined;
    let outputs: ort.InferenceSession.ReturnType;
    try {
      outputs = await this.model.session.run({
        [this.model.inputName]: new ort.Tensor("float32", joined, [rows, cols]),
      });
      span?.end();
    } catch (e) {
      span?.end();
      for (const it of items) {
        it.resolve(
          create(ResultBatchSchema, {
            batchId: it.batch.batchId,
            model: this.model.name,
            modelVersion: this.model.version,
            node: this.options.node ?? "",
            errors: errorsFor(it.batch, "internal", `inference failed: ${(e as Error).message}`),
          }),
        );
      }
      return;
    }
    const ms = performance.now() - started;
    this.stats.runs++;
    this.stats.records += rows;
    this.stats.ewmaRunMs = this.stats.runs === 1 ? ms : 0.8 * this.stats.ewmaRunMs + 0.2 * ms;
    const outs = this.model.outputNames.map((name) => {
      const t = outputs[name] as ort.Tensor;
      const data = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>);
      return { name, data, width: rows > 0 ? data.length / rows : 0 };
    });
    const labels = this.model.labels;
    const first = outs[0];
    let row = 0;
    for (const it of items) {
      const tensors = outs.map((o) =>
        float32Tensor(o.name, o.data.slice(row * o.width, (row + it.rows) * o.width), it.rows, o.width),
      );
      const top: string[] = [];
      if (first !== undefined && labels.length === first.width) {
        for (let r = row; r < row + it.rows; r++) {
          let best = 0;
          for (let c = 1; c < first.width; c++)
            if ((first.data[r * first.width + c] as number) > (first.data[r * first.width + best] as number)) best = c;
          top.push(labels[best] as string);
        }
      }
      this.remember(it.data, it.rows, cols, outs, top, row);
      it.resolve(
        create(ResultBatchSchema, {
          batchId: it.batch.batchId,
          keys: it.batch.keys,
          outputs: tensors,
          labels: top,
          model: this.model.name,
          modelVersion: this.model.version,
          node: this.options.node ?? "",
        }),
      );
      row += it.rows;
    }
  }
}
