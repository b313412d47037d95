// Sampling models, all driven by the same workload. The PEBS-like sampler thins the simulated
// access stream itself. Accessed-bit and hint-fault samplers depend on how often a page is
// touched in real time (a page touched 20 times a second always has its accessed bit set when
// scanned once a second), so they are modelled from the true per-page rate of the current phase:
// accesses are a Poisson process, P(bit set after dt) = 1 - exp(-rate*dt), and the first access
// after arming comes Exp(rate) later. This is exact for the i.i.d. generators and an
// approximation for the sequential parts of `graph`.
import type { Prng } from './prng.js';
import { PageList, type Signals } from './policy.js';

/** PEBS/IBS-like: each real access is sampled with probability 1/period. A simulated access
 *  stands for `accessWeight` real ones, so it yields Binomial(weight, 1/period) samples,
 *  drawn as geometric gaps when the expectation is below one (the usual case). */
export class PebsSampler {
  /** Sampled page of each record; bit 31 marks a store. */
  readonly samples = new PageList(4096);
  /** Samples each record stands for (1 when thinning; more when the period is below the
   *  access weight, so absurdly dense sampling stays one record per simulated access). */
  weights = new Uint32Array(4096);
  /** Total samples of the last call. */
  total = 0;
  constructor(public period: number) {
    if (!(period >= 1)) throw new RangeError('sample period must be >= 1');
  }

  /** Memtis-style adaptation: the period that keeps the last call's sampling cost within
   *  `budgetNs` per `epochNs`, estimated from the samples themselves (samples x period =
   *  accesses); changed only when it is off by more than 10%. Returns the period in force. */
  adapt(sampleCostNs: number, budgetShare: number, epochNs: number, minPeriod: number): number {
    if (this.total === 0) return this.period;
    const accesses = this.total * this.period;
    const wanted = Math.max(minPeriod, Math.ceil((accesses * sampleCostNs) / (budgetShare * epochNs)));
    if (Math.abs(wanted - this.period) > 0.1 * this.period) this.period = wanted;
    return this.period;
  }

  sample(signals: Signals, rng: Prng): PageList {
    const out = this.samples;
    out.clear();
    this.total = 0;
    const { stream, accessWeight } = signals;
    const q = accessWeight / this.period;
    if (q < 1) {
      const logNot = Math.log(1 - q);
      let i = Math.floor(Math.log(1 - rng.next()) / logNot);
      while (i < stream.length) {
        out.push(stream[i]);
        i += 1 + Math.floor(Math.log(1 - rng.next()) / logNot);
      }
      if (this.weights.length < out.pages.length) this.weights = new Uint32Array(out.pages.length);
      this.weights.fill(1, 0, out.count);
      this.total = out.count;
    } else {
      if (this.weights.length < stream.length) this.weights = new Uint32Array(stream.length);
      for (let i = 0; i < stream.length; i++) {
        const n = rng.poisson(q);
        if (n === 0) continue;
        this.weights[out.count] = n;
        out.push(stream[i]);
        this.total += n;
      }
    }
    return out;
  }
}

/** Full accessed-bit scans: every `intervalMs` the whole page table is walked and each bit
 *  tested and cleared. Returns, per page, in how many of the epoch's scans the bit was set:
 *  Binomial(scans, 1 - exp(-rate * interval)). */
export class AccessedBitScanner {
  readonly seen: Uint8Array;
  /** Scans done in the last call (0 when the interval is longer than the epoch and none fell due). */
  lastScans = 0;
  private nextScanMs: number;
  constructor(readonly pages: number, readonly intervalMs: number) {
    this.seen = new Uint8Array(pages);
    this.nextScanMs = intervalMs;
  }

  /** Scans due in [startMs, startMs + epochMs) (the first one interval after the start). */
  scansIn(startMs: number, epochMs: number): number {
    let n = 0;
    while (this.nextScanMs < startMs + epochMs && n < 255) {
      this.nextScanMs += this.intervalMs;
      n++;
    }
    return n;
  }

  scan(signals: Signals, startMs: number, epochMs: number, rng: Prng): Uint8Array {
    const scans = (this.lastScans = this.scansIn(startMs, epochMs));
    if (scans === 0) return this.seen.fill(0);
    const dtSec = this.intervalMs / 1000;
    const rates = signals.ratesPerSec;
    const seen = this.seen;
    // Consecutive pages usually share a rate: memoise the binomial CDF for the last rate.
    const cdf = new Float64Array(scans + 1);
    let lastRate = -1;
    let always = -1;
    for (let page = 0; page < this.pages; page++) {
      const rate = rates[page];
      if (rate !== lastRate) {
        lastRate = rate;
        const p = 1 - Math.exp(-rate * dtSec);
        always = p <= 0 ? 0 : p >= 1 ? scans : -1;
        if (always < 0) {
          let pk = Math.pow(1 - p, scans);
          const ratio = p / (1 - p);
          let sum = pk;
          cdf[0] = sum;
          for (let k = 0; k < scans; k++) {
            pk *= ((scans - k) / (k + 1)) * ratio;
            sum += pk;
            cdf[k + 1] = sum;
          }
          cdf[scans] = 2; // guard against rounding: the search always stops
        }
      }
      if (always >= 0) {
        seen[page] = always;
        continue;
      }
      const u = rng.next();
      let k = 0;
      while (u > cdf[k]) k++;
      seen[page] = k;
    }
    return seen;
  }
}

