// Small statistics for campaigns: mean, sample standard deviation, Student-t quantiles
// and confidence intervals over paired runs. Pure functions; no dependency because the
// whole need is one distribution and a handful of moments.

export interface Interval {
  /** Number of observations the interval rests on. */
  n: number;
  mean: number;
  /** Sample standard deviation (n - 1 in the denominator); NaN when n < 2. */
  stddev: number;
  /** Half-width of the interval; NaN when n < 2 (no spread can be estimated). */
  halfWidth: number;
  low: number;
  high: number;
  /** Two-sided confidence level, e.g. 0.95. */
  level: number;
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

export function sampleStddev(values: readonly number[]): number {
  if (values.length < 2) return NaN;
  const m = mean(values);
  let squares = 0;
  for (const v of values) squares += (v - m) ** 2;
  return Math.sqrt(squares / (values.length - 1));
}

// Lanczos approximation (g = 7, n = 9), accurate to ~1e-15 for positive arguments.
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0];
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

// Continued fraction for the regularized incomplete beta (modified Lentz).
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) < 1e-15) break;
  }
  return h;
}

/** Regularized incomplete beta I_x(a, b). */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  // The continued fraction converges fast only on one side of the mean; use symmetry.
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(a, b, x)) / a;
  return 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** Student-t cumulative distribution P(T <= t) with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** Quantile of the Student-t distribution: the t with P(T <= t) = p. */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1) || !(df > 0)) throw new RangeError(`studentTQuantile: bad p=${p} or df=${df}`);
  if (p === 0.5) return 0;
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  // Bracket then bisect: the CDF is monotone, and 200 halvings reach double precision.
  let low = 0;
  let high = 1;
  while (studentTCdf(high, df) < p) high *= 2;
  for (let i = 0; i < 200 && high - low > 1e-14 * high; i++) {
    const mid = (low + high) / 2;
    if (studentTCdf(mid, df) < p) low = mid;
    else high = mid;
  }
  return (low + high) / 2;
}

/** Two-sided t confidence interval for the mean of `values`. */
export function meanInterval(values: readonly number[], level = 0.95): Interval {
  const n = values.length;
  const m = mean(values);
  const s = sampleStddev(values);
  const halfWidth = n < 2 ? NaN : (studentTQuantile(1 - (1 - level) / 2, n - 1) * s) / Math.sqrt(n);
  return { n, mean: m, stddev: s, halfWidth, low: m - halfWidth, high: m + halfWidth, level };
}

/**
 * Slowdown over paired runs: ratio_i = treated_i / baseline_i for each pair (times: > 1 means
 * slower), then a t interval over the ratios. Pairing removes drift between pairs (the
 * machine warming up, other tenants), which is why campaigns alternate the two arms.
 */
export function pairedRatioInterval(treated: readonly number[], baseline: readonly number[], level = 0.95): Interval & { ratios: number[] } {
  if (treated.length !== baseline.length) throw new RangeError('pairedRatioInterval: arms differ in length');
  const ratios = treated.map((t, i) => t / baseline[i]);
  return { ...meanInterval(ratios, level), ratios };
}

/** Widest 95% CI half-width (relative to the mean) a campaign reports without a warning. */
export const MAX_RELATIVE_HALF_WIDTH = 0.1;

/**
 * Warnings for an interval too wide to read: fewer than 2 pairs (no spread at all), or a
 * half-width beyond +-10% of the mean, with the number of pairs that would likely bring it
 * inside (half-width shrinks as 1/sqrt(n)).
 */
export function intervalWarnings(what: string, ci: Pick<Interval, 'mean' | 'halfWidth'>, pairs: number): string[] {
  if (pairs < 2 || !Number.isFinite(ci.halfWidth)) return [`${what}: ${pairs} pair(s) give no confidence interval; run at least 3 (--runs 3)`];
  const relative = ci.halfWidth / Math.abs(ci.mean);
  if (!(relative > MAX_RELATIVE_HALF_WIDTH)) return [];
  const suggested = Math.min(1000, Math.ceil(pairs * (relative / MAX_RELATIVE_HALF_WIDTH) ** 2));
  return [`${what}: the 95% CI is ±${(relative * 100).toFixed(0)}% of the mean (wider than ±${MAX_RELATIVE_HALF_WIDTH * 100}%); run more pairs, e.g. --runs ${Math.max(suggested, pairs + 1)}`];
}
