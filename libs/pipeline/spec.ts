import { parse as parseYaml, stringify as stringifyYaml } from "yaml";

/** Type of a pipeline field: what values it accepts and how it is encoded. */
export type FieldType = "number" | "category" | "boolean";

/** How a missing value is replaced. */
export type FillStrategy = "constant" | "mean" | "median" | "most_frequent";

/** Scaling of a number field, with fitted statistics. */
export type ScaleKind = "none" | "zscore" | "minmax";

/** Rule for a missing value of a field. */
export interface FillSpec {
  /** `mean` and `median` only apply to number fields. */
  strategy: FillStrategy;
  /** The value for `constant`: a number, a category string or a boolean, by field type. */
  value?: number | string | boolean;
}

/** Bounds a number field is clipped to after the fill; either may be left out. */
export interface ClipSpec {
  min?: number;
  max?: number;
}

/** Outlier rule of a number field; needs fitted `mean` and `std`. */
export interface OutlierSpec {
  /** A value whose |z-score| exceeds this is an outlier. Positive. */
  zscore: number;
  /** `clip` pulls it back to mean ± zscore·std; `error` rejects the record. Default `error`. */
  action: "clip" | "error";
}

/** Statistics of a field, written by {@link fitPipeline} from data. */
export interface FieldStats {
  mean?: number;
  /** Population standard deviation. */
  std?: number;
  min?: number;
  max?: number;
  median?: number;
  /** The most frequent value (the smallest one on ties): number, category or boolean by field type. */
  mostFrequent?: number | string | boolean;
}

/** One input field of a pipeline and the features it makes. */
export interface FieldSpec {
  /** Feature base name. */
  name: string;
  /** Input field (column) name; defaults to `name`. */
  source: string;
  type: FieldType;
  /** When true, a missing value is a per-record error even with a fill rule. Default false. */
  required: boolean;
  /** Extra missing markers of this field, on top of the global ones. Default none. */
  missing: string[];
  fill?: FillSpec;
  /** Number fields only. */
  clip?: ClipSpec;
  /** Number fields only. */
  outliers?: OutlierSpec;
  /** Number fields only; default `none`. */
  scale: ScaleKind;
  /** Category fields: one-hot categories, in output order; fitted when absent. */
  categories?: string[];
  /** Category fields: `error` (default) rejects an unknown category, `ignore` encodes it as all zeros. */
  unknown: "error" | "ignore";
  stats?: FieldStats;
}

/** The label of a training set. */
export interface LabelSpec {
  /** Input field holding the label. */
  field: string;
  /** Class names; a class's index is its position. Fitted (sorted) when absent. */
  classes?: string[];
}

/**
 * A validated pipeline spec with every default filled in, as
 * {@link parsePipelineSpec} returns it.
 */
export interface PipelineSpec {
  name: string;
  /** Model name in the model repository. */
  model: string;
  modelVersion?: string;
  /** Model input tensor name; default `features`. */
  input: string;
  /** Global missing markers, compared with trimmed strings; default {@link DEFAULT_MISSING_MARKERS}. */
  missing: string[];
  label?: LabelSpec;
  fields: FieldSpec[];
  /** Explicit order of output feature names; default: the fields' features in field order. */
  features?: string[];
}

/** Missing markers used when a spec does not set `missing`. */
export const DEFAULT_MISSING_MARKERS: readonly string[] = Object.freeze([
  "",
  "NA",
  "N/A",
  "null",
  "NULL",
  "NaN",
  "nan",
  "None",
]);

/**
 * A pipeline spec that is not valid. `path` locates the bad part, e.g.
 * `fields[2].fill.strategy` (empty for the spec as a whole); the message starts
 * with the path and says what is allowed.
 */
export class PipelineSpecError extends Error {
  override name = "PipelineSpecError";
  /** Location of the problem in the spec, e.g. `fields[2].fill.strategy`. */
  readonly path: string;
  /** The message without the path prefix. */
  readonly reason: string;

  constructor(path: string, reason: string) {
    super(path === "" ? reason : `${path}: ${reason}`);
    this.path = path;
    this.reason = reason;
  }
}

/** Whether `e` is a {@link PipelineSpecError}. */
export function isPipelineSpecError(e: unknown): e is PipelineSpecError {
  return e instanceof PipelineSpecError;
}

type Obj = Record<string, unknown>;

