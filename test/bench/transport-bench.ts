/**
 * Client transport benchmark: connect-node's gRPC transport (what libs/transport connectTo
 * builds) against @grpc/grpc-js, both calling one connect-node server (startServer, the way
 * every Sluice service serves) in a child process over a real loopback socket. The clients
 * run side by side in one process and alternate round by round, so their ratio is fair on a
 * noisy machine; each figure is the median of the rounds.
 *
 * The server answers each `sluice.v1.PreprocessService/Process` request (a RecordBatch of
 * penguins records) at once with a ResultBatch carrying a float32 tensor of n×3, as an
 * inference node would. Cases: 256 records per message and 1 record per message, each with
 * 2 and 8 messages in flight on one bidi stream.
 *
 * grpc-js always sends `grpc-accept-encoding: identity,deflate,gzip`, and a connect-node
 * server (gzip and brotli on by default) then gzips every response of 1 KiB or more. So
 * grpc-js runs twice: as it comes ("grpc-js"), and with its accept-encoding patched to
 * `identity` ("grpc-js id"), which is what it would take to match connectTo's no-gzip wire.
 *
 * `npm run bench:transport` (options: BENCH_MESSAGES for 256-record messages, default 1200;
 * BENCH_TINY_MESSAGES for 1-record messages, default 3000; BENCH_ROUNDS, default 5).
 */

