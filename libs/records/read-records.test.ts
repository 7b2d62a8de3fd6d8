import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DEFAULT_MAX_FIELD_BYTES,
  formatFromPath,
  isSourceError,
  type ReadRecordsOptions,
  readRecordBatches,
  readRecords,
  SourceError,
  type SourceRecord,
} from "./index.js";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-records-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, content: string | Uint8Array): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

async function all(path: string, options?: ReadRecordsOptions): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const r of readRecords(path, options)) out.push(r);
  return out;
}

async function sourceError(path: string, options?: ReadRecordsOptions): Promise<SourceError> {
  const error = await all(path, options).catch((e: unknown) => e);
  expect(isSourceError(error)).toBe(true);
  expect(error).toBeInstanceOf(SourceError);
  return error as SourceError;
}

/** Writes `rows` lines made by `row(i)` to a file, streaming, and returns its path. */
async function generate(name: string, head: string, rows: number, row: (i: number) => string, tail = "") {
  const path = join(dir, name);
  const out = createWriteStream(path);
  out.write(head);
  let batch = "";
  for (let i = 0; i < rows; i++) {
    batch += row(i);
    if (batch.length > 1 << 20) {
      if (!out.write(batch)) await once(out, "drain");
      batch = "";
    }
  }
  out.end(batch + tail);
  await once(out, "finish");
  return path;
}

