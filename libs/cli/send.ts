import { stat } from "node:fs/promises";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import { rowsToColumns } from "../batch/index.js";
import { IngestService, type StreamRequest } from "../gen/sluice/v1/ingest_pb.js";
import type { Result } from "../gen/sluice/v1/records_pb.js";
import { isSourceError, type ReadRecordsOptions, readRecords } from "../records/index.js";
import { decodeOutputs, rowOutputs } from "../tensor/index.js";
import { connectTo } from "../transport/index.js";

/** Field text (UTF-16 units) after which a request message is cut early. */
const MAX_MESSAGE_CHARS = 4 * 1024 * 1024;

/** Deepest nesting of a field value that is sent (protobuf's Struct decoder stops at 100). */
export const MAX_DEPTH = 32;

/** The first field whose value nests deeper than {@link MAX_DEPTH}, if any. */
function tooDeep(fields: Record<string, unknown>): string | undefined {
  const depth = (v: unknown, d: number): boolean => {
    if (d > MAX_DEPTH) return true;
    if (v === null || typeof v !== "object") return false;
    for (const x of Array.isArray(v) ? v : Object.values(v)) if (depth(x, d + 1)) return true;
    return false;
  };
  for (const k in fields) if (depth(fields[k], 1)) return k;
  return undefined;
}

/** Options of {@link sendFile}. */
export interface SendOptions extends ReadRecordsOptions {
  /** Ingest "host:port". */
  ingest: string;
  /** Where result lines go; default stdout. */
  out?: NodeJS.WritableStream;
  pipeline?: string;
  /** Records per request message, default 256. */
  messageRecords?: number;
  /** Records in flight at most, default 16384. */
  window?: number;
  /** Progress on stderr: "auto" (a TTY and a file over 1 MB), "always", "never". */
  progress?: "auto" | "always" | "never";
}

/** Counts of one {@link sendFile} run. */
export interface SendReport {
  records: number;
  predictions: number;
  errors: number;
  seconds: number;
}

/** One result line: `{"id":..,"outputs":{..}}` or `{"id":..,"error":{"code":..,"message":..}}`. */
export function resultLine(
  id: string,
  r: Result | { error: { code: string; message: string; field?: string } },
): string {
  if ("outcome" in r) {
    if (r.outcome.case === "outputs") return JSON.stringify({ id, outputs: r.outcome.value });
    const e = r.outcome.value;
    return JSON.stringify({
      id,
      error: e
        ? { code: e.code, message: e.message, ...(e.field ? { field: e.field } : {}) }
        : { code: "internal", message: "empty result" },
    });
  }
  return JSON.stringify({ id, error: r.error });
}

/**
 * Streams a data file through ingest and writes one JSON line per input record, in input
 * order. Records the reader cannot parse get their error line without being sent.
 * @throws when the stream to ingest fails (the lines written so far stay written).
 */
