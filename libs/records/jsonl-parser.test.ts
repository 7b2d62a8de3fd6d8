import { describe, expect, it } from "vitest";
import { parseText } from "../../test/helpers/records.js";
import type { SourceRecord } from "./index.js";

async function jsonl(
  text: string,
  options: { maxFieldBytes?: number; maxRecordBytes?: number } = {},
  chunkBytes = Number.POSITIVE_INFINITY,
): Promise<SourceRecord[]> {
  return parseText(text, { format: "jsonl", ...options }, chunkBytes);
}

describe("JSONL", () => {
  it("makes each line a record and skips blank lines", async () => {
    const records = await jsonl('{"a":1}\n\n  \r\n{"a":"x"}\r\n{"a":[1]}');
    expect(records).toEqual([
      { index: 0, line: 1, id: "1", fields: { a: 1 } },
      { index: 1, line: 4, id: "2", fields: { a: "x" } },
      { index: 2, line: 5, id: "3", fields: { a: [1] } },
    ]);
  });

  it("makes a line that does not parse an error record with the parser's message", async () => {
    const records = await jsonl('{"a":1}\n{"a":}\n{"a":NaN}\n{"a":Infinity}\n[1]\n{"a":3}\n');
    expect(records.map((r) => [r.index, r.line, r.error?.message ?? r.fields])).toEqual([
      [0, 1, { a: 1 }],
      [1, 2, `line 2: invalid JSON: ${parseMessage('{"a":}')}`],
      [2, 3, `line 3: invalid JSON: ${parseMessage('{"a":NaN}')}`],
      [3, 4, `line 4: invalid JSON: ${parseMessage('{"a":Infinity}')}`],
      [4, 5, "line 5: expected a JSON object, got an array"],
      [5, 6, { a: 3 }],
    ]);
  });

  it("has no records for an empty file", async () => {
    expect(await jsonl("")).toEqual([]);
    expect(await jsonl("\n\n")).toEqual([]);
  });

  it("makes an oversized line or field an error record", async () => {
    const records = await jsonl(`{"a":"${"x".repeat(300)}"}\n{"b":"${"y".repeat(60)}"}\n{"c":1}\n`, {
      maxRecordBytes: 200,
      maxFieldBytes: 50,
    });
    expect(records.map((r) => r.error?.message ?? r.fields)).toEqual([
      "line 1: record is 308 bytes, limit 200",
      'line 2: field "b" is 60 bytes, limit 50',
      { c: 1 },
    ]);
  });

  it("gives the same records whatever the chunk boundaries", async () => {
    const text = '{"é":"😀"}\r\n\r\n{"a":\n{"b":"\\n"}';
    const whole = await jsonl(text);
    expect(whole).toHaveLength(3);
    expect(whole[2]?.fields).toEqual({ b: "\n" });
    for (const size of [1, 2, 3]) expect(await jsonl(text, {}, size)).toEqual(whole);
  });
});

function parseMessage(text: string): string {
  try {
    JSON.parse(text);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("expected a parse error");
}
