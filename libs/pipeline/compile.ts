import { rowsToColumns } from "../batch/index.js";
import type { Column } from "../gen/sluice/v1/batch_pb.js";
import { type FieldSpec, type PipelineSpec, PipelineSpecError } from "./spec.js";
import {
  type Decoded,
  type DecodeStatus,
  decodeBoolean,
  decodeCategory,
  decodeNumber,
  INVALID,
  KIND_BOOL,
  KIND_MISSING,
  KIND_NUMBER,
  KIND_STRING,
  type Markers,
  MISSING,
  makeMarkers,
  newDecoded,
  quote,
} from "./values.js";

/** Code of every per-record error the pipeline reports (a Connect/gRPC code name). */
export const RECORD_ERROR_CODE = "invalid_argument";

/** A record that could not be cleaned. */
export interface RecordError {
  /** Index of the record in the input batch. */
  row: number;
  /** `invalid_argument`. */
  code: string;
  /** What is wrong, naming the field and (cut to about 60 characters) the value. */
  message: string;
  /** Input field name (the field's `source`). */
  field: string;
}

/** Output of one transform: every input record is in exactly one of `rows` or `errors`. */
export interface TransformResult {
  /** `rows.length × width` features, row-major. */
  features: Float32Array;
  /** Input record index of each output row, ascending. */
  rows: number[];
  /** One error per rejected record, by ascending `row`. */
  errors: RecordError[];
}

/** A pipeline spec made ready to transform batches. */
export interface CompiledPipeline {
  /** The spec it was compiled from. */
  readonly spec: PipelineSpec;
  /** Output feature names, in tensor column order. */
  readonly featureNames: string[];
  /** Number of features per record (`featureNames.length`). */
  readonly width: number;
  /**
   * Cleans and encodes `count` records given as columns (columns the spec
   * does not name are ignored; a named one the batch lacks reads as missing).
   * One synchronous pass per field over the batch. Never throws for bad
   * records: they come back in `errors`.
   */
  transform(columns: readonly Column[], count: number): TransformResult;
  /** `transform(rowsToColumns(rows), rows.length)`: the same code path for in-process callers. */
  transformRows(rows: ReadonlyArray<Readonly<Record<string, unknown>>>): TransformResult;
}

const EMPTY_KINDS = new Uint8Array(0);
const NO_NUMBERS: readonly number[] = [];
const NO_STRINGS: readonly string[] = [];

type Decoder = (kind: number, n: number, s: string, m: Markers, out: Decoded) => DecodeStatus;

interface CompiledField {
  readonly spec: FieldSpec;
  readonly markers: Markers;
  readonly decode: Decoder;
  readonly hasFill: boolean;
  /** Fill of number and boolean fields. */
  readonly fillNumber: number;
  /** Fill of category fields. */
  readonly fillKey: string;
  /** Output position per feature of the field (one, or one per category); -1 when not output. */
  readonly offsets: Int32Array;
  readonly categoryIndex: ReadonlyMap<string, number>;
  readonly clipMin: number;
  readonly clipMax: number;
  /** 0 when there is no outlier rule. */
  readonly outlierZ: number;
  readonly outlierClip: boolean;
  readonly mean: number;
  readonly std: number;
  /** Scaling: (v - shift) / divisor; shift 0 and divisor 1 without scaling. */
  readonly shift: number;
  readonly divisor: number;
}

function needStat(spec: FieldSpec, i: number, stat: "mean" | "std" | "min" | "max" | "median", why: string): number {
  const v = spec.stats?.[stat];
  if (v === undefined) {
    throw new PipelineSpecError(
      `fields[${i}].stats.${stat}`,
      `field "${spec.name}" needs fitted stats.${stat} for ${why}; fit the spec first (sluice fit, or fitPipeline)`,
    );
  }
  return v;
}

function needMostFrequent(spec: FieldSpec, i: number): number | string | boolean {
  const v = spec.stats?.mostFrequent;
  if (v === undefined) {
    throw new PipelineSpecError(
      `fields[${i}].stats.mostFrequent`,
      `field "${spec.name}" needs fitted stats.mostFrequent for fill strategy most_frequent; fit the spec first (sluice fit, or fitPipeline)`,
    );
  }
  return v;
}

/** Default feature names of a field, in order. */
function fieldFeatures(field: FieldSpec, categories: readonly string[]): string[] {
  return field.type === "category" ? categories.map((c) => `${field.name}=${c}`) : [field.name];
}

