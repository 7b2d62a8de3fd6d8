import { type ParseRecordsOptions, parseRecords, type SourceRecord } from "../../libs/records/index.js";

/**
 * Parses `text` as if it came in chunks of `chunkBytes` (1 exercises every chunk boundary;
 * the default, one chunk) and collects every record.
 */
export async function parseText(
  text: string | Uint8Array,
  options: ParseRecordsOptions,
  chunkBytes = Number.POSITIVE_INFINITY,
): Promise<SourceRecord[]> {
  const bytes = typeof text === "string" ? Buffer.from(text) : text;
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += Math.min(chunkBytes, bytes.length))
    chunks.push(bytes.subarray(i, i + chunkBytes));
  const out: SourceRecord[] = [];
  for await (const r of parseRecords(chunks, options)) out.push(r);
  return out;
}
