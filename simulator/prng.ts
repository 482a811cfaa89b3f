// Seedable pseudo-random numbers for the simulator. The driving model must not
// use Math.random: a run is only reproducible (`--seed`) if every random choice
// comes from a generator whose whole state derives from the seed.

/** A deterministic random source. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [min, max). */
  uniform(min: number, max: number): number;
  /** Uniform integer in [min, max] (both inclusive). */
  int(min: number, max: number): number;
  /** Standard normal (mean 0, standard deviation 1). */
  gaussian(): number;
  /** True with probability p. */
  chance(p: number): boolean;
  /** One element of a non-empty array. */
  pick<T>(items: readonly [T, ...T[]]): T;
}

/**
 * Mixes a 32-bit value into a well-distributed 32-bit hash (the murmur3
 * finaliser). Used so that neighbouring seeds (vehicle 0, 1, 2...) produce
 * unrelated streams instead of correlated first draws.
 */
export function mix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Derives the seed of a sub-stream (e.g. one vehicle) from a run seed. */
export function deriveSeed(seed: number, index: number): number {
  return mix32(mix32(seed) ^ mix32(index + 0x9e3779b9));
}

/**
 * sfc32 (Small Fast Chaotic, from PractRand): 128 bits of state, passes
 * BigCrush, and needs only 32-bit integer arithmetic, which JS does exactly.
 */
export function createRng(seed: number): Rng {
  let a = mix32(seed ^ 0xdeadbeef);
  let b = mix32(seed + 0x6a09e667);
  let c = mix32(seed ^ 0xbb67ae85);
  let d = 1;
  let spareGaussian: number | undefined;

  const nextU32 = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  // The first outputs of sfc32 still carry the seed's structure.
  for (let i = 0; i < 15; i++) nextU32();

  const next = (): number => nextU32() / 4294967296;

  return {
    next,
    uniform: (min, max) => min + (max - min) * next(),
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    gaussian: () => {
      if (spareGaussian !== undefined) {
        const g = spareGaussian;
        spareGaussian = undefined;
        return g;
      }
      // Box-Muller; 1 - next() is in (0, 1], so the logarithm is finite.
      const u = 1 - next();
      const v = next();
      const r = Math.sqrt(-2 * Math.log(u));
      spareGaussian = r * Math.sin(2 * Math.PI * v);
      return r * Math.cos(2 * Math.PI * v);
    },
    chance: (p) => next() < p,
    pick: <T>(items: readonly [T, ...T[]]): T => {
      const item = items[Math.floor(next() * items.length)];
      return item === undefined ? items[0] : item;
    },
  };
}
