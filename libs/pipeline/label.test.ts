import { describe, expect, it } from "vitest";
import { compilePipeline, isPipelineSpecError, labelIndex, parsePipelineSpec } from "./index.js";

describe("labelIndex", () => {
  const spec = parsePipelineSpec({
    name: "t",
    model: "m",
    label: { field: "y", classes: ["cat", "dog"] },
    fields: [{ name: "x", type: "number" }],
  });

  it("maps labels to class indices, -1 for missing (no error) and unknown (error)", () => {
    const rows = [{ x: 1, y: "dog" }, { x: 2 }, { x: 3, y: "cow" }, { x: 4, y: " cat " }, { x: 5, y: "NA" }];
    const l = labelIndex(spec, rows);
    expect(l.classes).toEqual(["cat", "dog"]);
    expect([...l.indices]).toEqual([1, -1, -1, 0, -1]);
    expect(l.errors).toEqual([
      {
        row: 2,
        code: "invalid_argument",
        field: "y",
        message: 'label "y": unknown class "cow"; expected one of cat, dog',
      },
    ]);
  });

  it("lines up with transform output rows", () => {
    const rows = [{ x: "bad", y: "dog" }, { x: 2, y: "cat" }, { x: 3 }];
    const r = compilePipeline(spec).transformRows(rows);
    const l = labelIndex(spec, rows);
    expect(r.rows.map((row) => l.indices[row])).toEqual([0, -1]);
  });

  it("throws without a label or classes", () => {
    const noLabel = parsePipelineSpec({ name: "t", model: "m", fields: [{ name: "x", type: "number" }] });
    const noClasses = parsePipelineSpec({
      name: "t",
      model: "m",
      label: { field: "y" },
      fields: [{ name: "x", type: "number" }],
    });
    for (const [s, path] of [
      [noLabel, "label"],
      [noClasses, "label.classes"],
    ] as const) {
      try {
        labelIndex(s, []);
        expect.unreachable();
      } catch (e) {
        expect(isPipelineSpecError(e) && e.path).toBe(path);
      }
    }
  });
});