describe("readRecords", () => {
  it("tells the format from the extension, in any case", async () => {
    expect(formatFromPath("a/b.CSV")).toBe("csv");
    expect(formatFromPath("b.json")).toBe("json");
    expect(formatFromPath("b.jsonl")).toBe("jsonl");
    expect(formatFromPath("b.ndjson")).toBe("jsonl");
    expect(formatFromPath("b.txt")).toBeUndefined();

    const csv = await file("p.CSV", "a\n1\n");
    const ndjson = await file("p.ndjson", '{"a":1}\n');
    const json = await file("p.json", '[{"a":1}]');
    const objects = await file("objects.json", '\n {"a":1}\n{"a":2}\n');
    expect((await all(csv)).map((r) => r.fields)).toEqual([{ a: "1" }]);
    expect((await all(ndjson)).map((r) => r.fields)).toEqual([{ a: 1 }]);
    expect((await all(json)).map((r) => r.fields)).toEqual([{ a: 1 }]);
    expect((await all(objects)).map((r) => [r.line, r.fields])).toEqual([
      [2, { a: 1 }],
      [3, { a: 2 }],
    ]);
  });

  it("takes the format option over the extension, and asks for one when it cannot tell", async () => {
    const path = await file("data.txt", "a,b\n1,2\n");
    expect((await all(path, { format: "csv" })).map((r) => r.fields)).toEqual([{ a: "1", b: "2" }]);
    expect((await sourceError(path)).message).toMatch(/data\.txt: cannot tell the format/);
  });

  it("throws a SourceError for a missing file or a directory", async () => {
    const missing = join(dir, "missing.csv");
    const error = await sourceError(missing);
    expect(error.message).toBe(`${missing}: no such file`);
    expect(error.path).toBe(missing);

    const sub = join(dir, "sub.csv");
    await mkdir(sub);
    expect((await sourceError(sub)).message).toBe(`${sub}: is a directory, not a file`);
  });

  it("throws a SourceError naming the line for bytes that are not UTF-8", async () => {
    const path = await file(
      "latin1.csv",
      Buffer.concat([Buffer.from("a,b\n1,2\n3,"), Buffer.from([0xe9]), Buffer.from("t\n")]),
    );
    const seen: SourceRecord[] = [];
    const error = await (async () => {
      for await (const r of readRecords(path)) seen.push(r);
    })().catch((e: unknown) => e);
    expect(isSourceError(error)).toBe(true);
    expect((error as Error).message).toBe(
      `${path}: line 3: not valid UTF-8 (bad byte at offset 10); save the file as UTF-8`,
    );
    expect((error as SourceError).line).toBe(3);

    const utf16 = await file("utf16.csv", Buffer.from("\uFEFFa,b\n", "utf16le"));
    expect((await sourceError(utf16)).message).toMatch(/looks like UTF-16/);

    const cut = await file("cut.jsonl", Buffer.from([0x7b, 0x7d, 0x0a, 0xe2, 0x82]));
    expect((await sourceError(cut)).message).toMatch(/line 2: not valid UTF-8/);
  });

  it("rejects limits that are not positive integers", async () => {
    const path = await file("limits.csv", "a\n1\n");
    await expect(all(path, { maxFieldBytes: 0 })).rejects.toThrow(RangeError);
    await expect(all(path, { maxRecordBytes: 1.5 })).rejects.toThrow(RangeError);
  });

  it("makes a record with a 10 MB field an error record, others unaffected (default limit)", async () => {
    const big = "x".repeat(10 * 1024 * 1024);
    const message = `line 3: field "text" is 10485760 bytes, limit ${DEFAULT_MAX_FIELD_BYTES}`;

    const csv = await file("big-field.csv", `id,text\na,small\nb,"${big}"\nc,also small\n`);
    expect((await all(csv, { idField: "id" })).map((r) => [r.id, r.error?.message ?? r.fields])).toEqual([
      ["a", { id: "a", text: "small" }],
      ["2", message],
      ["c", { id: "c", text: "also small" }],
    ]);

    const jsonl = await file("big-field.jsonl", `{"text":"s"}\n\n{"text":"${big}"}\n{"text":"t"}\n`);
    expect((await all(jsonl)).map((r) => r.error?.message ?? r.fields)).toEqual([
      { text: "s" },
      message,
      { text: "t" },
    ]);

    const json = await file("big-field.json", `[{"text":"s"},\n\n{"text":"${big}"},\n{"text":"t"}]`);
    expect((await all(json)).map((r) => r.error?.message ?? r.fields)).toEqual([{ text: "s" }, message, { text: "t" }]);
  });

  it("gives the same records an array at a time from readRecordBatches", async () => {
    const path = await generate("batches.csv", "id,v\n", 20_000, (i) => `k${i},${i}\n`);
    const batches: SourceRecord[][] = [];
    for await (const batch of readRecordBatches(path, { idField: "id" })) batches.push(batch);
    expect(batches.length).toBeGreaterThan(1);
    expect(batches.every((b) => b.length > 0)).toBe(true);
    expect(batches.flat()).toEqual(await all(path, { idField: "id" }));
    expect(batches.flat().map((r) => r.index)).toEqual(Array.from({ length: 20_000 }, (_, i) => i));
  });

  it("stops reading and closes the file when the loop breaks", async () => {
    const path = await file("many.jsonl", '{"a":1}\n'.repeat(100_000));
    let count = 0;
    for await (const _ of readRecords(path)) if (++count === 10) break;
    expect(count).toBe(10);
  });

  it("streams a 50 MB CSV with flat memory", async () => {
    const rows = 800_000;
    const path = await generate(
      "big.csv",
      "id,species,bill_length_mm,note\r\n",
      rows,
      (i) => `r${i},Adelie,${(30 + (i % 200) / 10).toFixed(1)},"a note, with a comma and ""quotes"" ${i}"\r\n`,
    );
    const result = await measure(path);
    expect(result.sizeMb).toBeGreaterThan(50);
    expect(result.count).toBe(rows);
    expect(result.errors).toBe(0);
    expect(result.lastId).toBe(`r${rows - 1}`);
    log("CSV", result);
    expect(result.peakGrowthMb).toBeLessThan(400);
  });

  it("streams a 50 MB JSON array with flat memory", async () => {
    const rows = 750_000;
    const path = await generate(
      "big.json",
      "[\n",
      rows,
      (i) =>
        `${i === 0 ? "" : ",\n"}{"id": "r${i}", "species": "Gentoo", "bill": ${(40 + (i % 90) / 10).toFixed(1)}, "tags": ["a", "b"]}`,
      "\n]\n",
    );
    const result = await measure(path);
    expect(result.sizeMb).toBeGreaterThan(50);
    expect(result.count).toBe(rows);
    expect(result.errors).toBe(0);
    expect(result.lastId).toBe(`r${rows - 1}`);
    log("JSON", result);
    expect(result.peakGrowthMb).toBeLessThan(400);
  });
});

interface Measured {
  count: number;
  errors: number;
  lastId: string;
  sizeMb: number;
  peakGrowthMb: number;
  ms: number;
}

async function measure(path: string): Promise<Measured> {
  const { stat } = await import("node:fs/promises");
  const sizeMb = (await stat(path)).size / 2 ** 20;
  const base = process.memoryUsage.rss();
  let peak = base;
  let count = 0;
  let errors = 0;
  let lastId = "";
  const start = performance.now();
  for await (const r of readRecords(path, { idField: "id" })) {
    count++;
    if (r.error !== undefined) errors++;
    lastId = r.id;
    if ((count & 0x3fff) === 0) peak = Math.max(peak, process.memoryUsage.rss());
  }
  peak = Math.max(peak, process.memoryUsage.rss());
  return { count, errors, lastId, sizeMb, peakGrowthMb: (peak - base) / 2 ** 20, ms: performance.now() - start };
}

function log(format: string, m: Measured): void {
  console.log(
    `${format}: ${m.sizeMb.toFixed(1)} MB, ${m.count} records in ${m.ms.toFixed(0)} ms, peak RSS growth ${m.peakGrowthMb.toFixed(1)} MB`,
  );
}
