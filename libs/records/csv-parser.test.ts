import { describe, expect, it } from "vitest";
import { parseText } from "../../test/helpers/records.js";
import { isSourceError, type SourceRecord } from "./index.js";

async function csv(
  text: string | Uint8Array,
  options: { idField?: string; maxFieldBytes?: number; maxRecordBytes?: number } = {},
): Promise<SourceRecord[]> {
  return parseText(text, { format: "csv", source: "t.csv", ...options });
}

/** Parses `text` fed one byte at a time, to exercise every chunk boundary. */
async function csvByteByByte(text: string): Promise<SourceRecord[]> {
  return parseText(text, { format: "csv" }, 1);
}

describe("CSV", () => {
  it("names fields by the header and keeps values as strings", async () => {
    const records = await csv("name,bill,note\nAdelie,39.1,\nGentoo,,x\n");
    expect(records).toEqual([
      { index: 0, line: 2, id: "1", fields: { name: "Adelie", bill: "39.1", note: "" } },
      { index: 1, line: 3, id: "2", fields: { name: "Gentoo", bill: "", note: "x" } },
    ]);
  });

  it("reads quoted fields with commas, doubled quotes and line breaks, keeping line numbers", async () => {
    const text = 'a,b\n"x, y","say ""hi"""\n"multi\nline\nvalue",2\nlast,3\n';
    const records = await csv(text);
    expect(records.map((r) => [r.line, r.fields])).toEqual([
      [2, { a: "x, y", b: 'say "hi"' }],
      [3, { a: "multi\nline\nvalue", b: "2" }],
      [6, { a: "last", b: "3" }],
    ]);
  });

  it("handles CRLF like LF, including inside quotes and after a quoted field", async () => {
    const records = await csv('a,b\r\n1,"2"\r\n"x\r\ny",z\r\n');
    expect(records.map((r) => [r.line, r.fields])).toEqual([
      [2, { a: "1", b: "2" }],
      [3, { a: "x\r\ny", b: "z" }],
    ]);
  });

  it("strips a UTF-8 byte-order mark from the header", async () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const records = await csv(Buffer.concat([bom, Buffer.from("id,v\n7,8\n")]), { idField: "id" });
    expect(records).toEqual([{ index: 0, line: 2, id: "7", fields: { id: "7", v: "8" } }]);
  });

  it("ignores a trailing empty line and skips blank lines", async () => {
    const records = await csv("\n\na,b\n1,2\n\n   \n3,4\n\n");
    expect(records.map((r) => [r.index, r.line, r.fields])).toEqual([
      [0, 4, { a: "1", b: "2" }],
      [1, 7, { a: "3", b: "4" }],
    ]);
  });

  it("reads a last row without a line end", async () => {
    expect((await csv("a,b\n1,\r")).map((r) => r.fields)).toEqual([{ a: "1", b: "" }]);
    expect((await csv("a,b\n1,")).map((r) => r.fields)).toEqual([{ a: "1", b: "" }]);
  });

  it("makes a row with more or fewer fields an error record and goes on", async () => {
    const records = await csv("a,b\n1,2\n1,2,3\n1\n4,5\n");
    expect(records.map((r) => [r.index, r.line, r.error?.message ?? r.fields])).toEqual([
      [0, 2, { a: "1", b: "2" }],
      [1, 3, "line 3: expected 2 fields as in the header, got 3"],
      [2, 4, "line 4: expected 2 fields as in the header, got 1"],
      [3, 5, { a: "4", b: "5" }],
    ]);
    expect(records[1]?.error?.code).toBe("invalid_argument");
    expect(records[1]?.id).toBe("2");
  });

  it("makes an unterminated quote at the end of the file an error record", async () => {
    const records = await csv('a,b\n1,2\n3,"open\nmore\n');
    expect(records).toHaveLength(2);
    expect(records[1]).toMatchObject({ index: 1, line: 3 });
    expect(records[1]?.error?.message).toBe("line 3: unterminated quoted field (the quote opens on line 3)");
  });

  it("makes text after a closing quote an error record, and the row still ends right", async () => {
    const records = await csv('a,b\n"x"y,1\n2,3\n');
    expect(records[0]?.error?.message).toBe("line 2: unexpected text after the closing quote of field a");
    expect(records[1]).toMatchObject({ line: 3, fields: { a: "2", b: "3" } });
  });

  it("keeps a quote inside an unquoted field as a character", async () => {
    expect((await csv("h,w\n5'11\",x\n"))[0]?.fields).toEqual({ h: "5'11\"", w: "x" });
  });

  it("does not guess types", async () => {
    const fields = (await csv("a,b,c,d\n,39.1,true,null\n"))[0]?.fields;
    expect(fields).toEqual({ a: "", b: "39.1", c: "true", d: "null" });
  });

  it("throws a SourceError for duplicate header names", async () => {
    const error = await csv("a,b,a\n1,2,3\n").catch((e: unknown) => e);
    expect(isSourceError(error)).toBe(true);
    expect((error as Error).message).toBe('t.csv: line 1: duplicate header name "a" (columns 1 and 3)');
  });

  it("has no records for an empty file, a BOM alone, or only whitespace", async () => {
    expect(await csv("")).toEqual([]);
    expect(await csv(Buffer.from([0xef, 0xbb, 0xbf]))).toEqual([]);
    expect(await csv(" \n\r\n\t\n")).toEqual([]);
    expect(await csv("a,b\n")).toEqual([]);
  });

  it("takes ids from idField, else the record number", async () => {
    const records = await csv("id,v\nk1,1\n,2\nk3,3\n", { idField: "id" });
    expect(records.map((r) => r.id)).toEqual(["k1", "2", "k3"]);
  });

  it("makes a record with an oversized field an error record, exact size in the message", async () => {
    const big = "é".repeat(600); // 1200 bytes
    const records = await csv(`a,b\n1,${big}\n2,"${big}"\n3,ok\n`, { maxFieldBytes: 1000 });
    expect(records.map((r) => r.error?.message ?? r.fields)).toEqual([
      'line 2: field "b" is 1200 bytes, limit 1000',
      'line 3: field "b" is 1200 bytes, limit 1000',
      { a: "3", b: "ok" },
    ]);
  });

  it("makes an oversized row an error record", async () => {
    const records = await csv(`a,b\n${"x".repeat(60)},${"y".repeat(60)}\n1,2\n`, {
      maxRecordBytes: 100,
    });
    expect(records.map((r) => r.error?.message ?? r.fields)).toEqual([
      "line 2: record is 121 bytes, limit 100",
      { a: "1", b: "2" },
    ]);
  });

  it("keeps a header named __proto__ as an ordinary field", async () => {
    const fields = (await csv("__proto__,b\n1,2\n"))[0]?.fields;
    expect(Object.keys(fields ?? {})).toEqual(["__proto__", "b"]);
    expect(Object.getPrototypeOf(fields)).toBe(Object.prototype);
  });

  it("gives the same records whatever the chunk boundaries", async () => {
    const text = '\uFEFFname,"qu""ote",x\r\n"a\r\nb","é€😀",\r\n\r\nplain,"",z\n1,2\n"x"y,1,2\n"tail,open';
    expect(await csvByteByByte(text)).toEqual(await csv(text));
    expect((await csv(text)).map((r) => r.error?.message ?? r.fields)).toEqual([
      { name: "a\r\nb", 'qu"ote': "é€😀", x: "" },
      { name: "plain", 'qu"ote': "", x: "z" },
      "line 6: expected 3 fields as in the header, got 2",
      "line 7: unexpected text after the closing quote of field name",
      "line 8: unterminated quoted field (the quote opens on line 8)",
    ]);
  });
});