const TOP_KEYS = ["name", "model", "modelVersion", "input", "missing", "label", "fields", "features"];
const FIELD_KEYS = [
  "name",
  "source",
  "type",
  "required",
  "missing",
  "fill",
  "clip",
  "outliers",
  "scale",
  "categories",
  "unknown",
  "stats",
];
const LABEL_KEYS = ["field", "classes"];
const FILL_KEYS = ["strategy", "value"];
const CLIP_KEYS = ["min", "max"];
const OUTLIER_KEYS = ["zscore", "action"];
const STATS_KEYS = ["mean", "std", "min", "max", "median", "mostFrequent"];
const FIELD_TYPES: readonly FieldType[] = ["number", "category", "boolean"];
const FILL_STRATEGIES: readonly FillStrategy[] = ["constant", "mean", "median", "most_frequent"];
const SCALES: readonly ScaleKind[] = ["none", "zscore", "minmax"];

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "string") {
    return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  }
  if (typeof v === "object") return "an object";
  return String(v);
}

function object(v: unknown, path: string, allowed: readonly string[]): Obj {
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new PipelineSpecError(path, `expected an object with keys ${allowed.join(", ")}; got ${describe(v)}`);
  }
  const o = v as Obj;
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key)) {
      throw new PipelineSpecError(
        join(path, key),
        `unknown key "${key}"${path === "" ? "" : ` in ${path}`}; allowed keys: ${allowed.join(", ")}`,
      );
    }
  }
  return o;
}

function isAbsent(v: unknown): v is undefined | null {
  return v === undefined || v === null;
}

function str(o: Obj, key: string, path: string, required: true): string;
function str(o: Obj, key: string, path: string, required: false): string | undefined;
function str(o: Obj, key: string, path: string, required: boolean): string | undefined {
  const v = o[key];
  const p = join(path, key);
  if (isAbsent(v)) {
    if (required) throw new PipelineSpecError(p, `"${key}" is required: a non-empty string`);
    return undefined;
  }
  // YAML turns `modelVersion: 1` into a number; accept it as its text.
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  if (typeof v !== "string" || v.trim() === "") {
    throw new PipelineSpecError(p, `"${key}" must be a non-empty string; got ${describe(v)}`);
  }
  return v;
}

function num(o: Obj, key: string, path: string): number | undefined {
  const v = o[key];
  if (isAbsent(v)) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new PipelineSpecError(join(path, key), `"${key}" must be a finite number; got ${describe(v)}`);
  }
  return v;
}

function bool(o: Obj, key: string, path: string): boolean | undefined {
  const v = o[key];
  if (isAbsent(v)) return undefined;
  if (typeof v !== "boolean") {
    throw new PipelineSpecError(join(path, key), `"${key}" must be true or false; got ${describe(v)}`);
  }
  return v;
}

function oneOf<T extends string>(o: Obj, key: string, path: string, allowed: readonly T[]): T | undefined {
  const v = o[key];
  if (isAbsent(v)) return undefined;
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
    throw new PipelineSpecError(join(path, key), `"${key}" must be one of ${allowed.join(", ")}; got ${describe(v)}`);
  }
  return v as T;
}

/** A list of strings (numbers and booleans accepted as their text, as YAML may produce them). */
function strings(
  o: Obj,
  key: string,
  path: string,
  opts: { unique: boolean; nonEmpty: boolean },
): string[] | undefined {
  const v = o[key];
  const p = join(path, key);
  if (isAbsent(v)) return undefined;
  if (!Array.isArray(v)) {
    throw new PipelineSpecError(p, `"${key}" must be a list of strings; got ${describe(v)}`);
  }
  if (opts.nonEmpty && v.length === 0) {
    throw new PipelineSpecError(p, `"${key}" must not be empty`);
  }
  const out: string[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < v.length; i++) {
    const item: unknown = v[i];
    let s: string;
    if (typeof item === "string") s = item;
    else if ((typeof item === "number" && Number.isFinite(item)) || typeof item === "boolean") s = String(item);
    else throw new PipelineSpecError(`${p}[${i}]`, `must be a string; got ${describe(item)}`);
    if (opts.unique && seen.has(s)) {
      throw new PipelineSpecError(`${p}[${i}]`, `duplicate entry ${JSON.stringify(s)}`);
    }
    seen.add(s);
    out.push(s);
  }
  return out;
}

function notFor(o: Obj, key: string, path: string, type: FieldType): void {
  if (!isAbsent(o[key])) {
    throw new PipelineSpecError(join(path, key), `"${key}" only applies to number fields, not ${type} fields`);
  }
}