import { type ChildProcess, fork } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { availableParallelism, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Client as ConnectClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { rowsToColumns } from "../../libs/batch/index.js";
import { type RecordBatch, RecordBatchSchema, ResultBatchSchema } from "../../libs/gen/sluice/v1/batch_pb.js";
import {
  PreprocessService,
  type ProcessRequest,
  ProcessRequestSchema,
  type ProcessResponse,
  ProcessResponseSchema,
} from "../../libs/gen/sluice/v1/preprocess_pb.js";
import { float32Tensor } from "../../libs/tensor/index.js";
import { answerEach, connectTo, startServer } from "../../libs/transport/index.js";

const OUTPUT_COLS = 3;
const MAX_BYTES = 64 * 1024 * 1024;

// ---------------------------------------------------------------- server (child process)

const probs = Float32Array.from({ length: 256 * OUTPUT_COLS }, (_, i) => ((i * 7919) % 1000) / 1000);

/** The answer to one request: a float32 tensor of n×3, as an inference node would send. */
function respond(req: ProcessRequest): ProcessResponse {
  const b = req.batch;
  const n = b?.keys.length ?? 0;
  const data = n <= 256 ? probs.subarray(0, n * OUTPUT_COLS) : new Float32Array(n * OUTPUT_COLS);
  return create(ProcessResponseSchema, {
    results: create(ResultBatchSchema, {
      batchId: b?.batchId ?? 0n,
      keys: b?.keys ?? [],
      outputs: [float32Tensor("probabilities", data, n, OUTPUT_COLS)],
      model: "penguins",
      node: "bench",
    }),
  });
}

async function serve(): Promise<void> {
  const server = await startServer({
    name: "transport-bench",
    services: [PreprocessService],
    routes: (router) =>
      router.service(PreprocessService, {
        process(requests, ctx) {
          // Answered at once, no await per request.
          return answerEach<ProcessRequest, ProcessResponse>(requests, ctx.signal, (req, reply) => reply(respond(req)));
        },
      }),
  });
  process.send?.({ address: server.address });
  process.on("disconnect", () => {
    void server.close(100).then(() => process.exit(0));
  });
}

// ---------------------------------------------------------------- clients

interface RunResult {
  secs: number;
  messages: number;
  records: number;
  p50: number;
  p99: number;
}

type MakeRequest = (i: number) => ProcessRequest;

/**
 * Round trip of message i: from the moment its window slot opened (the start, or the answer
 * to message i - window) to its answer. The same for both clients, whether the library
 * buffers a write at once (grpc-js) or pulls the next request when it is ready (connect-node).
 */
function summarize(t0: number, recvAt: Float64Array, window: number, records: number): RunResult {
  const n = recvAt.length;
  const secs = (recvAt[n - 1]! - t0) / 1000;
  const lat = Array.from(recvAt, (at, i) => at - (i >= window ? recvAt[i - window]! : t0));
  const sorted = lat.sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
  return { secs, messages: n, records, p50: at(0.5), p99: at(0.99) };
}

/** connect-node: one bidi stream, at most `window` requests unanswered. */
async function runConnect(
  client: ConnectClient<typeof PreprocessService>,
  make: MakeRequest,
  n: number,
  window: number,
): Promise<RunResult> {
  const recvAt = new Float64Array(n);
  let answered = 0;
  let records = 0;
  let wake: (() => void) | undefined;
  async function* requests(): AsyncIterable<ProcessRequest> {
    for (let i = 0; i < n; i++) {
      while (i - answered >= window) await new Promise<void>((r) => (wake = r));
      yield make(i);
    }
  }
  const t0 = performance.now();
  for await (const res of client.process(requests())) {
    const r = res.results!;
    if (Number(r.batchId) !== answered) throw new Error("answers out of order");
    recvAt[answered++] = performance.now();
    records += r.keys.length;
    const w = wake;
    wake = undefined;
    w?.();
  }
  if (answered !== n) throw new Error(`connect-node: ${answered} of ${n} answered`);
  return summarize(t0, recvAt, window, records);
}

// grpc-js: a generic client over protobuf-es (de)serializers of the generated schemas.
const serializeRequest = (m: ProcessRequest): Buffer => {
  const u = toBinary(ProcessRequestSchema, m);
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
};
const deserializeResponse = (b: Buffer): ProcessResponse => fromBinary(ProcessResponseSchema, b);
const PreprocessGrpcClient = grpc.makeGenericClientConstructor(
  {
    process: {
      path: `/${PreprocessService.typeName}/Process`,
      requestStream: true,
      responseStream: true,
      requestSerialize: serializeRequest,
      requestDeserialize: (b: Buffer) => fromBinary(ProcessRequestSchema, b),
      responseSerialize: (m: ProcessResponse) => Buffer.from(toBinary(ProcessResponseSchema, m)),
      responseDeserialize: deserializeResponse,
    },
  },
  "PreprocessService",
);
type GrpcPreprocess = grpc.Client & { process(): grpc.ClientDuplexStream<ProcessRequest, ProcessResponse> };

// grpc-js sets grpc-accept-encoding in its (internal) compression filter, after interceptors:
// patch that filter to (a) advertise identity only when asked, (b) record the response encodings.
let grpcIdentityOnly = false;
const seenEncodings = { plain: new Set<string>(), identity: new Set<string>() };
{
  const require = createRequire(import.meta.url);
  const { CompressionFilter } = require("@grpc/grpc-js/build/src/compression-filter.js") as {
    CompressionFilter: { prototype: Record<string, (...a: unknown[]) => unknown> };
  };
  const proto = CompressionFilter.prototype;
  const send = proto.sendMetadata!;
  const receive = proto.receiveMetadata!;
  proto.sendMetadata = async function (this: unknown, md: unknown) {
    const headers = (await send.call(this, md)) as grpc.Metadata;
    if (grpcIdentityOnly) headers.set("grpc-accept-encoding", "identity");
    return headers;
  };
  proto.receiveMetadata = function (this: unknown, md: unknown) {
    const enc = (md as grpc.Metadata).get("grpc-encoding")[0];
    (grpcIdentityOnly ? seenEncodings.identity : seenEncodings.plain).add(typeof enc === "string" ? enc : "identity");
    return receive.call(this, md);
  };
}

async function runGrpcJs(
  client: GrpcPreprocess,
  identityOnly: boolean,
  make: MakeRequest,
  n: number,
  window: number,
): Promise<RunResult> {
  grpcIdentityOnly = identityOnly;
  const recvAt = new Float64Array(n);
  let answered = 0;
  let records = 0;
  let next = 0;
  let ended = false;
  const t0 = performance.now();
  const call = client.process();
  const done = new Promise<void>((resolve, reject) => {
    call.on("error", reject);
    call.on("end", () => resolve());
  });
  const pump = () => {
    while (next < n && next - answered < window) {
      call.write(make(next));
      next++;
    }
    if (next === n && !ended) {
      ended = true;
      call.end();
    }
  };
  call.on("data", (res: ProcessResponse) => {
    const r = res.results!;
    if (Number(r.batchId) !== answered) throw new Error("answers out of order");
    recvAt[answered++] = performance.now();
    records += r.keys.length;
    pump();
  });
  pump();
  await done;
  if (answered !== n) throw new Error(`grpc-js: ${answered} of ${n} answered`);
  return summarize(t0, recvAt, window, records);
}

// ---------------------------------------------------------------- main

async function loadPenguins(): Promise<Array<Record<string, unknown>>> {
  const file = fileURLToPath(new URL("../../../node_modules/vega-datasets/data/penguins.json", import.meta.url));
  return JSON.parse(await readFile(file, "utf8")) as Array<Record<string, unknown>>;
}

/** Requests of `size` records each, built ahead (only batch_id changes per message). */
function requestMaker(rows: Array<Record<string, unknown>>, size: number): MakeRequest {
  const templates: RecordBatch[] = [];
  for (let t = 0; t < 16; t++) {
    const slice = Array.from({ length: size }, (_, k) => rows[(t * size + k) % rows.length]!);
    templates.push(
      create(RecordBatchSchema, {
        keys: Array.from({ length: size }, (_, k) => BigInt(t * size + k)),
        columns: rowsToColumns(slice),
        pipeline: "penguins",
      }),
    );
  }
  return (i) => create(ProcessRequestSchema, { batch: { ...templates[i % templates.length]!, batchId: BigInt(i) } });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const bigN = Number(process.env.BENCH_MESSAGES ?? 1200);
  const tinyN = Number(process.env.BENCH_TINY_MESSAGES ?? 3000);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 5);

  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ["--server"], { stdio: "inherit" });
  const address = await new Promise<string>((resolve, reject) => {
    child.once("message", (m) => resolve((m as { address: string }).address));
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  try {
    const rows = await loadPenguins();
    const connect = connectTo(PreprocessService, address, { readMaxBytes: MAX_BYTES });
    const grpcClient = new PreprocessGrpcClient(address, grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": MAX_BYTES,
      "grpc.max_send_message_length": MAX_BYTES,
      "grpc.keepalive_time_ms": 10_000,
      "grpc.keepalive_timeout_ms": 5_000,
    }) as unknown as GrpcPreprocess;

    const clients: Array<{ name: string; run: (make: MakeRequest, n: number, w: number) => Promise<RunResult> }> = [
      { name: "connect-node", run: (m, n, w) => runConnect(connect, m, n, w) },
      { name: "grpc-js", run: (m, n, w) => runGrpcJs(grpcClient, false, m, n, w) },
      { name: "grpc-js id", run: (m, n, w) => runGrpcJs(grpcClient, true, m, n, w) },
    ];
    const cases = [
      { size: 256, window: 2, n: bigN },
      { size: 256, window: 8, n: bigN },
      { size: 1, window: 2, n: tinyN },
      { size: 1, window: 8, n: tinyN },
    ];

    console.log(
      `server: connect-node startServer in a child process at ${address}; clients in this process; ` +
        `${rounds} rounds, alternating; median of rounds`,
    );
    for (const size of [256, 1]) {
      const make = requestMaker(rows, size);
      const req = toBinary(ProcessRequestSchema, make(0)).byteLength;
      const res = toBinary(ProcessResponseSchema, respond(make(0))).byteLength;
      console.log(`  ${size} record(s)/message: request ${req} B, response ${res} B`);
    }

    // Warm-up: connections, JIT.
    for (const c of clients) {
      await c.run(requestMaker(rows, 256), 200, 8);
      await c.run(requestMaker(rows, 1), 500, 8);
    }

    const table: string[][] = [];
    const summary = new Map<string, number>(); // `${case}|${client}` -> median msgs/s
    const t0 = performance.now();
    for (const k of cases) {
      const make = requestMaker(rows, k.size);
      const results = new Map<string, RunResult[]>(clients.map((c) => [c.name, []]));
      for (let r = 0; r < rounds; r++) {
        // Rotate the order each round so no client always goes first.
        for (let j = 0; j < clients.length; j++) {
          const c = clients[(j + r) % clients.length]!;
          results.get(c.name)!.push(await c.run(make, k.n, k.window));
        }
      }
      for (const c of clients) {
        const rs = results.get(c.name)!;
        const mps = median(rs.map((x) => x.messages / x.secs));
        const rps = median(rs.map((x) => x.records / x.secs));
        summary.set(`${k.size}|${k.window}|${c.name}`, mps);
        table.push([
          `${k.size}`,
          `${k.window}`,
          c.name,
          `${k.n}`,
          mps.toFixed(0),
          rps.toFixed(0),
          median(rs.map((x) => x.p50)).toFixed(3),
          median(rs.map((x) => x.p99)).toFixed(3),
          rs.map((x) => (x.messages / x.secs).toFixed(0)).join(" "),
        ]);
      }
    }
    const measured = (performance.now() - t0) / 1000;

    const head = ["rec/msg", "window", "client", "msgs", "msgs/s", "records/s", "p50 ms", "p99 ms", "msgs/s per round"];
    const widths = head.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
    const line = (cells: string[]) =>
      cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
    console.log();
    console.log(line(head));
    console.log(widths.map((w) => "-".repeat(w)).join("  "));
    for (const row of table) console.log(line(row));
    console.log();
    console.log(
      `grpc-js response encodings seen: as it comes {${[...seenEncodings.plain].join(",")}}, ` +
        `identity-only {${[...seenEncodings.identity].join(",")}}; measured for ${measured.toFixed(1)} s`,
    );

    // Verdict: connect-node msgs/s over each grpc-js variant, per case and as a geometric mean.
    const ratios = (variant: string) =>
      cases.map(
        (k) => summary.get(`${k.size}|${k.window}|connect-node`)! / summary.get(`${k.size}|${k.window}|${variant}`)!,
      );
    const geo = (rs: number[]) => Math.exp(rs.reduce((a, x) => a + Math.log(x), 0) / rs.length);
    const show = (rs: number[]) => `${geo(rs).toFixed(2)}× (${rs.map((r) => r.toFixed(2)).join(" ")})`;
    const plain = ratios("grpc-js");
    const id = ratios("grpc-js id");
    const gPlain = geo(plain);
    const gId = geo(id);
    const verdict =
      gPlain >= 1.05 && gId >= 1.05
        ? "connect-node is faster than both: keep connectTo for internal clients."
        : gPlain <= 1 / 1.05
          ? "grpc-js is faster even as it comes: switch internal clients to grpc-js."
          : gId <= 1 / 1.05
            ? "grpc-js is faster only with gzip off (a patched accept-encoding); as it comes it is not: keep connectTo."
            : "within 5%: no measured reason to switch; keep connectTo.";
    console.log(
      `verdict: connect-node ÷ grpc-js msgs/s = ${show(plain)} as it comes, ${show(id)} identity-only ` +
        `(cases in table order); ${verdict}`,
    );
    console.log(
      `load average 1/5 min: ${loadavg()
        .map((x) => x.toFixed(2))
        .slice(0, 2)
        .join(" ")} on ${availableParallelism()} cores`,
    );
    grpcClient.close();
  } finally {
    child.disconnect();
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null) resolve();
      else child.once("exit", () => resolve());
      setTimeout(() => {
        child.kill();
        resolve();
      }, 2_000).unref();
    });
  }
}

if (process.argv[2] === "--server") {
  await serve();
} else {
  await main();
  process.exit(0);
}
