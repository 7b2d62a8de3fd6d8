/**
 * Records per second and latency through the mesh (separate processes) beside the same
 * preprocessing and model in one process, measured in one run so the ratio is fair on a
 * noisy machine. `npm run bench` (options: BENCH_RECORDS, BENCH_INFERENCE).
 */

import { readFile } from "node:fs/promises";
import path from "node:path";
import { create, type JsonObject } from "@bufbuild/protobuf";
import * as ort from "onnxruntime-node";
import { rowsToColumns } from "../../libs/batch/index.js";
import { BalancerService } from "../../libs/gen/sluice/v1/balancer_pb.js";
import { IngestService, type StreamRequest, StreamRequestSchema } from "../../libs/gen/sluice/v1/ingest_pb.js";
import { compilePipeline, parsePipelineSpec } from "../../libs/pipeline/index.js";
import { connectTo } from "../../libs/transport/index.js";
import { penguinRows, penguinsArtifacts, startPenguinMesh } from "../helpers/mesh.js";

const total = Number(process.env.BENCH_RECORDS ?? 100_000);
const nodes = Number(process.env.BENCH_INFERENCE ?? 2);
const batch = 256;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const base = await penguinRows();
const rows = Array.from({ length: total }, (_, i) => base[i % base.length] as Record<string, unknown>);
const art = await penguinsArtifacts();

// In one process: the same pipeline and model, batch by batch.
const pipeline = compilePipeline(parsePipelineSpec(await readFile(art.pipelineFile, "utf8")));
const session = await ort.InferenceSession.create(path.join(art.models, pipeline.spec.model, "1", "model.onnx"), {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
});
const inLat: number[] = [];
const t0 = performance.now();
for (let i = 0; i < rows.length; i += batch) {
  const s = performance.now();
  const t = pipeline.transformRows(rows.slice(i, i + batch));
  await session.run({ [pipeline.spec.input]: new ort.Tensor("float32", t.features, [t.rows.length, pipeline.width]) });
  inLat.push(performance.now() - s);
}
const inSecs = (performance.now() - t0) / 1000;
inLat.sort((a, b) => a - b);

// Through the mesh: one caller stream, records in messages of 256, a window of 16k in flight.
const mesh = await startPenguinMesh({ inference: nodes });
try {
  const client = connectTo(IngestService, mesh.address("ingest"));
  const run = async (count: number, columnar: boolean) => {
    const sentAt = new Float64Array(count);
    const lat: number[] = [];
    let answered = 0;
    let room: (() => void) | undefined;
    async function* requests(): AsyncIterable<StreamRequest> {
      for (let i = 0; i < count; i += batch) {
        while (i - answered > 16_384) await new Promise<void>((r) => (room = r));
        const now = performance.now();
        for (let k = i; k < Math.min(count, i + batch); k++) sentAt[k] = now;
        const slice = rows.slice(i, Math.min(count, i + batch));
        yield columnar
          ? create(StreamRequestSchema, {
              columns: { ids: slice.map((_, k) => String(i + k)), columns: rowsToColumns(slice) },
            })
          : create(StreamRequestSchema, {
              records: slice.map((r, k) => ({ id: String(i + k), fields: r as JsonObject })),
            });
      }
    }
    const s = performance.now();
    for await (const res of client.stream(requests())) {
      const now = performance.now();
      for (const r of res.results) lat.push(now - (sentAt[Number(r.id)] as number));
      answered += res.results.length;
      const c = res.columns;
      if (c !== undefined) {
        for (const id of c.ids) lat.push(now - (sentAt[Number(id)] as number));
        for (const e of c.errors) lat.push(now - (sentAt[Number(e.id)] as number));
        answered += c.ids.length + c.errors.length;
      }
      room?.();
    }
    const secs = (performance.now() - s) / 1000;
    lat.sort((a, b) => a - b);
    return { secs, lat, answered };
  };
  await run(Math.min(5_000, total), true); // warm-up
  const m = await run(total, true);
  const rowTotal = Math.min(total, 50_000);
  const r = await run(rowTotal, false);
  // Light load: one record per Submit, one at a time.
  const light: number[] = [];
  for (let i = 0; i < 200; i++) {
    const s = performance.now();
    await client.submit({ records: [{ id: String(i), fields: rows[i] as JsonObject }] });
    light.push(performance.now() - s);
  }
  light.sort((a, b) => a - b);
  const nodesLoad = await connectTo(BalancerService, mesh.address("balancer")).listNodes({});
  const batches = nodesLoad.nodes.reduce((sum, n) => sum + Number(n.batchesRouted), 0);
  const inRate = rows.length / inSecs;
  const meshRate = m.answered / m.secs;
  const lines = [
    `records: ${total}, inference nodes: ${nodes}, batch ${batch}, node ${process.version}, ${new Date().toISOString()}`,
    `in one process : ${Math.round(inRate).toString().padStart(8)} rec/s   batch latency p50 ${pct(inLat, 50).toFixed(2)} ms  p99 ${pct(inLat, 99).toFixed(2)} ms`,
    `through mesh   : ${Math.round(meshRate).toString().padStart(8)} rec/s   record latency p50 ${pct(m.lat, 50).toFixed(1)} ms  p99 ${pct(m.lat, 99).toFixed(1)} ms (records in columns, saturated, 16k window)`,
    `mesh, rows     : ${Math.round(r.answered / r.secs)
      .toString()
      .padStart(
        8,
      )} rec/s   record latency p50 ${pct(r.lat, 50).toFixed(1)} ms  p99 ${pct(r.lat, 99).toFixed(1)} ms (one Struct per record, ${rowTotal} records)`,
    `mesh, 1 record per Submit, sequential: p50 ${pct(light, 50).toFixed(2)} ms  p99 ${pct(light, 99).toFixed(2)} ms`,
    `mean records per batch at the balancer: ${((Math.min(5_000, total) + total + rowTotal + 200) / Math.max(batches, 1)).toFixed(1)} (${batches} batches)`,
    `ratio mesh / in-process throughput: ${(meshRate / inRate).toFixed(3)}`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
  if (m.answered !== total) throw new Error(`only ${m.answered} of ${total} records answered`);
} finally {
  await mesh.stop();
  await session.release();
}
