import { stat } from "node:fs/promises";
import type { JsonObject } from "@bufbuild/protobuf";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import { IngestService, type StreamRequest } from "../gen/sluice/v1/ingest_pb.js";
import type { Result } from "../gen/sluice/v1/records_pb.js";
import { type ReadRecordsOptions, readRecords } from "../records/index.js";
import { connectTo } from "../transport/index.js";

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

  const responses = (async () => {
    for await (const res of client.stream(requests)) {
      for (const r of res.results) {
        const index = Number(r.id);
        const id = userIds.get(index);
        if (id === undefined) continue;
        userIds.delete(index);
        inFlight--;
        place(index, resultLine(id, r), r.outcome.case !== "outputs");
      }
      await write();
      progress();
      if (inFlight < window) room?.();
      if (total >= 0 && nextWrite >= total) break;
    }
  })();
  let batch: StreamRequest["records"] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const msg: StreamRequest = {
      $typeName: "sluice.v1.StreamRequest",
      records: batch,
      pipeline: options.pipeline ?? "",
    };
    batch = [];
    await requests.write(msg);
  };
  let failed: unknown;
  const failedEarly = responses.catch((e) => {
    failed = e;
  });
  try {
    for await (const rec of readRecords(file, options)) {
      if (failed) break;
      if (rec.error) {
        place(rec.index, resultLine(rec.id, { error: rec.error }), true);
        continue;
      }
      userIds.set(rec.index, rec.id);
      inFlight++;
      sent++;
      batch.push({ $typeName: "sluice.v1.Record", id: String(rec.index), fields: (rec.fields ?? {}) as JsonObject });
      if (batch.length >= perMessage) await flush();
      if (inFlight >= window) {
        await flush();
        await new Promise<void>((r) => {
          room = r;
        });
        room = undefined;
      }
    }
    await flush();
  } finally {
    requests.close();
  }
  await failedEarly;
  if (failed) throw failed;
  total = nextWrite + lines.size + userIds.size;
  await write();
  progress(true);
  if (userIds.size > 0) throw new Error(`ingest ended the stream with ${userIds.size} records unanswered`);
  return { records: nextWrite, predictions, errors, seconds: (performance.now() - started) / 1000 };
}
