/**
 * Bad input end to end: a bad record gets its own clear error result, the stream goes on,
 * every other record still gets its (correct) result, no service crashes, nothing hangs.
 *
 * Needs `npm run build` first: the mesh runs the compiled services from dist/.
 */
import { execFile } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { packageRoot } from "../../libs/cli/paths.js";
import { sendFile } from "../../libs/cli/send.js";
import { IngestService, type StreamRequest } from "../../libs/gen/sluice/v1/ingest_pb.js";
import type { Result } from "../../libs/gen/sluice/v1/records_pb.js";
import type { Mesh } from "../../libs/mesh/index.js";
import { connectTo } from "../../libs/transport/index.js";
import { penguinRows, referencePredict, startPenguinMesh } from "../helpers/mesh.js";

type Row = Record<string, unknown>;
interface Line {
  id: string;
  outputs?: { label: string; probabilities: number[] };
  error?: { code: string; message: string; field?: string };
}

const CLASSES = ["Adelie", "Chinstrap", "Gentoo"];
const COLUMNS = [
  "Species",
  "Island",
  "Beak Length (mm)",
  "Beak Depth (mm)",
  "Flipper Length (mm)",
  "Body Mass (g)",
  "Sex",
];
const GOOD: JsonObject = {
  Island: "Biscoe",
  "Beak Length (mm)": 46.1,
  "Beak Depth (mm)": 13.2,
  "Flipper Length (mm)": 211,
  "Body Mass (g)": 4500,
  Sex: "FEMALE",
};

let mesh: Mesh;
let dir: string;
let rows: Row[];
/** Reference label (undefined: the pipeline rejects the row) of each penguins row. */
let labels: Array<string | undefined>;
let probs: Array<number[] | undefined>;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "sluice-bad-input-"));
  rows = await penguinRows();
  probs = await referencePredict(rows);
  labels = probs.map((p) => (p ? CLASSES[p.indexOf(Math.max(...p))] : undefined));
  mesh = await startPenguinMesh();
});

