import { rowsToColumns } from "../batch/index.js";
import type { Column } from "../gen/sluice/v1/batch_pb.js";
import type { FieldSpec, FieldStats, PipelineSpec } from "./spec.js";
import {
  DECODED,
  type Decoded,
  decodeBoolean,
  decodeCategory,
  decodeNumber,
  KIND_MISSING,
  KIND_STRING,
  type Markers,
  makeMarkers,
  newDecoded,
} from "./values.js";

/**
 * Walks the decoded, non-missing, valid entries of one column in record
 * order; the same decoding that `transform` uses.
 */
function forEachValue(
  column: Column | undefined,
  count: number,
  markers: Markers,
  decode: typeof decodeNumber,
  visit: (d: Decoded) => void,
): void {
  if (column === undefined) return;
  const { kinds, numbers, strings } = column;
  const out = newDecoded();
  let s = 0;
  for (let r = 0; r < count; r++) {
    const kind = r < kinds.length ? (kinds[r] as number) : KIND_MISSING;
    const text = kind === KIND_STRING ? (strings[s++] ?? "") : "";
    if (decode(kind, numbers[r] ?? 0, text, markers, out) === DECODED) visit(out);
  }
}

function numberStats(values: Float64Array): FieldStats {
  const n = values.length;
  if (n === 0) return {};
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i] as number;
  const mean = sum / n;
  let sq = 0;
  for (let i = 0; i < n; i++) {
    const d = (values[i] as number) - mean;
    sq += d * d;
  }
  const sorted = values.slice().sort();
  const mid = n >> 1;
  const median = n % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  // The longest run in sorted order; the first (smallest) value wins ties.
  let mostFrequent = sorted[0] as number;
  let best = 0;
  for (let i = 0; i < n; ) {
    let j = i + 1;
    while (j < n && sorted[j] === sorted[i]) j++;
    if (j - i > best) {
      best = j - i;
      mostFrequent = sorted[i] as number;
    }
    i = j;
  }
  return {
    mean,
    std: Math.sqrt(sq / n),
    min: sorted[0] as number,
    max: sorted[n - 1] as number,
    median,
    mostFrequent,
  };
}

/** Sorted distinct keys and the most frequent one (smallest on ties). */
function countKeys(counts: Map<string, number>): { keys: string[]; mostFrequent: string | undefined } {
  const keys = [...counts.keys()].sort();
  let mostFrequent: string | undefined;
  let best = 0;
  for (const k of keys) {
    const c = counts.get(k) as number;
    if (c > best) {
      best = c;
      mostFrequent = k;
    }
  }
  return { keys, mostFrequent };
}

function fitField(spec: PipelineSpec, field: FieldSpec, column: Column | undefined, count: number): FieldSpec {
  const markers = makeMarkers(spec.missing, field.missing);
  const fitted: FieldSpec = structuredClone(field);
  delete fitted.stats;
  switch (field.type) {
    case "number": {
      const values = new Float64Array(count);
      let n = 0;
      forEachValue(column, count, markers, decodeNumber, (d) => {
        values[n++] = d.num;
      });
      const stats = numberStats(values.subarray(0, n));
      if (n > 0) fitted.stats = stats;
      break;
    }
    case "category": {
      const counts = new Map<string, number>();
      forEachValue(column, count, markers, decodeCategory, (d) => {
        counts.set(d.key, (counts.get(d.key) ?? 0) + 1);
      });
      const { keys, mostFrequent } = countKeys(counts);
      if (fitted.categories === undefined && keys.length > 0) fitted.categories = keys;
      if (mostFrequent !== undefined) fitted.stats = { mostFrequent };
      break;
    }
    case "boolean": {
      let trues = 0;
      let total = 0;
      forEachValue(column, count, markers, decodeBoolean, (d) => {
        trues += d.num;
        total++;
      });
      if (total > 0) fitted.stats = { mean: trues / total, mostFrequent: trues > total - trues };
      break;
    }
  }
  return fitted;
}

/**
 * Fits a spec to data: returns a new spec whose fields carry `stats` computed
 * from `rows` (number fields: mean, population std, min, max, median and most
 * frequent value; category fields: most frequent category; boolean fields:
 * fraction true as `mean` and most frequent value), whose category fields
 * without `categories` get the sorted distinct values seen, and whose label
 * without `classes` gets the sorted distinct labels seen.
 *
 * Values are read exactly as `transform` reads them: missing markers and
 * invalid values are ignored, numeric strings count as numbers. Statistics
 * are of the raw values, before fill and clip. A field with no valid value
 * gets no stats (compiling a rule that needs them then throws). `spec` is not
 * changed.
 */
export function fitPipeline(spec: PipelineSpec, rows: ReadonlyArray<Readonly<Record<string, unknown>>>): PipelineSpec {
  const columns = rowsToColumns(rows);
  const count = rows.length;
  const bySource = new Map<string, Column>();
  for (const c of columns) bySource.set(c.name, c);
  const fitted: PipelineSpec = structuredClone(spec);
  fitted.fields = spec.fields.map((f) => fitField(spec, f, bySource.get(f.source), count));
  if (fitted.label !== undefined && fitted.label.classes === undefined) {
    const counts = new Map<string, number>();
    forEachValue(bySource.get(fitted.label.field), count, makeMarkers(spec.missing, []), decodeCategory, (d) => {
      counts.set(d.key, 1);
    });
    const { keys } = countKeys(counts);
    if (keys.length > 0) fitted.label.classes = keys;
  }
  return fitted;
}