function compileField(spec: PipelineSpec, i: number, position: ReadonlyMap<string, number>): CompiledField {
  const f = spec.fields[i] as FieldSpec;
  const markers = makeMarkers(spec.missing, f.missing);
  const categories = f.categories ?? [];
  const names = fieldFeatures(f, categories);
  const offsets = new Int32Array(names.length);
  for (let k = 0; k < names.length; k++) offsets[k] = position.get(names[k] as string) ?? -1;
  const categoryIndex = new Map<string, number>();
  for (let k = 0; k < categories.length; k++) categoryIndex.set(categories[k] as string, k);

  let fillNumber = 0;
  let fillKey = "";
  const fill = f.fill;
  const p = `fields[${i}]`;
  if (fill !== undefined) {
    const v =
      fill.strategy === "constant"
        ? fill.value
        : fill.strategy === "most_frequent"
          ? needMostFrequent(f, i)
          : needStat(f, i, fill.strategy, `fill strategy ${fill.strategy}`);
    const out = newDecoded();
    const fillMarkers = makeMarkers([], []);
    let status: DecodeStatus;
    switch (f.type) {
      case "number":
        status = typeof v === "number" ? decodeNumber(KIND_NUMBER, v, "", fillMarkers, out) : INVALID;
        fillNumber = out.num;
        break;
      case "boolean":
        status =
          typeof v === "boolean"
            ? decodeBoolean(KIND_BOOL, v ? 1 : 0, "", fillMarkers, out)
            : decodeBoolean(typeof v === "number" ? KIND_NUMBER : KIND_STRING, Number(v), String(v), fillMarkers, out);
        fillNumber = out.num;
        break;
      case "category":
        status = decodeCategory(KIND_STRING, 0, String(v), fillMarkers, out);
        fillKey = out.key;
        if (f.unknown === "error" && !categoryIndex.has(fillKey) && f.categories !== undefined) {
          throw new PipelineSpecError(
            `${p}.fill`,
            `fill value ${quote(fillKey)} of field "${f.name}" is not one of its categories (${categories.join(", ")})`,
          );
        }
        break;
    }
    if (status !== 0) {
      throw new PipelineSpecError(
        `${p}.fill`,
        `fill value ${quote(String(v))} does not fit ${f.type} field "${f.name}"`,
      );
    }
  }

  let mean = 0;
  let std = 1;
  let outlierZ = 0;
  if (f.outliers !== undefined) {
    mean = needStat(f, i, "mean", "outlier detection");
    std = needStat(f, i, "std", "outlier detection");
    outlierZ = f.outliers.zscore;
  }
  let shift = 0;
  let divisor = 1;
  if (f.scale === "zscore") {
    shift = needStat(f, i, "mean", "zscore scaling");
    const s = needStat(f, i, "std", "zscore scaling");
    divisor = s > 0 ? s : 1;
  } else if (f.scale === "minmax") {
    shift = needStat(f, i, "min", "minmax scaling");
    const range = needStat(f, i, "max", "minmax scaling") - shift;
    divisor = range > 0 ? range : 1;
  }
  return {
    spec: f,
    markers,
    decode: f.type === "number" ? decodeNumber : f.type === "boolean" ? decodeBoolean : decodeCategory,
    hasFill: fill !== undefined,
    fillNumber,
    fillKey,
    offsets,
    categoryIndex,
    clipMin: f.clip?.min ?? -Infinity,
    clipMax: f.clip?.max ?? Infinity,
    outlierZ,
    outlierClip: f.outliers?.action === "clip",
    mean,
    std,
    shift,
    divisor,
  };
}

/**
 * Compiles a (fitted) spec: resolves the feature order, builds the
 * category → index maps and the missing-marker sets, and checks that every
 * statistic the rules need is there.
 *
 * @throws PipelineSpecError when a category field has no categories, a rule
 * needs a statistic that is not fitted (path `fields[i].stats.<name>`), a fill
 * value does not fit its field, or `features` names a feature no field makes
 * (path `features[i]`).
 */