function parseFill(v: unknown, path: string, type: FieldType): FillSpec {
  const o = object(v, path, FILL_KEYS);
  const strategy = oneOf(o, "strategy", path, FILL_STRATEGIES);
  if (strategy === undefined) {
    throw new PipelineSpecError(join(path, "strategy"), `"strategy" is required: one of ${FILL_STRATEGIES.join(", ")}`);
  }
  if ((strategy === "mean" || strategy === "median") && type !== "number") {
    throw new PipelineSpecError(
      join(path, "strategy"),
      `"${strategy}" only applies to number fields; for ${type} fields use constant or most_frequent`,
    );
  }
  const value = o.value;
  const vp = join(path, "value");
  if (strategy !== "constant") {
    if (!isAbsent(value)) throw new PipelineSpecError(vp, `"value" is only allowed with strategy constant`);
    return { strategy };
  }
  if (isAbsent(value)) throw new PipelineSpecError(vp, `"value" is required with strategy constant`);
  switch (type) {
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value)) {
        throw new PipelineSpecError(vp, `must be a finite number for a number field; got ${describe(value)}`);
      }
      return { strategy, value };
    case "category":
      if (
        typeof value === "string" ||
        (typeof value === "number" && Number.isFinite(value)) ||
        typeof value === "boolean"
      ) {
        return { strategy, value: String(value) };
      }
      throw new PipelineSpecError(vp, `must be a category string; got ${describe(value)}`);
    case "boolean":
      if (typeof value !== "boolean") {
        throw new PipelineSpecError(vp, `must be true or false for a boolean field; got ${describe(value)}`);
      }
      return { strategy, value };
  }
}

function parseStats(v: unknown, path: string): FieldStats {
  const o = object(v, path, STATS_KEYS);
  const stats: FieldStats = {};
  for (const key of ["mean", "std", "min", "max", "median"] as const) {
    const n = num(o, key, path);
    if (n !== undefined) stats[key] = n;
  }
  if (stats.std !== undefined && stats.std < 0) {
    throw new PipelineSpecError(join(path, "std"), `"std" must not be negative`);
  }
  const mf = o.mostFrequent;
  if (!isAbsent(mf)) {
    if (typeof mf === "string" || typeof mf === "boolean" || (typeof mf === "number" && Number.isFinite(mf))) {
      stats.mostFrequent = mf;
    } else {
      throw new PipelineSpecError(
        join(path, "mostFrequent"),
        `must be a number, string or boolean; got ${describe(mf)}`,
      );
    }
  }
  return stats;
}

function parseField(v: unknown, path: string): FieldSpec {
  const o = object(v, path, FIELD_KEYS);
  const name = str(o, "name", path, true);
  const source = str(o, "source", path, false) ?? name;
  const type = oneOf(o, "type", path, FIELD_TYPES);
  if (type === undefined) {
    throw new PipelineSpecError(join(path, "type"), `"type" is required: one of ${FIELD_TYPES.join(", ")}`);
  }
  const field: FieldSpec = {
    name,
    source,
    type,
    required: bool(o, "required", path) ?? false,
    missing: strings(o, "missing", path, { unique: false, nonEmpty: false }) ?? [],
    scale: "none",
    unknown: "error",
  };
  if (!isAbsent(o.fill)) field.fill = parseFill(o.fill, join(path, "fill"), type);
  if (type === "number") {
    if (!isAbsent(o.clip)) {
      const cp = join(path, "clip");
      const c = object(o.clip, cp, CLIP_KEYS);
      const min = num(c, "min", cp);
      const max = num(c, "max", cp);
      if (min === undefined && max === undefined) {
        throw new PipelineSpecError(cp, `"clip" needs "min", "max" or both`);
      }
      if (min !== undefined && max !== undefined && min > max) {
        throw new PipelineSpecError(cp, `"min" (${min}) must not exceed "max" (${max})`);
      }
      field.clip = {};
      if (min !== undefined) field.clip.min = min;
      if (max !== undefined) field.clip.max = max;
    }
    if (!isAbsent(o.outliers)) {
      const op = join(path, "outliers");
      const out = object(o.outliers, op, OUTLIER_KEYS);
      const z = num(out, "zscore", op);
      if (z === undefined || z <= 0) {
        throw new PipelineSpecError(join(op, "zscore"), `"zscore" is required: a positive number`);
      }
      field.outliers = { zscore: z, action: oneOf(out, "action", op, ["clip", "error"] as const) ?? "error" };
    }
    field.scale = oneOf(o, "scale", path, SCALES) ?? "none";
  } else {
    notFor(o, "clip", path, type);
    notFor(o, "outliers", path, type);
    if (oneOf(o, "scale", path, SCALES) !== undefined && o.scale !== "none") {
      notFor(o, "scale", path, type);
    }
  }
  if (type === "category") {
    const categories = strings(o, "categories", path, { unique: true, nonEmpty: true });
    if (categories !== undefined) field.categories = categories;
    field.unknown = oneOf(o, "unknown", path, ["error", "ignore"] as const) ?? "error";
  } else {
    if (!isAbsent(o.categories)) {
      throw new PipelineSpecError(
        join(path, "categories"),
        `"categories" only applies to category fields, not ${type} fields`,
      );
    }
    // The default ("error") is accepted everywhere, so a parsed spec parses again.
    if (oneOf(o, "unknown", path, ["error", "ignore"] as const) === "ignore") {
      throw new PipelineSpecError(
        join(path, "unknown"),
        `"unknown" only applies to category fields, not ${type} fields`,
      );
    }
  }
  if (!isAbsent(o.stats)) field.stats = parseStats(o.stats, join(path, "stats"));
  return field;
}