export async function sendFile(file: string, options: SendOptions): Promise<SendReport> {
  const started = performance.now();
  const out = options.out ?? process.stdout;
  const client = connectTo(IngestService, options.ingest);
  const requests = createWritableIterable<StreamRequest>();
  const perMessage = options.messageRecords ?? 256;
  const window = options.window ?? 16_384;
  const size = (await stat(file)).size;
  const showProgress =
    options.progress === "always" ||
    (options.progress !== "never" && process.stderr.isTTY === true && size > 1_000_000);
  const userIds = new Map<number, string>();
  const lines = new Map<number, string>();
  let nextWrite = 0;
  let total = -1;
  let sent = 0;
  let predictions = 0;
  let errors = 0;
  let inFlight = 0;
  let room: (() => void) | undefined;
  const write = async () => {
    let chunk = "";
    while (lines.has(nextWrite)) {
      chunk += `${lines.get(nextWrite)}\n`;
      lines.delete(nextWrite);
      nextWrite++;
    }
    if (chunk !== "" && !out.write(chunk)) await new Promise((r) => out.once("drain", r));
  };
  const place = (index: number, line: string, isError: boolean) => {
    if (isError) errors++;
    else predictions++;
    lines.set(index, line);
  };
  let lastProgress = 0;
  const progress = (final = false) => {
    if (!showProgress) return;
    const now = performance.now();
    if (!final && now - lastProgress < 200) return;
    lastProgress = now;
    const secs = (now - started) / 1000;
    process.stderr.write(
      `\r${nextWrite} results / ${sent} sent, ${Math.round(nextWrite / Math.max(secs, 0.001))} rec/s${final ? "\n" : ""}`,
    );
  };

  const answer = (wireId: string, line: (id: string) => string, isError: boolean) => {
    const index = Number(wireId);
    const id = userIds.get(index);
    if (id === undefined) return;
    userIds.delete(index);
    inFlight--;
    place(index, line(id), isError);
  };
  const responses = (async () => {
    for await (const res of client.stream(requests)) {
      for (const r of res.results) answer(r.id, (id) => resultLine(id, r), r.outcome.case !== "outputs");
      const c = res.columns;
      if (c !== undefined) {
        const outs = decodeOutputs(c.outputs);
        c.ids.forEach((wireId, row) => {
          answer(
            wireId,
            (id) =>
              JSON.stringify({
                id,
                outputs: rowOutputs(outs, row, { label: c.labels[row], model: c.model, modelVersion: c.modelVersion }),
              }),
            false,
          );
        });
        for (const r of c.errors) answer(r.id, (id) => resultLine(id, r), true);
      }
      await write();
      progress();
      if (inFlight < window) room?.();
      if (total >= 0 && nextWrite >= total) break;
    }
  })();
  // Records go in columns: far cheaper to encode and decode than one Struct per record.
  let batchIds: string[] = [];
  let batch: Array<Record<string, unknown>> = [];
  let batchChars = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const msg: StreamRequest = {
      $typeName: "sluice.v1.StreamRequest",
      records: [],
      pipeline: options.pipeline ?? "",
      columns: { $typeName: "sluice.v1.RecordColumns", ids: batchIds, columns: rowsToColumns(batch) },
    };
    batch = [];
    batchIds = [];
    batchChars = 0;
    await requests.write(msg);
  };
  let failed: unknown;
  const failedEarly = responses.catch((e) => {
    failed = e;
    room?.();
  });
  let unreadable: unknown;
  try {
    for await (const rec of readRecords(file, options)) {
      if (failed) break;
      if (rec.error) {
        place(rec.index, resultLine(rec.id, { error: rec.error }), true);
        continue;
      }
      const deep = tooDeep(rec.fields ?? {});
      if (deep !== undefined) {
        const message = `line ${rec.line}: field ${JSON.stringify(deep)} is nested deeper than ${MAX_DEPTH} levels`;
        place(rec.index, resultLine(rec.id, { error: { code: "invalid_argument", message, field: deep } }), true);
        continue;
      }
      userIds.set(rec.index, rec.id);
      inFlight++;
      sent++;
      batchIds.push(String(rec.index));
      batch.push(rec.fields ?? {});
      // Cut by size too: records with big (but allowed) fields must not add up to a message
      // over the transport's limit.
      for (const k in rec.fields) {
        const v = rec.fields[k];
        batchChars += k.length + (typeof v === "string" ? v.length : 16);
      }
      if (batch.length >= perMessage || batchChars >= MAX_MESSAGE_CHARS) await flush();
      if (inFlight >= window) {
        await flush();
        await new Promise<void>((r) => {
          room = r;
        });
        room = undefined;
      }
    }
    await flush();
  } catch (e) {
    // A file that stops being readable midway: the records before it still get their results.
    if (!isSourceError(e)) throw e;
    unreadable = e;
    await flush().catch(() => undefined);
  } finally {
    requests.close();
  }
  await failedEarly;
  if (failed) throw failed;
  total = nextWrite + lines.size + userIds.size;
  await write();
  progress(true);
  if (userIds.size > 0) throw new Error(`ingest ended the stream with ${userIds.size} records unanswered`);
  if (unreadable !== undefined) throw unreadable;
  return { records: nextWrite, predictions, errors, seconds: (performance.now() - started) / 1000 };
}