export function compilePipeline(spec: PipelineSpec): CompiledPipeline {
  const defaults: string[] = [];
  spec.fields.forEach((f, i) => {
    if (f.type === "category" && (f.categories === undefined || f.categories.length === 0)) {
      throw new PipelineSpecError(
        `fields[${i}].categories`,
        `category field "${f.name}" has no categories; list them or fit the spec first (sluice fit, or fitPipeline)`,
      );
    }
    defaults.push(...fieldFeatures(f, f.categories ?? []));
  });
  const known = new Set<string>();
  for (const name of defaults) {
    if (known.has(name)) {
      throw new PipelineSpecError("fields", `two fields make the feature name ${JSON.stringify(name)}`);
    }
    known.add(name);
  }
  const featureNames = spec.features ?? defaults;
  const position = new Map<string, number>();
  featureNames.forEach((name, k) => {
    if (!known.has(name)) {
      throw new PipelineSpecError(`features[${k}]`, `${JSON.stringify(name)} is not a feature of any field`);
    }
    position.set(name, k);
  });
  const fields = spec.fields.map((_, i) => compileField(spec, i, position));
  const width = featureNames.length;

  const transform = (columns: readonly Column[], count: number): TransformResult => {
    const bySource = new Map<string, Column>();
    for (const c of columns) {
      if (!bySource.has(c.name)) bySource.set(c.name, c);
    }
    const features = new Float32Array(count * width);
    const failed: Array<RecordError | undefined> = new Array(count);
    let failures = 0;
    for (const field of fields) {
      failures += runField(field, bySource.get(field.spec.source), count, width, features, failed);
    }
    const rows: number[] = [];
    const errors: RecordError[] = [];
    if (failures === 0) {
      for (let r = 0; r < count; r++) rows.push(r);
      return { features, rows, errors };
    }
    let w = 0;
    for (let r = 0; r < count; r++) {
      const e = failed[r];
      if (e !== undefined) {
        errors.push(e);
        continue;
      }
      if (w !== r) features.copyWithin(w * width, r * width, (r + 1) * width);
      rows.push(r);
      w++;
    }
    return { features: features.slice(0, w * width), rows, errors };
  };

  return {
    spec,
    featureNames: [...featureNames],
    width,
    transform,
    transformRows: (rows) => transform(rowsToColumns(rows), rows.length),
  };
}

/** Runs one field over the batch; returns how many records it newly rejected. */
function runField(
  f: CompiledField,
  column: Column | undefined,
  count: number,
  width: number,
  features: Float32Array,
  failed: Array<RecordError | undefined>,
): number {
  const kinds = column?.kinds ?? EMPTY_KINDS;
  const numbers = column?.numbers ?? NO_NUMBERS;
  const strings = column?.strings ?? NO_STRINGS;
  const nKinds = kinds.length;
  const { markers, decode, offsets, spec } = f;
  const source = spec.source;
  const isCategory = spec.type === "category";
  const isNumber = spec.type === "number";
  const scaled = f.shift !== 0 || f.divisor !== 1;
  const offset = offsets[0] ?? -1;
  const out = newDecoded();
  let rejected = 0;
  let s = 0;
  for (let r = 0; r < count; r++) {
    const kind = r < nKinds ? (kinds[r] as number) : KIND_MISSING;
    // The string cursor moves for every STRING entry, rejected records too.
    const text = kind === KIND_STRING ? (strings[s++] ?? "") : "";
    if (failed[r] !== undefined) continue;
    let status = decode(kind, numbers[r] ?? 0, text, markers, out);
    let message = "";
    if (status === MISSING) {
      if (spec.required) {
        message = `required field "${source}" is missing`;
      } else if (!f.hasFill) {
        message = `field "${source}" is missing and has no fill rule`;
      } else {
        out.num = f.fillNumber;
        out.key = f.fillKey;
        status = 0;
      }
    } else if (status === INVALID) {
      message = `field "${source}": ${out.detail}`;
    }
    if (status === 0 && isCategory) {
      const k = f.categoryIndex.get(out.key);
      if (k !== undefined) {
        const o = offsets[k] as number;
        if (o >= 0) features[r * width + o] = 1;
      } else if (spec.unknown !== "ignore") {
        message = `field "${source}": unknown category ${quote(out.key)}`;
      }
    } else if (status === 0) {
      let v = out.num;
      if (isNumber) {
        if (v < f.clipMin) v = f.clipMin;
        else if (v > f.clipMax) v = f.clipMax;
        if (f.outlierZ > 0) {
          const limit = f.outlierZ * f.std;
          const d = v - f.mean;
          if (d > limit || d < -limit) {
            if (f.outlierClip) v = d > 0 ? f.mean + limit : f.mean - limit;
            else
              message = `field "${source}": ${v} is an outlier (more than ${f.outlierZ} standard deviations from the mean ${f.mean})`;
          }
        }
        if (scaled) v = (v - f.shift) / f.divisor;
      }
      if (offset >= 0) features[r * width + offset] = v;
    }
    if (message !== "") {
      failed[r] = { row: r, code: RECORD_ERROR_CODE, message, field: source };
      rejected++;
    }
  }
  return rejected;
}