/** NUMA-balancing-style hint faults: every `scanPeriodMs` the next `chunkPages` of the address
 *  space are made PROT_NONE (pages `armable` rejects are skipped but count toward the chunk, as
 *  change_prot_numa skips top-tier pages); the first access afterwards faults. A page that is not
 *  touched before the scanner comes round again is simply re-armed. */
export class HintFaultScanner {
  private cursor = 0;
  private nextScanMs = 0;
  /** Pending faults: page, time armed, time of the fault (ms). */
  private pending = new FaultList(1 << 16);
  private spare = new FaultList(1 << 16);
  /** Faults due in the last epoch, in time order. */
  faults = new FaultList(1 << 16);
  armedThisEpoch = 0;
  scannedThisEpoch = 0;

  constructor(
    readonly pages: number,
    public chunkPages: number,
    readonly scanPeriodMs: number,
    startDelayMs = 0,
  ) {
    this.nextScanMs = startDelayMs;
  }

  /** Milliseconds for the scanner to sweep the whole address space once. */
  get passMs(): number {
    return Math.ceil(this.pages / this.chunkPages) * this.scanPeriodMs;
  }

  /** Arms the chunks due in [startMs, startMs+epochMs) and collects the faults in that window. */
  run(signals: Signals, startMs: number, epochMs: number, rng: Prng, armable: (page: number) => boolean): void {
    const endMs = startMs + epochMs;
    const rates = signals.ratesPerSec;
    this.armedThisEpoch = 0;
    this.scannedThisEpoch = 0;
    const passMs = this.passMs;
    const pending = this.pending;
    while (this.nextScanMs < endMs) {
      const armMs = this.nextScanMs;
      const end = Math.min(this.pages, this.cursor + this.chunkPages);
      for (let page = this.cursor; page < end; page++) {
        if (!armable(page)) continue;
        this.armedThisEpoch++;
        const rate = rates[page];
        if (rate <= 0) continue;
        const latencyMs = (rng.exp() / rate) * 1000;
        if (latencyMs >= passMs) continue; // re-armed before it faults
        pending.push(page, armMs, armMs + latencyMs);
      }
      this.scannedThisEpoch += end - this.cursor;
      this.cursor = end >= this.pages ? 0 : end;
      this.nextScanMs += this.scanPeriodMs;
    }
    // Faults due in this epoch, counting-sorted by the millisecond they happen; later ones wait.
    const keep = this.spare;
    keep.count = 0;
    const buckets = Math.max(1, Math.ceil(epochMs));
    const startOf = new Uint32Array(buckets + 1);
    let due = 0;
    for (let i = 0; i < pending.count; i++) {
      const t = pending.faultMs[i];
      if (t < endMs) {
        startOf[Math.min(buckets - 1, Math.max(0, Math.floor(t - startMs)))]++;
        due++;
      }
    }
    let sum = 0;
    for (let b = 0; b < buckets; b++) {
      const c = startOf[b];
      startOf[b] = sum;
      sum += c;
    }
    const out = this.faults;
    out.reserve(due);
    out.count = due;
    for (let i = 0; i < pending.count; i++) {
      const t = pending.faultMs[i];
      if (t < endMs) {
        const j = startOf[Math.min(buckets - 1, Math.max(0, Math.floor(t - startMs)))]++;
        out.page[j] = pending.page[i];
        out.armMs[j] = pending.armMs[i];
        out.faultMs[j] = t;
      } else {
        keep.push(pending.page[i], pending.armMs[i], t);
      }
    }
    this.spare = pending;
    this.pending = keep;
  }
}

/** Columnar, growable list of hint faults. */
export class FaultList {
  count = 0;
  page: Uint32Array;
  armMs: Float64Array;
  faultMs: Float64Array;
  constructor(capacity: number) {
    this.page = new Uint32Array(capacity);
    this.armMs = new Float64Array(capacity);
    this.faultMs = new Float64Array(capacity);
  }
  reserve(n: number): void {
    if (n <= this.page.length) return;
    let cap = this.page.length;
    while (cap < n) cap *= 2;
    const page = new Uint32Array(cap);
    const armMs = new Float64Array(cap);
    const faultMs = new Float64Array(cap);
    page.set(this.page.subarray(0, this.count));
    armMs.set(this.armMs.subarray(0, this.count));
    faultMs.set(this.faultMs.subarray(0, this.count));
    this.page = page;
    this.armMs = armMs;
    this.faultMs = faultMs;
  }
  push(page: number, armMs: number, faultMs: number): void {
    if (this.count === this.page.length) this.reserve(this.count + 1);
    const i = this.count++;
    this.page[i] = page;
    this.armMs[i] = armMs;
    this.faultMs[i] = faultMs;
  }
}

