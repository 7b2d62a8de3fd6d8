import { describe, expect, it } from "vitest";
import { parseText } from "../../test/helpers/records.js";
import { isSourceError, parseRecords, type SourceError, type SourceRecord } from "./index.js";

async function json(
  text: string,
  options: { idField?: string; maxFieldBytes?: number; maxRecordBytes?: number } = {},
  chunkBytes = Number.POSITIVE_INFINITY,
): Promise<SourceRecord[]> {
  return parseText(text, { format: "json", source: "t.json", ...options }, chunkBytes);
}

async function jsonError(text: string): Promise<SourceError> {
  const error = await json(text).catch((e: unknown) => e);
  expect(isSourceError(error)).toBe(true);
  return error as SourceError;
}

describe("JSON array", () => {
  it("makes each object element a record, with the line it starts on", async () => {
    const records = await json('[\n  {"a": 1, "b": [1, {"c": "]}"}]},\n  {"a": null}\n]\n', {
      idField: "a",
    });
    expect(records).toEqual([
      { index: 0, line: 2, id: "1", fields: { a: 1, b: [1, { c: "]}" }] } },
      { index: 1, line: 3, id: "2", fields: { a: null } },
    ]);
  });

  it("makes a non-object element an error record and goes on", async () => {
    const records = await json('[1, "s", null, [1], true, {"ok": true}]');
    expect(records.map((r) => r.error?.message ?? r.fields)).toEqual([
      "line 1: expected a JSON object, got a number",
      "line 1: expected a JSON object, got a string",
      "line 1: expected a JSON object, got null",
      "line 1: expected a JSON object, got an array",
      "line 1: expected a JSON object, got a boolean",
      { ok: true },
    ]);
    expect(records.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("has no records for an empty array, an empty file or only whitespace", async () => {
    expect(await json("[]")).toEqual([]);
    expect(await json(" [ \n ] \n")).toEqual([]);
    expect(await json("")).toEqual([]);
    expect(await json("\uFEFF \n")).toEqual([]);
  });

  it("reads a file that starts with { as JSONL", async () => {
    const records = await json('{"a":1}\n{"a":2}\n');
    expect(records.map((r) => r.fields)).toEqual([{ a: 1 }, { a: 2 }]);
  });

  it("throws a SourceError when the file is not an array", async () => {
    expect((await jsonError('  "text"')).message).toBe(
      't.json: line 1, column 3: invalid JSON: expected \'[\' but found "\\""',
    );
  });

  it("throws a SourceError naming line and column for invalid JSON", async () => {
    const error = await jsonError('[\n {"a": 1},\n {"a": }\n]');
    expect(error.message).toMatch(
      /^t\.json: line 3, column 2: invalid JSON in the element that starts here: Unexpected token '}'/,
    );
    expect([error.line, error.column]).toEqual([3, 2]);

    expect((await jsonError('[{"a":\n1,}]')).message).toMatch(/^t\.json: line 2, column 3: invalid JSON/);
    expect((await jsonError('[{"a": 1},]')).message).toBe(
      't.json: line 1, column 11: invalid JSON: expected a value but found "]"',
    );
    expect((await jsonError('[{"a": [1}]')).message).toBe(
      "t.json: line 1, column 10: invalid JSON: expected ']' but found \"}\"",
    );
    expect((await jsonError('[{"a": 1}] x')).message).toBe(
      't.json: line 1, column 12: invalid JSON: unexpected "x" after the end of the array',
    );
    expect((await jsonError('[{"a": 1},\n{"b": 2}')).message).toBe(
      "t.json: line 2: unexpected end of file: the array opened on line 1 is not closed",
    );
    expect((await jsonError("[NaN]")).message).toMatch(/^t\.json: line 1, column 2: invalid JSON/);
  });

  it("yields the records before an error, then throws", async () => {
    const seen: SourceRecord[] = [];
    const run = async () => {
      for await (const r of parseRecords([Buffer.from('[{"a":1}, {"a":2}, {oops}]')], { format: "json" })) seen.push(r);
    };
    await expect(run()).rejects.toThrow(/line 1, column 21/);
    expect(seen).toHaveLength(2);
  });

  it("makes a record with an oversized field an error record", async () => {
    const big = "x".repeat(2000);
    const records = await json(`[{"a": "${big}"}, {"a": {"b": "${big}"}}, {"a": "ok"}]`, {
      maxFieldBytes: 1000,
    });
    expect(records.map((r) => r.error?.message ?? r.fields)).toEqual([
      'line 1: field "a" is 2000 bytes, limit 1000',
      'line 1: field "a" is 2008 bytes, limit 1000',
      { a: "ok" },
    ]);
  });

  it("makes an oversized element an error record without keeping it", async () => {
    const records = await json(`[{"a": "${"x".repeat(200)}"}, {"a": 1}]`, { maxRecordBytes: 100 });
    expect(records.map((r) => r.error?.message ?? r.fields)).toEqual([
      "line 1: record is 209 bytes, limit 100",
      { a: 1 },
    ]);
  });

  it("rejects an id field that is not a string or number, per record", async () => {
    const records = await json('[{"id": true}, {"id": "k"}, {"id": 3}, {"id": ""}]', { idField: "id" });
    expect(records.map((r) => r.error?.message ?? r.id)).toEqual([
      'line 1: id field "id" must be a string or a number, got a boolean',
      "k",
      "3",
      "4",
    ]);
  });

  it("gives the same records whatever the chunk boundaries", async () => {
    const text = '\uFEFF[\r\n {"s": "a\\"b\\\\", "é": "€😀", "n": [1, {"x": "}"}]},\n 7,\n {"k": "\\u00e9"}\n]';
    const whole = await json(text);
    expect(whole.map((r) => r.error?.message ?? r.fields)).toEqual([
      { s: 'a"b\\', é: "€😀", n: [1, { x: "}" }] },
      "line 3: expected a JSON object, got a number",
      { k: "é" },
    ]);
    for (const size of [1, 2, 3, 5, 7]) expect(await json(text, {}, size)).toEqual(whole);
  });
});