/**
 * Parses and validates a pipeline spec given as JSON or YAML text, or as an
 * already parsed object (a {@link PipelineSpec} parses to an equal copy).
 * Defaults are filled in: `input` `features`, `missing`
 * {@link DEFAULT_MISSING_MARKERS}, per field `source` = `name`, `required`
 * false, `missing` none, `scale` none, `unknown` error.
 *
 * @throws PipelineSpecError for text that does not parse, a missing or
 * ill-typed value, an unknown key, or an inconsistent rule (e.g. `mean` fill
 * on a category field); its `path` names the offending key.
 */
export function parsePipelineSpec(input: string | unknown): PipelineSpec {
  let raw: unknown = input;
  if (typeof input === "string") {
    try {
      raw = parseYaml(input);
    } catch (e) {
      throw new PipelineSpecError(
        "",
        `spec text is neither valid JSON nor YAML: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }
  const o = object(raw, "", TOP_KEYS);
  const spec: PipelineSpec = {
    name: str(o, "name", "", true),
    model: str(o, "model", "", true),
    input: str(o, "input", "", false) ?? "features",
    missing: strings(o, "missing", "", { unique: false, nonEmpty: false }) ?? [...DEFAULT_MISSING_MARKERS],
    fields: [],
  };
  const modelVersion = str(o, "modelVersion", "", false);
  if (modelVersion !== undefined) spec.modelVersion = modelVersion;
  if (!isAbsent(o.label)) {
    const l = object(o.label, "label", LABEL_KEYS);
    spec.label = { field: str(l, "field", "label", true) };
    const classes = strings(l, "classes", "label", { unique: true, nonEmpty: true });
    if (classes !== undefined) spec.label.classes = classes;
  }
  if (!Array.isArray(o.fields) || o.fields.length === 0) {
    throw new PipelineSpecError(
      "fields",
      `"fields" is required: a non-empty list of field specs; got ${describe(o.fields)}`,
    );
  }
  const names = new Set<string>();
  for (let i = 0; i < o.fields.length; i++) {
    const field = parseField(o.fields[i], `fields[${i}]`);
    if (names.has(field.name)) {
      throw new PipelineSpecError(`fields[${i}].name`, `duplicate field name ${JSON.stringify(field.name)}`);
    }
    names.add(field.name);
    spec.fields.push(field);
  }
  const features = strings(o, "features", "", { unique: true, nonEmpty: true });
  if (features !== undefined) {
    const byName = new Map(spec.fields.map((f) => [f.name, f]));
    for (let i = 0; i < features.length; i++) {
      const feature = features[i] as string;
      const eq = feature.indexOf("=");
      const direct = byName.get(feature);
      const base = eq < 0 ? undefined : byName.get(feature.slice(0, eq));
      const ok = (direct !== undefined && direct.type !== "category") || base?.type === "category";
      if (!ok) {
        throw new PipelineSpecError(
          `features[${i}]`,
          `${JSON.stringify(feature)} names no feature: use a number or boolean field's name, or <category field>=<category>`,
        );
      }
    }
    spec.features = features;
  }
  return spec;
}

/** Writes a spec as YAML text that {@link parsePipelineSpec} reads back to an equal spec. */
export function stringifyPipelineSpec(spec: PipelineSpec): string {
  return stringifyYaml(spec);
}
