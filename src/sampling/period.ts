// The sample period sized to a CPU budget, as Memtis adapts its PEBS period: each epoch the
// tracking cost (BPF program run time, plus the agent's own work on the samples when known)
// is compared with the budget (a share of one core). Over budget, the period is multiplied
// by the power of two that brings the cost back under it (at most maxStep at once); well under
// budget (halving would still stay below `lowWater` of it), the period is halved, one step per
// epoch. Between the two the period holds: the band [lowWater/2, 1] x budget is wider than a
// factor 2, so some power-of-two step of any constant cost per sample lands in it and stays
// (no oscillation). Pure: no clock, no I/O.
import { InputError } from '../util/units.js';

export interface PeriodControllerOptions {
  /** CPU share of one core the tracking may use, in (0, 1]. */
  budget: number;
  /** The period to start with; also the default minimum. */
  initial: number;
  /** Lowest period allowed (>= 1). Default: initial. */
  min?: number;
  /** Highest period allowed. Default: min(2^32, min * 2^16). */
  max?: number;
  /** Largest factor of one increase (a power of two >= 2). Default 8. */
  maxStep?: number;
  /** Halve only when the cost after halving stays below this share of the budget. Default 0.8. */
  lowWater?: number;
}

/** One epoch's cost. */
export interface EpochCost {
  /** Length of the epoch, ns (> 0). */
  epochNs: number;
  /** BPF program run time during the epoch, ns. */
  bpfNs: number;
  /** Samples delivered in the epoch. */
  samples: number;
  /** The agent's own CPU time spent on this epoch's samples, ns, when measured. */
  agentNs?: number;
}

export interface PeriodStep {
  /** The period for the next epoch. */
  period: number;
  /** The period that was in force during the epoch. */
  previous: number;
  /** Tracking CPU share during the epoch (cost / epoch length). */
  share: number;
  /** Why: 'over' (raised), 'under' (lowered), 'hold', 'clamped' (would move but at a bound). */
  reason: 'over' | 'under' | 'hold' | 'clamped';
}

export interface PeriodReport {
  /** The period in force now. */
  current: number;
  /** Lowest and highest period in force during the run. */
  minSeen: number;
  maxSeen: number;
  /** How many times the period changed. */
  changes: number;
  /** The budget (share of one core) and the bounds. */
  budget: number;
  min: number;
  max: number;
  /** The tracking CPU share measured in the last epoch (null before the first). */
  lastShare: number | null;
}

export const MAX_PERIOD = 2 ** 32;

function checkNumber(value: unknown, name: string, ok: (v: number) => boolean, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || !ok(value)) throw new RangeError(`${name}: ${String(value)} is not ${what}`);
  return value;
}

const isPeriod = (v: number): boolean => Number.isSafeInteger(v) && v >= 1 && v <= MAX_PERIOD;

export class PeriodController {
  readonly budget: number;
  readonly min: number;
  readonly max: number;
  readonly maxStep: number;
  readonly lowWater: number;
  #period: number;
  #minSeen: number;
  #maxSeen: number;
  #changes = 0;
  #lastShare: number | null = null;

  constructor(opts: PeriodControllerOptions) {
    this.budget = checkNumber(opts.budget, 'budget', (v) => v > 0 && v <= 1, 'a CPU share in (0, 1]');
    const initial = checkNumber(opts.initial, 'initial', isPeriod, 'a period in [1, 2^32]');
    this.min = checkNumber(opts.min ?? initial, 'min', isPeriod, 'a period in [1, 2^32]');
    this.max = checkNumber(opts.max ?? Math.min(MAX_PERIOD, this.min * 2 ** 16), 'max', (v) => isPeriod(v) && v >= this.min, `a period in [min ${this.min}, 2^32]`);
    this.maxStep = checkNumber(opts.maxStep ?? 8, 'maxStep', (v) => Number.isSafeInteger(v) && v >= 2 && (v & (v - 1)) === 0, 'a power of two >= 2');
    this.lowWater = checkNumber(opts.lowWater ?? 0.8, 'lowWater', (v) => v > 0 && v < 1, 'in (0, 1)');
    this.#period = Math.min(this.max, Math.max(this.min, initial));
    this.#minSeen = this.#maxSeen = this.#period;
  }

  get period(): number {
    return this.#period;
  }

  /** Feeds one epoch's cost; returns the period for the next epoch. */
  step(cost: EpochCost): PeriodStep {
    const epochNs = checkNumber(cost.epochNs, 'epochNs', (v) => v > 0, 'a positive duration');
    const bpfNs = checkNumber(cost.bpfNs, 'bpfNs', (v) => v >= 0, 'a non-negative duration');
    checkNumber(cost.samples, 'samples', (v) => v >= 0, 'a non-negative count');
    const agentNs = cost.agentNs === undefined ? 0 : checkNumber(cost.agentNs, 'agentNs', (v) => v >= 0, 'a non-negative duration');
    const share = (bpfNs + agentNs) / epochNs;
    this.#lastShare = share;
    const previous = this.#period;
    let wanted = previous;
    let reason: PeriodStep['reason'] = 'hold';
    if (share > this.budget) {
      // the power of two that brings this cost under the budget, at most maxStep
      const factor = Math.min(this.maxStep, 2 ** Math.ceil(Math.log2(share / this.budget)));
      wanted = previous * Math.max(2, factor);
      reason = 'over';
    } else if (share * 2 < this.budget * this.lowWater) {
      wanted = Math.floor(previous / 2);
      reason = 'under';
    }
    const next = Math.min(this.max, Math.max(this.min, wanted));
    if (reason !== 'hold' && next === previous) reason = 'clamped';
    if (next !== previous) {
      this.#changes++;
      this.#period = next;
      this.#minSeen = Math.min(this.#minSeen, next);
      this.#maxSeen = Math.max(this.#maxSeen, next);
    }
    return { period: next, previous, share, reason };
  }

  report(): PeriodReport {
    return {
      current: this.#period,
      minSeen: this.#minSeen,
      maxSeen: this.#maxSeen,
      changes: this.#changes,
      budget: this.budget,
      min: this.min,
      max: this.max,
      lastShare: this.#lastShare,
    };
  }
}

/** Parses a CPU budget: "1%", "0.5%", "0.01"; "off" or "0" = null (fixed period). */
export function parseCpuBudget(text: string, what = '--cpu-budget'): number | null {
  const s = String(text).trim();
  if (s === 'off' || /^0+(\.0*)?%?$/.test(s)) return null;
  const pct = /^(\d*\.?\d+)\s*%$/.exec(s);
  const value = pct ? Number(pct[1]) / 100 : /^\d*\.?\d+$/.test(s) ? Number(s) : NaN;
  if (!(value > 0 && value <= 1)) throw new InputError(`${what}: "${text}" must be a CPU share of one core above 0 and at most 100% (e.g. 1% or 0.01), or off`);
  return value;
}
