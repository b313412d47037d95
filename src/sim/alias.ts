// Walker/Vose alias table: O(1) draws from an arbitrary discrete distribution over pages
// (zipf ranks, graph vertices, replayed traces). Thresholds are stored as 32-bit integers so a
// draw is two PRNG words, two array reads and one compare.
import type { Prng } from './prng.js';

export class AliasTable {
  readonly size: number;
  private readonly threshold: Uint32Array;
  private readonly alias: Uint32Array;

  constructor(weights: Float64Array) {
    const n = weights.length;
    if (n === 0) throw new RangeError('alias table: no weights');
    let total = 0;
    for (let i = 0; i < n; i++) total += weights[i];
    if (!(total > 0)) throw new RangeError('alias table: weights sum to zero');
    this.size = n;
    this.threshold = new Uint32Array(n);
    this.alias = new Uint32Array(n);
    const scaled = new Float64Array(n);
    const small = new Uint32Array(n);
    const large = new Uint32Array(n);
    let ns = 0;
    let nl = 0;
    for (let i = 0; i < n; i++) {
      scaled[i] = (weights[i] * n) / total;
      if (scaled[i] < 1) small[ns++] = i;
      else large[nl++] = i;
    }
    while (ns > 0 && nl > 0) {
      const s = small[--ns];
      const l = large[nl - 1];
      this.threshold[s] = Math.min(4294967295, Math.floor(scaled[s] * 4294967296));
      this.alias[s] = l;
      scaled[l] = scaled[l] + scaled[s] - 1;
      if (scaled[l] < 1) {
        nl--;
        small[ns++] = l;
      }
    }
    while (nl > 0) {
      const l = large[--nl];
      this.threshold[l] = 4294967295;
      this.alias[l] = l;
    }
    while (ns > 0) {
      const s = small[--ns];
      this.threshold[s] = 4294967295;
      this.alias[s] = s;
    }
  }

  draw(rng: Prng): number {
    const i = Math.floor((rng.nextU32() / 4294967296) * this.size);
    return rng.nextU32() < this.threshold[i] ? i : this.alias[i];
  }
}