/** DAMON-like monitoring of the physical address space (simplified from mm/damon/core.c):
 *  regions (min..max count) each sampled at one random page per sample interval; a region's
 *  nr_accesses is how many of the aggregation's samples found the bit set. After each
 *  aggregation adjacent regions with similar counts merge (age kept while the count is stable,
 *  reset when it changes by more than the merge threshold) and, while there are fewer than
 *  max/2 regions, every region splits in two at a random point. */
export class DamonMonitor {
  start: number[] = [];
  len: number[] = [];
  nr: number[] = [];
  lastNr: number[] = [];
  age: number[] = [];
  samplesThisEpoch = 0;
  private started = false;

  constructor(
    readonly pages: number,
    readonly sampleMs = 5,
    readonly aggregateMs = 100,
    readonly minRegions = 10,
    readonly maxRegions = 1000,
  ) {
    const n = Math.min(minRegions, pages);
    for (let i = 0; i < n; i++) {
      const s = Math.floor((i * pages) / n);
      const e = Math.floor(((i + 1) * pages) / n);
      this.push(s, e - s, 0, 0, 0);
    }
  }

  private push(start: number, len: number, nr: number, lastNr: number, age: number): void {
    this.start.push(start);
    this.len.push(len);
    this.nr.push(nr);
    this.lastNr.push(lastNr);
    this.age.push(age);
  }

  get maxNrAccesses(): number {
    return Math.max(1, Math.floor(this.aggregateMs / this.sampleMs));
  }

  /** Runs the epoch's aggregations; afterwards `nr` holds the last aggregation's counts. */
  run(signals: Signals, epochMs: number, rng: Prng): void {
    const aggregations = Math.max(1, Math.round(epochMs / this.aggregateMs));
    const samplesPerAgg = this.maxNrAccesses;
    const dtSec = this.sampleMs / 1000;
    const rates = signals.ratesPerSec;
    this.samplesThisEpoch = 0;
    for (let a = 0; a < aggregations; a++) {
      if (this.started) this.adapt(rng);
      this.started = true;
      for (let r = 0; r < this.start.length; r++) {
        let n = 0;
        for (let s = 0; s < samplesPerAgg; s++) {
          const page = this.start[r] + Math.floor(rng.next() * this.len[r]);
          if (rng.next() < 1 - Math.exp(-rates[page] * dtSec)) n++;
        }
        this.nr[r] = n;
        this.samplesThisEpoch += samplesPerAgg;
      }
    }
  }

  /** Merge then split, as kdamond does at each aggregation boundary. */
  adapt(rng: Prng): void {
    const threshold = Math.max(1, Math.floor(this.maxNrAccesses / 10));
    for (let r = 0; r < this.start.length; r++) {
      if (Math.abs(this.nr[r] - this.lastNr[r]) > threshold) this.age[r] = 0;
      else this.age[r]++;
    }
    const sizeLimit = Math.max(1, Math.floor(this.pages / this.minRegions));
    const s: number[] = [];
    const l: number[] = [];
    const n: number[] = [];
    const g: number[] = [];
    for (let r = 0; r < this.start.length; r++) {
      const last = s.length - 1;
      if (last >= 0 && Math.abs(n[last] - this.nr[r]) <= threshold && l[last] + this.len[r] <= sizeLimit) {
        const total = l[last] + this.len[r];
        n[last] = Math.round((n[last] * l[last] + this.nr[r] * this.len[r]) / total);
        g[last] = Math.round((g[last] * l[last] + this.age[r] * this.len[r]) / total);
        l[last] = total;
      } else {
        s.push(this.start[r]);
        l.push(this.len[r]);
        n.push(this.nr[r]);
        g.push(this.age[r]);
      }
    }
    this.start = [];
    this.len = [];
    this.nr = [];
    this.lastNr = [];
    this.age = [];
    const split = s.length < this.maxRegions / 2;
    for (let r = 0; r < s.length; r++) {
      if (split && l[r] >= 2) {
        const cut = Math.max(1, Math.min(l[r] - 1, Math.floor(l[r] * (0.1 + 0.8 * rng.next()))));
        this.push(s[r], cut, n[r], n[r], g[r]);
        this.push(s[r] + cut, l[r] - cut, n[r], n[r], g[r]);
      } else {
        this.push(s[r], l[r], n[r], n[r], g[r]);
      }
    }
  }
}
