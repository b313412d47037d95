// A small seeded PRNG (sfc32) so every simulated run is reproducible for a seed.
// Math.random cannot be seeded; sfc32 is fast in 32-bit JS arithmetic and passes PractRand.

export class Prng {
  // State in an Int32Array: plain number fields holding values beyond 31 bits would be boxed
  // as heap numbers, turning every draw into an allocation.
  private readonly s = new Int32Array(4);

  constructor(seed: number, stream = 0) {
    this.s[0] = 0x9e3779b9 ^ stream;
    this.s[1] = 0x243f6a88;
    this.s[2] = 0xb7e15162 ^ Math.imul(stream, 0x85ebca6b);
    this.s[3] = seed >>> 0;
    for (let i = 0; i < 15; i++) this.nextU32();
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const a = s[0];
    const b = s[1];
    const c = s[2];
    const d = s[3];
    const t = (((a + b) | 0) + d) | 0;
    s[3] = (d + 1) | 0;
    s[0] = b ^ (b >>> 9);
    s[1] = (c + (c << 3)) | 0;
    s[2] = (((c << 21) | (c >>> 11)) + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n), n <= 2^32. */
  below(n: number): number {
    return Math.floor((this.nextU32() / 4294967296) * n);
  }

  /** Exponential with mean 1. */
  exp(): number {
    return -Math.log(1 - this.next());
  }

  /** Poisson(mean) by inversion (small means) or a normal approximation (large). */
  poisson(mean: number): number {
    if (mean <= 0) return 0;
    if (mean > 50) {
      const u = 1 - this.next();
      const v = this.next();
      const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
      return Math.max(0, Math.round(mean + z * Math.sqrt(mean)));
    }
    let k = 0;
    let p = Math.exp(-mean);
    let s = p;
    const u = this.next();
    while (u > s && k < 1000) {
      k++;
      p *= mean / k;
      s += p;
    }
    return k;
  }

  /** An independent generator derived from this seed and a label (per policy, per workload). */
  static derive(seed: number, label: string): Prng {
    let h = 0x811c9dc5;
    for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
    return new Prng(seed, h >>> 0);
  }
}

/** Fisher-Yates shuffle of `out` (in place). */
export function shuffle(out: Uint32Array, rng: Prng): Uint32Array {
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}
