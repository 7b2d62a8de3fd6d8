import { ColumnReader, rowsToColumns } from "../batch/index.js";
import { RECORD_ERROR_CODE, type RecordError } from "./compile.js";
import { type PipelineSpec, PipelineSpecError } from "./spec.js";
import { DECODED, decodeCategory, INVALID, makeMarkers, newDecoded, quote } from "./values.js";

/** Class indices of a batch's labels. */
export interface LabelIndex {
  /** Class names; index i of `indices` refers to `classes[i]`. */
  classes: string[];
  /** Class index per input record; -1 where the label is missing or not a known class. */
  indices: Int32Array;
  /** Records whose label is present but not one of `classes` (or not a string/number/boolean). */
  errors: RecordError[];
}

/**
 * Turns the label field of `rows` into class indices for training. A missing
 * label (null, absent or a global missing marker) gives -1 and is skipped
 * without an error; an unknown class gives -1 and an error. Combine with a
 * transform: the label of output row i is `indices[result.rows[i]]`.
 *
 * @throws PipelineSpecError when the spec has no label or its label has no
 * classes (fit the spec first (sluice fit, or fitPipeline)).
 */
export function labelIndex(spec: PipelineSpec, rows: ReadonlyArray<Readonly<Record<string, unknown>>>): LabelIndex {
  const label = spec.label;
  if (label === undefined) throw new PipelineSpecError("label", "the spec has no label");
  const classes = label.classes;
  if (classes === undefined) {
    throw new PipelineSpecError(
      "label.classes",
      "the label has no classes; list them or fit the spec first (sluice fit, or fitPipeline)",
    );
  }
  const index = new Map<string, number>();
  for (let i = 0; i < classes.length; i++) index.set(classes[i] as string, i);
  const count = rows.length;
  const reader = new ColumnReader(
    rowsToColumns(rows).find((c) => c.name === label.field),
    count,
  );
  const markers = makeMarkers(spec.missing, []);
  const out = newDecoded();
  const indices = new Int32Array(count).fill(-1);
  const errors: RecordError[] = [];
  for (let r = 0; r < count; r++) {
    const status = decodeCategory(reader.kind(r), reader.number(r), reader.string(r) ?? "", markers, out);
    if (status === DECODED) {
      const k = index.get(out.key);
      if (k !== undefined) {
        indices[r] = k;
        continue;
      }
      out.detail = `unknown class ${quote(out.key)}; expected one of ${classes.join(", ")}`;
    } else if (status !== INVALID) {
      continue;
    }
    errors.push({
      row: r,
      code: RECORD_ERROR_CODE,
      message: `label "${label.field}": ${out.detail}`,
      field: label.field,
    });
  }
  return { classes: [...classes], indices, errors };
}
