// Decoding of single column entries, shared by fit, transform and labels so
// that all three read a value the same way. Internal to the pipeline lib.
import { ValueKind } from "../gen/sluice/v1/batch_pb.js";

/** Value kinds as plain numbers for the hot loops. */
export const KIND_MISSING = ValueKind.MISSING;
export const KIND_NUMBER = ValueKind.NUMBER;
export const KIND_STRING = ValueKind.STRING;
export const KIND_BOOL = ValueKind.BOOL;
export const KIND_OTHER = ValueKind.OTHER;

/** Decode outcome: a value was read. */
export const DECODED = 0;
/** Decode outcome: the entry is missing (absent, null or a missing marker). */
export const MISSING = 1;
/** Decode outcome: the entry cannot be read as the field's type; `detail` says why. */
export const INVALID = 2;
/** Outcome of decoding one entry. */
export type DecodeStatus = typeof DECODED | typeof MISSING | typeof INVALID;

/** Longest number text considered for parsing; longer text is rejected without scanning it twice. */
const MAX_NUMBER_TEXT = 1024;
/** Plain decimal numbers only: no hex, binary, underscores or empty text (which `Number()` accepts). */
const NUMBER_TEXT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
/** Longest value quoted in an error message. */
const MAX_QUOTED = 60;

/** The missing markers of one field: global plus the field's own. */
export interface Markers {
  /** Trimmed texts that mean "missing". */
  readonly texts: ReadonlySet<string>;
  /** Numbers that mean "missing" (markers that are number texts, e.g. "-1"). */
  readonly numbers: ReadonlySet<number>;
  /** Whether a NaN number counts as missing (a marker spelled NaN in any case). */
  readonly nanIsMissing: boolean;
}

/** Builds the missing markers of a field from the global and the field's own markers. */
export function makeMarkers(global: readonly string[], own: readonly string[]): Markers {
  const texts = new Set<string>();
  const numbers = new Set<number>();
  let nanIsMissing = false;
  for (const marker of [...global, ...own]) {
    const t = marker.trim();
    texts.add(t);
    if (t.toLowerCase() === "nan") nanIsMissing = true;
    if (NUMBER_TEXT.test(t)) {
      const n = Number(t);
      if (Number.isFinite(n)) numbers.add(n);
    }
  }
  return { texts, numbers, nanIsMissing };
}

/** Scratch output of a decode: the value, and on INVALID the reason. */
export interface Decoded {
  num: number;
  key: string;
  detail: string;
}

/** A fresh scratch output, made once per loop, not per record. */
export function newDecoded(): Decoded {
  return { num: 0, key: "", detail: "" };
}

/** Quotes a value for an error message, cut to about 60 characters. */
export function quote(s: string): string {
  if (s.length <= MAX_QUOTED) return JSON.stringify(s);
  return `${JSON.stringify(s.slice(0, MAX_QUOTED))}… (${s.length} chars)`;
}

function otherDetail(kind: number, expected: string): string {
  return kind === KIND_OTHER
    ? `expected ${expected}, got an object or list`
    : `expected ${expected}, got value kind ${kind}`;
}

/** Decodes an entry of a number field into `out.num`. */
export function decodeNumber(kind: number, n: number, s: string, m: Markers, out: Decoded): DecodeStatus {
  switch (kind) {
    case KIND_NUMBER:
      if (Number.isNaN(n)) {
        if (m.nanIsMissing) return MISSING;
        out.detail = "NaN is not a valid number";
        return INVALID;
      }
      if (n === Infinity || n === -Infinity) {
        out.detail = `${n} is not a valid number`;
        return INVALID;
      }
      if (m.numbers.has(n)) return MISSING;
      out.num = n;
      return DECODED;
    case KIND_STRING: {
      if (s.length > MAX_NUMBER_TEXT) {
        out.detail = `${quote(s)} is not a number`;
        return INVALID;
      }
      const t = s.trim();
      if (m.texts.has(t)) return MISSING;
      if (!NUMBER_TEXT.test(t)) {
        out.detail = `${quote(s)} is not a number`;
        return INVALID;
      }
      const v = Number(t);
      if (!Number.isFinite(v)) {
        out.detail = `${quote(s)} is out of the number range`;
        return INVALID;
      }
      if (m.numbers.has(v)) return MISSING;
      out.num = v;
      return DECODED;
    }
    case KIND_BOOL:
      out.detail = "expected a number, got a boolean";
      return INVALID;
    case KIND_MISSING:
      return MISSING;
    default:
      if (kind === 0) return MISSING;
      out.detail = otherDetail(kind, "a number");
      return INVALID;
  }
}

/** Decodes an entry of a category field into `out.key` (numbers and booleans as their text). */
export function decodeCategory(kind: number, n: number, s: string, m: Markers, out: Decoded): DecodeStatus {
  switch (kind) {
    case KIND_STRING: {
      const t = s.trim();
      if (m.texts.has(t)) return MISSING;
      out.key = t;
      return DECODED;
    }
    case KIND_NUMBER: {
      if (Number.isNaN(n) && m.nanIsMissing) return MISSING;
      const t = String(n);
      if (m.texts.has(t) || m.numbers.has(n)) return MISSING;
      out.key = t;
      return DECODED;
    }
    case KIND_BOOL: {
      const t = n === 1 ? "true" : "false";
      if (m.texts.has(t)) return MISSING;
      out.key = t;
      return DECODED;
    }
    case KIND_MISSING:
      return MISSING;
    default:
      if (kind === 0) return MISSING;
      out.detail = otherDetail(kind, "a category");
      return INVALID;
  }
}

/** Decodes an entry of a boolean field into `out.num` (1 or 0). */
export function decodeBoolean(kind: number, n: number, s: string, m: Markers, out: Decoded): DecodeStatus {
  switch (kind) {
    case KIND_BOOL:
      out.num = n === 1 ? 1 : 0;
      return DECODED;
    case KIND_STRING: {
      const t = s.length > 64 ? s : s.trim();
      if (m.texts.has(t)) return MISSING;
      switch (t.length <= 5 ? t.toLowerCase() : "") {
        case "true":
        case "yes":
        case "1":
          out.num = 1;
          return DECODED;
        case "false":
        case "no":
        case "0":
          out.num = 0;
          return DECODED;
        default:
          out.detail = `${quote(s)} is not a boolean (true/false, yes/no, 1/0)`;
          return INVALID;
      }
    }
    case KIND_NUMBER:
      if (Number.isNaN(n) && m.nanIsMissing) return MISSING;
      if (m.numbers.has(n)) return MISSING;
      if (n === 1 || n === 0) {
        out.num = n;
        return DECODED;
      }
      out.detail = `${n} is not a boolean (1 or 0)`;
      return INVALID;
    case KIND_MISSING:
      return MISSING;
    default:
      if (kind === 0) return MISSING;
      out.detail = otherDetail(kind, "a boolean");
      return INVALID;
  }
}