afterAll(async () => {
  await mesh?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- helpers

function csvValue(v: unknown): string {
  if (v === null || v === undefined) return "";
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function csvLine(values: unknown[]): string {
  return values.map(csvValue).join(",");
}

function csv(source: Row[], columns = COLUMNS, extra: (row: Row, i: number) => Row = () => ({})): string {
  const all = [...columns, ...Object.keys(extra(source[0] ?? {}, 0))];
  const lines = [csvLine(all)];
  source.forEach((r, i) => {
    const e = extra(r, i);
    lines.push(csvLine(all.map((c) => (c in e ? e[c] : r[c]))));
  });
  return `${lines.join("\n")}\n`;
}

function file(name: string, content: string | Buffer): string {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
}

/** sendFile into memory; the lines parsed. Fails the test if it takes longer than `ms`. */
async function send(p: string, ms = 30_000): Promise<{ lines: Line[]; report: Awaited<ReturnType<typeof sendFile>> }> {
  let text = "";
  const out = new Writable({
    write(chunk, _enc, cb) {
      text += chunk;
      cb();
    },
  });
  const report = await withTimeout(
    sendFile(p, { ingest: mesh.address("ingest"), out, progress: "never" }),
    ms,
    `send ${p}`,
  );
  const lines =
    text === ""
      ? []
      : text
          .trimEnd()
          .split("\n")
          .map((l) => JSON.parse(l) as Line);
  return { lines, report };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} hung for ${ms} ms`)), ms);
    }),
  ]);
}

/** Ids are the 1-based record numbers, in input order. */
function expectInOrder(lines: Line[], n: number): void {
  expect(lines.length).toBe(n);
  expect(lines.map((l) => l.id)).toEqual(Array.from({ length: n }, (_, i) => String(i + 1)));
}

/** The line of a good penguins row: the reference label and probabilities. */
function expectPrediction(line: Line | undefined, rowIndex: number): void {
  expect(line?.error, `row ${rowIndex}: ${JSON.stringify(line?.error)}`).toBeUndefined();
  expect(line?.outputs?.label).toBe(labels[rowIndex]);
  const want = probs[rowIndex] as number[];
  const got = line?.outputs?.probabilities ?? [];
  expect(got.length).toBe(want.length);
  got.forEach((p, k) => {
    expect(Math.abs(p - (want[k] as number))).toBeLessThan(1e-4);
  });
}

function expectError(line: Line | undefined, message: RegExp, field?: string): void {
  expect(line?.outputs, JSON.stringify(line)).toBeUndefined();
  expect(line?.error?.code).toBe("invalid_argument");
  expect(line?.error?.message).toMatch(message);
  if (field !== undefined) expect(line?.error?.field).toBe(field);
}

/** Sends records on one gRPC (binary) bidi Stream; the results by id. */
async function stream(
  records: Array<{ id: string; fields: JsonObject }>,
  address = mesh.address("ingest"),
  perMessage = 64,
): Promise<Map<string, Result>> {
  const client = connectTo(IngestService, address);
  async function* requests(): AsyncGenerator<StreamRequest> {
    for (let i = 0; i < records.length; i += perMessage) {
      yield {
        $typeName: "sluice.v1.StreamRequest",
        pipeline: "",
        records: records.slice(i, i + perMessage).map((r) => ({ $typeName: "sluice.v1.Record", ...r })),
      };
    }
  }
  const results = new Map<string, Result>();
  for await (const res of client.stream(requests(), { timeoutMs: 30_000 })) {
    for (const r of res.results) {
      expect(results.has(r.id), `duplicate result for ${r.id}`).toBe(false);
      results.set(r.id, r);
    }
  }
  return results;
}

function errorOf(r: Result | undefined): { code: string; message: string; field: string } | undefined {
  return r?.outcome.case === "error" ? r.outcome.value : undefined;
}

function outputsOf(r: Result | undefined): JsonObject | undefined {
  return r?.outcome.case === "outputs" ? r.outcome.value : undefined;
}

function labelOf(r: Result | undefined): unknown {
  return r?.outcome.case === "outputs" ? (r.outcome.value as JsonObject).label : undefined;
}

/** Every service process is alive and a good record still gets a prediction. */
async function expectMeshHealthy(m: Mesh = mesh): Promise<void> {
  for (const s of m.services) expect(s.process.exitCode, `${s.name} exited`).toBeNull();
  for (const s of m.services) expect(s.process.signalCode, `${s.name} killed`).toBeNull();
  const client = connectTo(IngestService, m.address("ingest"));
  const res = await client.submit(
    { records: [{ $typeName: "sluice.v1.Record", id: "health", fields: GOOD }] },
    { timeoutMs: 10_000 },
  );
  expect(res.results.length).toBe(1);
  expect(errorOf(res.results[0])).toBeUndefined();
  expect(labelOf(res.results[0])).toBe("Gentoo");
}

function cli(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(packageRoot, "dist", "libs", "cli", "sluice.js"), ...args],
      { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: unknown }).code as unknown) : 0;
        resolve({ code: typeof code === "number" ? code : err ? -1 : 0, stdout, stderr });
      },
    );
  });
}

// ---------------------------------------------------------------- tests

describe("bad input", () => {
  test("1. malformed CSV lines (too many / too few fields) get their own errors; the rest predict", async () => {
    const good = rows.slice(0, 20);
    const text = csv(good).trimEnd().split("\n");
    // text[0] is the header (line 1); record i is at text[i + 1], file line i + 2.
    const tooMany = `${text[5 + 1]},extra,fields`;
    const tooFew = "Adelie,Dream,39.5";
    const lines = [...text.slice(0, 6), tooMany, ...text.slice(6, 12), tooFew, ...text.slice(12)];
    // Records: 0..4 good, 5 too many (line 7), 6..11 = good rows 5..10, 12 too few (line 14), 13.. = good 11..19.
    const { lines: out, report } = await send(file("malformed.csv", `${lines.join("\n")}\n`));
    expectInOrder(out, 22);
    expect(report).toMatchObject({ records: 22, errors: 2, predictions: 20 });
    expectError(out[5], /line 7\b.*fields/);
    expect(out[5]?.error?.message).toMatch(/\b9\b/);
    expectError(out[12], /line 14\b/);
    expect(out[12]?.error?.message).toMatch(/\b3\b/);
    const goodAt = [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21];
    goodAt.forEach((at, k) => {
      expectPrediction(out[at], k);
    });
    await expectMeshHealthy();
  });

  test("2. a UTF-8 BOM at the start of a CSV is not part of the first column name", async () => {
    // Island (required) first: with the BOM glued to its name every record would fail.
    const cols = ["Island", ...COLUMNS.filter((c) => c !== "Island")];
    const sample = rows.slice(0, 30);
    const p = file("bom.csv", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(csv(sample, cols))]));
    const { lines, report } = await send(p);
    expectInOrder(lines, 30);
    expect(report.errors).toBe(0);
    sample.forEach((_, i) => {
      expectPrediction(lines[i], i);
    });
    await expectMeshHealthy();
  });

  test("3. quoted fields with newlines (in an unknown 'note' column) stay one record each", async () => {
    const sample = rows.slice(40, 60);
    const p = file(
      "newlines.csv",
      csv(sample, COLUMNS, (_r, i) => ({
        note: i % 3 === 0 ? `first line ${i}\nsecond, "quoted" line\r\nthird` : `plain ${i}`,
      })),
    );
    expect(readFileSync(p, "utf8").split("\n").length).toBeGreaterThan(sample.length + 2);
    const { lines, report } = await send(p);
    expectInOrder(lines, 20);
    expect(report.errors).toBe(0);
    sample.forEach((_, i) => {
      expectPrediction(lines[i], 40 + i);
    });
    await expectMeshHealthy();
  });

  test('4. "abc" in a number column: invalid_argument naming the field', async () => {
    const sample = rows.slice(0, 10);
    const p = file(
      "abc.csv",
      csv(sample, COLUMNS, (_r, i) => (i === 4 ? { "Beak Length (mm)": "abc" } : {})),
    );
    const { lines, report } = await send(p);
    expectInOrder(lines, 10);
    expect(report.errors).toBe(1);
    expectError(lines[4], /Beak Length \(mm\).*abc/, "Beak Length (mm)");
    sample.forEach((_, i) => {
      if (i !== 4) expectPrediction(lines[i], i);
    });
    await expectMeshHealthy();
  });

  test("5. a missing required field (Island): invalid_argument naming it, empty CSV cell or absent JSON key", async () => {
    const sample = rows.slice(100, 110);
    const c = await send(
      file(
        "no-island.csv",
        csv(sample, COLUMNS, (_r, i) => (i === 2 ? { Island: "" } : {})),
      ),
    );
    expectInOrder(c.lines, 10);
    expectError(c.lines[2], /required.*Island|Island.*(missing|required)/, "Island");
    sample.forEach((_, i) => {
      if (i !== 2) expectPrediction(c.lines[i], 100 + i);
    });

    const jsonl = sample.map((r, i) => {
      const copy = { ...r };
      if (i === 7) delete copy.Island;
      return JSON.stringify(copy);
    });
    const j = await send(file("no-island.jsonl", `${jsonl.join("\n")}\n`));
    expectInOrder(j.lines, 10);
    expectError(j.lines[7], /required.*Island|Island.*(missing|required)/, "Island");
    sample.forEach((_, i) => {
      if (i !== 7) expectPrediction(j.lines[i], 100 + i);
    });
    await expectMeshHealthy();
  });

  test("6. NaN and Infinity: JSONL literals are reader errors; gRPC ±Infinity per-record errors, NaN = missing", async () => {
    const sample = rows.slice(0, 8);
    const jsonl = sample.map((r) => JSON.stringify(r));
    jsonl[2] = jsonl[2]?.replace(/"Beak Length \(mm\)":[^,]+/, '"Beak Length (mm)":NaN') as string;
    jsonl[5] = jsonl[5]?.replace(/"Body Mass \(g\)":[^,]+/, '"Body Mass (g)":Infinity') as string;
    expect(jsonl[2]).toContain(":NaN");
    expect(jsonl[5]).toContain(":Infinity");
    const { lines, report } = await send(file("nan.jsonl", `${jsonl.join("\n")}\n`));
    expectInOrder(lines, 8);
    expect(report.errors).toBe(2);
    expectError(lines[2], /line 3\b/);
    expectError(lines[5], /line 6\b/);
    sample.forEach((_, i) => {
      if (i !== 2 && i !== 5) expectPrediction(lines[i], i);
    });

    // Binary gRPC: google.protobuf.Value's number_value is a double, so these do arrive.
    const noBeak: JsonObject = { ...GOOD };
    delete noBeak["Beak Length (mm)"];
    const results = await stream([
      { id: "ok-1", fields: GOOD },
      { id: "inf", fields: { ...GOOD, "Body Mass (g)": Number.POSITIVE_INFINITY } },
      { id: "ninf", fields: { ...GOOD, "Flipper Length (mm)": Number.NEGATIVE_INFINITY } },
      { id: "nan", fields: { ...GOOD, "Beak Length (mm)": Number.NaN } },
      { id: "absent", fields: noBeak },
      { id: "ok-2", fields: GOOD },
    ]);
    expect([...results.keys()].sort()).toEqual(["absent", "inf", "nan", "ninf", "ok-1", "ok-2"]);
    expect(labelOf(results.get("ok-1"))).toBe("Gentoo");
    expect(labelOf(results.get("ok-2"))).toBe("Gentoo");
    for (const [id, field, text] of [
      ["inf", "Body Mass (g)", /Infinity is not a valid number/],
      ["ninf", "Flipper Length (mm)", /-Infinity is not a valid number/],
    ] as const) {
      const e = errorOf(results.get(id));
      expect(e, `${id}: ${JSON.stringify(results.get(id)?.outcome)}`).toBeDefined();
      expect(e?.code).toBe("invalid_argument");
      expect(e?.field).toBe(field);
      expect(e?.message).toMatch(text);
    }
    // NaN: penguins.yaml lists "NaN" among its missing markers, so a NaN number is a missing
    // value (filled with the median), exactly as if the field were absent; not an error.
    const nan = results.get("nan");
    const absent = results.get("absent");
    expect(errorOf(nan), JSON.stringify(nan?.outcome)).toBeUndefined();
    expect(labelOf(nan)).toBe(labelOf(absent));
    expect(outputsOf(nan)?.probabilities).toEqual(outputsOf(absent)?.probabilities);
    expect(outputsOf(nan)?.probabilities).toBeDefined();
    await expectMeshHealthy();
  });

  test("7. unknown columns are ignored and predictions stay right", async () => {
    const sample = rows.slice(150, 180);
    const p = file(
      "unknown.csv",
      csv(sample, ["zzz", ...COLUMNS], (_r, i) => ({ note: "hello, world", "Extra Col": 12345 + i })),
    );
    const c = await send(p);
    expectInOrder(c.lines, 30);
    expect(c.report.errors).toBe(0);
    sample.forEach((_, i) => {
      expectPrediction(c.lines[i], 150 + i);
    });

    const j = await send(
      file(
        "unknown.jsonl",
        `${sample.map((r, i) => JSON.stringify({ ...r, note: "x", n: i, flag: true, tags: ["a"] })).join("\n")}\n`,
      ),
    );
    expectInOrder(j.lines, 30);
    expect(j.report.errors).toBe(0);
    sample.forEach((_, i) => {
      expectPrediction(j.lines[i], 150 + i);
    });
    await expectMeshHealthy();
  });

  test("8. an empty file and a header-only CSV give zero result lines and succeed", async () => {
    for (const [name, content] of [
      ["empty.csv", ""],
      ["empty.jsonl", ""],
      ["empty.json", ""],
      ["header-only.csv", `${csvLine(COLUMNS)}\n`],
      ["header-only-no-newline.csv", csvLine(COLUMNS)],
    ] as const) {
      const { lines, report } = await send(file(name, content), 15_000);
      expect(lines, name).toEqual([]);
      expect(report, name).toMatchObject({ records: 0, predictions: 0, errors: 0 });
    }
    const out = path.join(dir, "empty-out.jsonl");
    const r = await cli(["send", path.join(dir, "empty.csv"), "--ingest", mesh.address("ingest"), "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(out, "utf8")).toBe("");
    await expectMeshHealthy();
  });

  test("9. a 10 MB string in one field: that record errors with a short message, the others predict", async () => {
    const big = "x".repeat(10 * 1024 * 1024);
    const sample = rows.slice(0, 6);
    const p = file(
      "big-field.csv",
      csv(sample, COLUMNS, (_r, i) => ({ note: i === 3 ? big : "n" })),
    );
    const { lines, report } = await send(p, 60_000);
    expectInOrder(lines, 6);
    expect(report.errors).toBe(1);
    expectError(lines[3], /note/);
    expect(lines[3]?.error?.message.length).toBeLessThan(500);
    sample.forEach((_, i) => {
      if (i !== 3) expectPrediction(lines[i], i);
    });

    // Straight over gRPC (no file reader to stop it): a used field, and an unknown one.
    const results = await stream(
      [
        { id: "ok-1", fields: GOOD },
        { id: "big-island", fields: { ...GOOD, Island: big } },
        { id: "big-number", fields: { ...GOOD, "Beak Length (mm)": big } },
        { id: "ok-2", fields: GOOD },
      ],
      mesh.address("ingest"),
      1,
    );
    expect(results.size).toBe(4);
    expect(labelOf(results.get("ok-1"))).toBe("Gentoo");
    expect(labelOf(results.get("ok-2"))).toBe("Gentoo");
    for (const [id, field] of [
      ["big-island", "Island"],
      ["big-number", "Beak Length (mm)"],
    ] as const) {
      const e = errorOf(results.get(id));
      expect(e, id).toBeDefined();
      expect(e?.code).toBe("invalid_argument");
      expect(e?.field).toBe(field);
      expect(e?.message.length, id).toBeLessThan(500);
    }
    await expectMeshHealthy();
  });

  test("9b. many records with big but allowed fields (900 KB each, 70 MB together) all predict", async () => {
    // Each field is under the reader's 1 MiB limit, but 80 of them exceed one 64 MiB message.
    const note = "n".repeat(900 * 1024);
    const sample = rows.slice(0, 80);
    const p = file(
      "big-records.csv",
      csv(sample, COLUMNS, () => ({ note })),
    );
    const { lines, report } = await send(p, 60_000);
    expectInOrder(lines, 80);
    expect(report.errors).toBe(0);
    sample.forEach((_, i) => {
      expectPrediction(lines[i], i);
    });
    rmSync(p, { force: true });
    await expectMeshHealthy();
  });

  test("10. a 50 MB CSV: one result per record, in order", { timeout: 240_000 }, async () => {
    // Each record carries a ~1 KB free-text column the pipeline ignores, so the file is 50 MB
    // of wide records (tens of thousands) rather than a million tiny ones: the test is about
    // streaming a large file without loss, not a throughput benchmark (that is `npm run bench`).
    const header = csvLine([...COLUMNS, "note"]);
    const block = csv(rows, COLUMNS, (_r, i) => ({ note: `remark ${i} ${"lorem ipsum ".repeat(85)}` })).slice(
      header.length + 1,
    ); // the records, no header
    const perBlock = rows.length;
    const goodPerBlock = labels.filter((l) => l !== undefined).length;
    const repeats = Math.ceil((50 * 1024 * 1024) / Buffer.byteLength(block));
    const p = path.join(dir, "big.csv");
    const ws = createWriteStream(p);
    ws.write(`${header}\n`);
    for (let i = 0; i < repeats; i++) {
      if (!ws.write(block)) await new Promise<void>((r) => ws.once("drain", () => r()));
    }
    await new Promise<void>((resolve, reject) => ws.end((e?: Error | null) => (e ? reject(e) : resolve())));
    const records = repeats * perBlock;

    // Count and check lines as they stream, without keeping 50 MB of results.
    let count = 0;
    let outOfOrder = 0;
    let labelMismatch = 0;
    let predictions = 0;
    let rest = "";
    const out = new Writable({
      write(chunk, _enc, cb) {
        const parts = (rest + chunk).split("\n");
        rest = parts.pop() as string;
        for (const l of parts) {
          const line = JSON.parse(l) as Line;
          if (line.id !== String(count + 1)) outOfOrder++;
          const want = labels[count % perBlock];
          if (line.outputs) predictions++;
          if ((line.outputs?.label ?? undefined) !== want) labelMismatch++;
          count++;
        }
        cb();
      },
    });
    const started = performance.now();
    const report = await withTimeout(
      sendFile(p, { ingest: mesh.address("ingest"), out, progress: "never" }),
      220_000,
      "50 MB send",
    );
    const seconds = (performance.now() - started) / 1000;
    const size = (await import("node:fs")).statSync(p).size;
    console.log(
      `50 MB send: ${records} records, ${(size / 1e6).toFixed(1)} MB in ${seconds.toFixed(1)} s = ${Math.round(records / seconds)} records/s`,
    );
    expect(size).toBeGreaterThanOrEqual(50 * 1024 * 1024);
    expect(rest).toBe("");
    expect(count).toBe(records);
    expect(report.records).toBe(records);
    expect(outOfOrder).toBe(0);
    expect(predictions).toBe(repeats * goodPerBlock);
    expect(labelMismatch).toBe(0);
    rmSync(p, { force: true });
    await expectMeshHealthy();
  });

  test("11. a message over the size limit fails with one ResourceExhausted; the next call works", {
    timeout: 90_000,
  }, async () => {
    const small = await startPenguinMesh({ inference: 1, env: { SLUICE_MAX_MESSAGE_BYTES: "1048576" } });
    try {
      const address = small.address("ingest");
      const huge: StreamRequest = {
        $typeName: "sluice.v1.StreamRequest",
        pipeline: "",
        records: [
          { $typeName: "sluice.v1.Record", id: "huge", fields: { ...GOOD, note: "y".repeat(1024 * 1024 + 10) } },
        ],
      };
      const client = connectTo(IngestService, address);
      let caught: unknown;
      const got: Result[] = [];
      try {
        async function* one() {
          yield huge;
        }
        for await (const res of client.stream(one(), { timeoutMs: 20_000 })) got.push(...res.results);
      } catch (e) {
        caught = e;
      }
      expect(got).toEqual([]);
      expect(caught).toBeInstanceOf(ConnectError);
      expect((caught as ConnectError).code, String(caught)).toBe(Code.ResourceExhausted);
      expect((caught as ConnectError).rawMessage).toMatch(/message|size|limit|1048576/i);

      // Submit too, then the same ingest still answers on the same connection.
      const sub = await client
        .submit({ records: huge.records }, { timeoutMs: 20_000 })
        .then(() => undefined)
        .catch((e: unknown) => e);
      expect((sub as ConnectError).code).toBe(Code.ResourceExhausted);

      const results = await stream([{ id: "after", fields: GOOD }], address);
      expect(labelOf(results.get("after"))).toBe("Gentoo");
      await expectMeshHealthy(small);
    } finally {
      await small.stop();
    }
    await expectMeshHealthy();
  });

  test("12. the CLI: bad lines give error lines and exit 0; a missing file exits non-zero with a clear message", async () => {
    const sample = rows.slice(200, 215);
    const text = csv(sample).trimEnd().split("\n");
    // Record 3 too few fields (line 5), record 9 a bad number (line 11).
    text[3 + 1] = "Gentoo,Biscoe";
    text[9 + 1] = text[9 + 1]?.replace(/^([^,]*,[^,]*,)[^,]*/, "$1not-a-number") as string;
    const p = file("cli-bad.csv", `${text.join("\n")}\n`);
    const out = path.join(dir, "cli-out.jsonl");
    const r = await cli(["send", p, "--ingest", mesh.address("ingest"), "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const lines = readFileSync(out, "utf8")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as Line);
    expectInOrder(lines, 15);
    expectError(lines[3], /line 5\b/);
    expectError(lines[9], /not-a-number/, "Beak Length (mm)");
    sample.forEach((_, i) => {
      if (i !== 3 && i !== 9) expectPrediction(lines[i], 200 + i);
    });

    const missing = path.join(dir, "does-not-exist.csv");
    const m = await cli([
      "send",
      missing,
      "--ingest",
      mesh.address("ingest"),
      "--out",
      path.join(dir, "missing-out.jsonl"),
    ]);
    expect(m.code).not.toBe(0);
    expect(m.code).not.toBe(-1); // not killed by the timeout
    expect(m.stderr).toContain("does-not-exist.csv");
    expect(m.stderr).toMatch(/no such file/i);
    expect(m.stderr.length).toBeLessThan(1000); // a message, not a stack dump
    await expectMeshHealthy();
  });

  test("13. Submit with nested objects/arrays in fields: per-record errors, the others predict", async () => {
    const client = connectTo(IngestService, mesh.address("ingest"));
    const res = await client.submit(
      {
        records: [
          { $typeName: "sluice.v1.Record", id: "ok-1", fields: GOOD },
          {
            $typeName: "sluice.v1.Record",
            id: "obj",
            fields: { ...GOOD, Island: { name: "Biscoe", nested: { deep: [1, 2] } } },
          },
          { $typeName: "sluice.v1.Record", id: "arr", fields: { ...GOOD, "Beak Depth (mm)": [13.2, [14, { x: 1 }]] } },
          {
            $typeName: "sluice.v1.Record",
            id: "extra",
            fields: { ...GOOD, meta: { tags: ["a", { b: [null, true] }] } },
          },
          { $typeName: "sluice.v1.Record", id: "ok-2", fields: GOOD },
        ],
      },
      { timeoutMs: 15_000 },
    );
    expect(res.results.map((r) => r.id)).toEqual(["ok-1", "obj", "arr", "extra", "ok-2"]);
    expect(labelOf(res.results[0])).toBe("Gentoo");
    expect(labelOf(res.results[4])).toBe("Gentoo");
    // An unknown field may hold anything: it is ignored.
    expect(labelOf(res.results[3]), JSON.stringify(res.results[3]?.outcome)).toBe("Gentoo");
    for (const [i, field] of [
      [1, "Island"],
      [2, "Beak Depth (mm)"],
    ] as const) {
      const e = errorOf(res.results[i]);
      expect(e, JSON.stringify(res.results[i]?.outcome)).toBeDefined();
      expect(e?.code).toBe("invalid_argument");
      expect(e?.field).toBe(field);
      expect(e?.message).toMatch(/object|list|array/i);
    }
    await expectMeshHealthy();
  });
});
