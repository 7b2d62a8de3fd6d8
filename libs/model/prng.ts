/**
 * A small seeded pseudo-random number generator.
 *
 * The generator is mulberry32 (32-bit state, period 2^32) seeded through one round of the
 * splitmix32 finaliser, so nearby seeds (0, 1, 2, ...) give unrelated streams. It is fast,
 * has no dependencies and gives the same sequence on every platform, which is what model
 * training needs for reproducible weights. It is not cryptographically secure.
 */
export interface Prng {
  /** The seed this generator was created with (after `>>> 0`). */
  readonly seed: number;
  /** A uniform draw in [0, 1) with 32 bits of resolution. */
  next(): number;
  /** A uniform draw in [min, max). */
  uniform(min?: number, max?: number): number;
  /** A uniform integer in [0, n). Throws `RangeError` when `n` is not a positive integer. */
  int(n: number): number;
  /** A normal draw (Box–Muller); `mean` default 0, `sd` default 1. */
  normal(mean?: number, sd?: number): number;
  /** Shuffles `items` in place (Fisher–Yates) and returns it. */
  shuffle<T extends { length: number; [index: number]: unknown }>(items: T): T;
  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array;
}

/** One round of the splitmix32 finaliser: a well-mixed 32-bit hash of `x`. */
function splitmix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * Creates a seeded generator. The same seed always yields the same sequence of draws.
 *
 * @param seed any number; it is reduced to an unsigned 32-bit integer (default 0).
 */
export function createPrng(seed = 0): Prng {
  const seed32 = seed >>> 0;
  let state = splitmix32(seed32);
  // Box–Muller makes two normals per pair of uniforms; the second is kept for the next call.
  let spare: number | undefined;

  const next = (): number => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };

  const int = (n: number): number => {
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`int(n): n must be a positive integer, got ${n}`);
    return Math.floor(next() * n);
  };

  const shuffle = <T extends { length: number; [index: number]: unknown }>(items: T): T => {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      const tmp = items[i];
      items[i] = items[j] as T[number];
      items[j] = tmp as T[number];
    }
    return items;
  };

  return {
    seed: seed32,
    next,
    uniform: (min = 0, max = 1) => min + (max - min) * next(),
    int,
    normal(mean = 0, sd = 1) {
      if (spare !== undefined) {
        const z = spare;
        spare = undefined;
        return mean + sd * z;
      }
      // 1 - u lies in (0, 1], so the logarithm is finite.
      const u1 = 1 - next();
      const u2 = next();
      const r = Math.sqrt(-2 * Math.log(u1));
      const theta = 2 * Math.PI * u2;
      spare = r * Math.sin(theta);
      return mean + sd * r * Math.cos(theta);
    },
    shuffle,
    permutation(n: number) {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = i;
      return shuffle(out);
    },
  };
}
