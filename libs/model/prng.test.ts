import { describe, expect, it } from "vitest";
import { createPrng } from "./prng.js";

describe("createPrng", () => {
  it("gives the same sequence for the same seed and a different one for another seed", () => {
    const draw = (seed: number) => {
      const p = createPrng(seed);
      return [p.next(), p.next(), p.normal(), p.normal(), p.normal(), p.int(10), p.uniform(-1, 1)];
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
    expect(createPrng(0).next()).not.toBe(createPrng(1).next());
  });

  it("draws uniforms in [0, 1) with mean near 1/2", () => {
    const p = createPrng(1);
    let sum = 0;
    let outside = 0;
    for (let i = 0; i < 20_000; i++) {
      const u = p.next();
      if (!(u >= 0 && u < 1)) outside++;
      sum += u;
    }
    expect(outside).toBe(0);
    expect(sum / 20_000).toBeCloseTo(0.5, 1);
  });

  it("draws normals with the requested mean and standard deviation", () => {
    const p = createPrng(2);
    const n = 20_000;
    let sum = 0;
    let sumSq = 0;
    let infinite = 0;
    for (let i = 0; i < n; i++) {
      const z = p.normal(3, 2);
      if (!Number.isFinite(z)) infinite++;
      sum += z;
      sumSq += z * z;
    }
    expect(infinite).toBe(0);
    const mean = sum / n;
    expect(mean).toBeCloseTo(3, 1);
    expect(Math.sqrt(sumSq / n - mean * mean)).toBeCloseTo(2, 1);
  });

  it("shuffles deterministically into a permutation", () => {
    const a = createPrng(5).permutation(50);
    const b = createPrng(5).permutation(50);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a).sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(Array.from(a)).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
    const words = ["a", "b", "c", "d", "e"];
    expect(createPrng(9).shuffle([...words])).toEqual(createPrng(9).shuffle([...words]));
  });

  it("rejects a non-positive int bound", () => {
    expect(() => createPrng(0).int(0)).toThrow(RangeError);
  });
});
