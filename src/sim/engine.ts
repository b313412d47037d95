// The simulation loop: one access stream per epoch shared by every policy, each policy with its
// own placement. Epoch e is served with the placement left by epoch e-1; then the policy sees
// epoch e through its sampler and returns moves, which are applied (and paid for) before e+1.
import { Prng } from './prng.js';
import { CXL, DRAM, DEFAULT_POLICY_SETTINGS, type PageList, type Policy, type PolicyContext, type PolicySettings } from './policy.js';
import { topKMask } from './topk.js';
import { PAGE_MASK, type Workload } from './workloads.js';

export interface TierModel {
  dramLatencyNs: number;
  cxlLatencyNs: number;
  dramBytesPerSec: number;
  cxlBytesPerSec: number;
  /** Bytes per access (a cache line). */
  accessBytes: number;
  /** Copy bandwidth of the migration thread, bytes/s (copies also share the tiers' bandwidth). */
  migrationBytesPerSec: number;
  /** Fixed cost per migrated page (syscall share, unmap, TLB shootdown, remap), ns. */
  migrationPerPageNs: number;
  /** Loaded latency: at CXL bandwidth utilisation u the CXL latency is idle x (1 + q u/(1-u))
   *  (a queue in front of the link; q = 0.5 gives 1.5x at half load, ~5x at 90%). 0 = idle latency. */
  cxlQueueFactor?: number;
}

/** Published figures (BRIEF.md): local DRAM 107 ns / 104 GB/s, CXL 279 ns / 17.6 GB/s;
 *  migration ~0.8 M pages/s single-threaded (1 us per page + the copy at CXL bandwidth). */
export const DEFAULT_TIERS: TierModel = {
  dramLatencyNs: 107,
  cxlLatencyNs: 279,
  dramBytesPerSec: 104e9,
  cxlBytesPerSec: 17.6e9,
  accessBytes: 64,
  migrationBytesPerSec: 17.6e9,
  migrationPerPageNs: 1000,
  cxlQueueFactor: 0.5,
};

/** Utilisation above which the loaded-latency curve stops rising (the bandwidth floor binds). */
const MAX_CXL_UTILISATION = 0.95;

/** Modelled time to serve one epoch, ns: `bytes` of demand with `share` of it from DRAM, plus
 *  `copyBytes` of migration copies that compete with it for both tiers' bandwidth. The time is
 *  at least the all-DRAM time `baseNs`, each tier's bytes over its bandwidth, the copies over
 *  the migration thread's rate, and the latency bound with CXL's latency loaded by its
 *  utilisation u = CXL bytes / (time x bandwidth) (a fixed point: more time lowers u; found by
 *  bisection). */
export function epochServeNs(tiers: TierModel, baseNs: number, share: number, bytes: number, copyBytes = 0): number {
  const cxlBytes = (1 - share) * bytes + copyBytes;
  const dramBytes = share * bytes + copyBytes;
  const floor = Math.max(
    baseNs,
    (cxlBytes / tiers.cxlBytesPerSec) * 1e9,
    (dramBytes / tiers.dramBytesPerSec) * 1e9,
    (copyBytes / tiers.migrationBytesPerSec) * 1e9,
  );
  const q = tiers.cxlQueueFactor ?? 0;
  const latencyAt = (t: number): number => {
    const u = Math.min(MAX_CXL_UTILISATION, ((cxlBytes / tiers.cxlBytesPerSec) * 1e9) / t);
    const cxl = tiers.cxlLatencyNs * (1 + (q * u) / (1 - u));
    return baseNs * ((share * tiers.dramLatencyNs + (1 - share) * cxl) / tiers.dramLatencyNs);
  };
  if (latencyAt(floor) <= floor) return floor;
  // latencyAt falls as t grows: the answer lies between the floor and the latency at it.
  let lo = floor;
  let hi = latencyAt(floor);
  for (let i = 0; i < 60 && hi - lo > 1e-9 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (latencyAt(mid) > mid) lo = mid;
    else hi = mid;
  }
  return hi;
}

export interface SimConfig {
  pages: number;
  dramPages: number;
  epochs: number;
  epochMs: number;
  /** Simulated accesses per epoch (the representative stream). */
  accessesPerEpoch: number;
  /** Real memory accesses per second the stream stands for (sets sample counts and A-bit odds). */
  accessRatePerSec: number;
  seed: number;
  tiers: TierModel;
  settings: PolicySettings;
  /** A page moved back within this many epochs counts as ping-pong. */
  pingPongWindowEpochs: number;
  /** Recall at which a policy counts as converged (initially and after each shift). */
  convergeRecall: number;
  /** Keep per-epoch series in the result. */
  timeline: boolean;
  /** Where first touch leaves pages: DRAM filled in address order, or with a seeded random
   *  choice of 2 MiB blocks (sweeps use it: a run's starting layout should not decide it), or
   *  `cxl`: every page starts on the slow tier and DRAM is empty (the lab's layout: the whole
   *  region moved to the CXL node after its first touch). */
  firstTouch?: FirstTouchMode;
}

export type FirstTouchMode = 'address' | 'random' | 'cxl';
export const FIRST_TOUCH_MODES: readonly FirstTouchMode[] = ['address', 'random', 'cxl'];

export const DEFAULT_SIM: Omit<SimConfig, 'pages' | 'dramPages' | 'epochs'> = {
  epochMs: 1000,
  accessesPerEpoch: 1_000_000,
  accessRatePerSec: 100e6,
  seed: 1,
  tiers: DEFAULT_TIERS,
  settings: DEFAULT_POLICY_SETTINGS,
  pingPongWindowEpochs: 4,
  convergeRecall: 0.95,
  timeline: false,
};

export class SimPolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimPolicyError';
  }
}

export interface PolicyResult {
  policy: string;
  /** Share of all accesses served from DRAM over the run. */
  dramShare: number;
  /** Same over the steady windows (last quarter of each hot-set phase). */
  dramShareSteady: number;
  /** Precision/recall: the placement serving each epoch vs that epoch's true top-K pages,
   *  averaged over the steady windows. */
  precisionSteady: number;
  recallSteady: number;
  f1Steady: number;
  /** Epochs served before the placement first reached recall >= convergeRecall, counted only
   *  once the policy has migrated (a first-touch layout that happens to fit does not count);
   *  null = never. */
  epochsToConverge: number | null;
  /** Per hot-set shift: epochs served from the shift on before recall >= convergeRecall again; null = never. */
  reconvergeEpochs: Array<number | null>;
  promotedBytes: number;
  demotedBytes: number;
  pingPongPages: number;
  /** Modelled run time / the same stream on all-DRAM. */
  slowdown: number;
  modelledSec: number;
  migrationSec: number;
  /** Modelled tracking CPU (samples, faults, scans) as a share of the run. */
  trackingCpuShare: number;
  /** Measured wall time of the policy's own decision code (not modelled time). */
  policyCpuMs: number;
  maxDramUsedPages: number;
  counters: Record<string, number>;
  timeline?: {
    dramShare: number[];
    precision: number[];
    recall: number[];
    promotedPages: number[];
    demotedPages: number[];
  };
}

export interface SimResult {
  pages: number;
  dramPages: number;
  epochs: number;
  epochMs: number;
  accessesPerEpoch: number;
  accessRatePerSec: number;
  /** Epochs at which the hot set changed (phase boundaries after the first). */
  shiftEpochs: number[];
  simulatedAccesses: number;
  wallMs: number;
  policies: PolicyResult[];
}

interface PolicyState {
  policy: Policy;
  rng: Prng;
  tier: Uint8Array;
  used: number;
  maxUsed: number;
  /** DRAM pages strictly above the K-th true heat, and DRAM pages tied with it. */
  inTop: number;
  inTie: number;
  migrated: boolean;
  /** Whether a migration was applied before the epoch being scored. */
  migratedBefore: boolean;
  lastMoveEpoch: Int32Array;
  lastMoveDir: Int8Array;
  hits: number;
  steadyHits: number;
  steadyAccesses: number;
  steadyP: number;
  steadyR: number;
  steadyN: number;
  promoted: number;
  demoted: number;
  pingPong: number;
  modelledNs: number;
  migrationNs: number;
  trackingNs: number;
  cpuMs: number;
  converged: number | null;
  reconverge: Array<number | null>;
  series: { dramShare: number[]; precision: number[]; recall: number[]; promotedPages: number[]; demotedPages: number[] };
}

export interface SimHooks {
  /** Called after every epoch (progress bars). */
  onEpoch?(epoch: number, epochs: number): void;
  /** Wall clock for policy CPU time; defaults to performance.now. */
  now?(): number;
}

export function validateSimConfig(c: SimConfig): void {
  const fail = (m: string) => {
    throw new RangeError(m);
  };
  if (!Number.isSafeInteger(c.pages) || c.pages < 2 || c.pages > PAGE_MASK) fail(`pages out of range: ${c.pages}`);
  if (!Number.isSafeInteger(c.dramPages) || c.dramPages < 1) fail('DRAM must be at least one page');
  if (c.dramPages >= c.pages) fail('DRAM must be smaller than the memory size (nothing to tier otherwise)');
  if (!Number.isSafeInteger(c.epochs) || c.epochs < 1) fail('need at least one epoch');
  if (!(c.epochMs > 0)) fail('epoch length must be positive');
  if (!Number.isSafeInteger(c.accessesPerEpoch) || c.accessesPerEpoch < 1 || c.accessesPerEpoch > 2 ** 28) fail('accesses per epoch out of range (1..2^28)');
  if (!(c.accessRatePerSec > 0)) fail('access rate must be positive');
  if (!(c.settings.samplePeriod === 0 || c.settings.samplePeriod >= 1)) fail('sample period must be >= 1 (or 0: sized from the tracking budget)');
  if (!(c.settings.trackingBudget > 0 && c.settings.trackingBudget <= 1)) fail('tracking budget must be in (0, 1]');
}

export function runSimulation(config: SimConfig, workload: Workload, policies: Policy[], hooks: SimHooks = {}): SimResult {
  validateSimConfig(config);
  if (workload.pages !== config.pages) throw new RangeError('workload and memory sizes differ');
  const now = hooks.now ?? (() => performance.now());
  const wallStart = now();
  const { pages, dramPages: capacity, epochs, epochMs, accessesPerEpoch, tiers } = config;
  const epochSec = epochMs / 1000;
  const realAccesses = config.accessRatePerSec * epochSec;
  const accessWeight = realAccesses / accessesPerEpoch;
  const needFuture = policies.some((p) => p.name === 'oracle');

  // Phases and steady windows (last quarter of each phase) are known up front.
  const phaseOf = new Int32Array(epochs);
  for (let e = 0; e < epochs; e++) phaseOf[e] = workload.phaseOf(e);
  const shiftEpochs: number[] = [];
  for (let e = 1; e < epochs; e++) if (phaseOf[e] !== phaseOf[e - 1]) shiftEpochs.push(e);
  const phaseStarts = [0, ...shiftEpochs];
  const steady = new Uint8Array(epochs);
  for (let i = 0; i < phaseStarts.length; i++) {
    const s = phaseStarts[i];
    const end = i + 1 < phaseStarts.length ? phaseStarts[i + 1] : epochs;
    const from = end - Math.max(1, Math.floor((end - s) / 4));
    for (let e = from; e < end; e++) steady[e] = 1;
  }

  const states: PolicyState[] = policies.map((policy) => {
    const tier = firstTouchLayout(pages, capacity, config.firstTouch ?? 'address', config.seed);
    const used = config.firstTouch === 'cxl' ? 0 : capacity;
    return {
      policy,
      rng: Prng.derive(config.seed, `policy:${policy.name}`),
      tier,
      used,
      maxUsed: used,
      inTop: 0,
      inTie: 0,
      migrated: false,
      migratedBefore: false,
      lastMoveEpoch: new Int32Array(pages).fill(-1 << 30),
      lastMoveDir: new Int8Array(pages),
      hits: 0,
      steadyHits: 0,
      steadyAccesses: 0,
      steadyP: 0,
      steadyR: 0,
      steadyN: 0,
      promoted: 0,
      demoted: 0,
      pingPong: 0,
      modelledNs: 0,
      migrationNs: 0,
      trackingNs: 0,
      cpuMs: 0,
      converged: null,
      reconverge: [],
      series: { dramShare: [], precision: [], recall: [], promotedPages: [], demotedPages: [] },
    };
  });
  if (new Set(policies.map((p) => p.name)).size !== policies.length) throw new RangeError('each policy may appear once');

  const streams = [new Uint32Array(accessesPerEpoch), new Uint32Array(accessesPerEpoch)];
  const rates = new Float64Array(pages);
  let top: Uint8Array = new Uint8Array(0);
  // Tie-aware truth: 1 = hotter than the K-th page (must be in DRAM), 1 in `tie` = exactly as
  // hot as the K-th page (interchangeable: any of them fills the remaining places).
  let tie: Uint8Array = new Uint8Array(0);
  let mustHave = 0;
  let topPhase = -1;
  let strict: Uint8Array = new Uint8Array(0);
  let allDramNs = 0;
  // The next epoch's true top-K, for the oracle (real counts over ~1e8 accesses are the rates).
  let futurePhase = -1;
  let futureMask: Uint8Array = new Uint8Array(0);
  const futureTop = (epoch: number): Uint8Array => {
    if (phaseOf[epoch] === topPhase) return top;
    if (phaseOf[epoch] !== futurePhase) {
      futureMask = topKMask(workload.pmf(epoch), capacity);
      futurePhase = phaseOf[epoch];
    }
    return futureMask;
  };
  const copyBytesPerPage = config.settings.pageSizeBytes;

  workload.fill(streams[0], 0);
  for (let e = 0; e < epochs; e++) {
    const stream = streams[e % 2];
    const hasFuture = e + 1 < epochs;
    // The next epoch's stream is drawn now so workloads are always visited in epoch order.
    if (hasFuture) workload.fill(streams[(e + 1) % 2], e + 1);
    if (phaseOf[e] !== topPhase) {
      const pmf = workload.pmf(e);
      for (let p = 0; p < pages; p++) rates[p] = pmf[p] * config.accessRatePerSec;
      top = phaseOf[e] === futurePhase ? futureMask : topKMask(pmf, capacity);
      const truth = tieAwareTruth(pmf, capacity);
      tie = truth.tie;
      mustHave = truth.above;
      topPhase = phaseOf[e];
      for (const st of states) {
        st.inTop = countInTop(st.tier, truth.strict);
        st.inTie = countInTop(st.tier, tie);
      }
      strict = truth.strict;
    }
    const bytes = realAccesses * tiers.accessBytes;
    const epochAllDramNs = Math.max(epochMs * 1e6, (bytes / tiers.dramBytesPerSec) * 1e9);
    allDramNs += epochAllDramNs;

    for (const st of states) {
      // Serve the epoch with the current placement.
      const tier = st.tier;
      const hits = dramHits(tier, stream);
      // Hot-set scores of the placement serving this epoch, against this epoch's true top-K.
      const right = st.inTop + Math.min(st.inTie, capacity - mustHave);
      const precision = st.used > 0 ? right / st.used : 0;
      const recall = right / capacity;
      const share = hits / stream.length;
      st.hits += hits;
      if (steady[e]) {
        st.steadyHits += hits;
        st.steadyAccesses += stream.length;
      }

      const ctx: PolicyContext = {
        epoch: e,
        epochMs,
        startMs: e * epochMs,
        pages,
        dramCapacityPages: capacity,
        tier,
        dramUsedPages: st.used,
        signals: { stream, accessWeight, ratesPerSec: rates },
        futureHotSet: needFuture && hasFuture ? futureTop(e + 1) : null,
        rng: st.rng,
      };
      const t0 = now();
      const moves = st.policy.onEpoch(ctx);
      st.cpuMs += now() - t0;
      const overhead = st.policy.overhead();
      st.trackingNs += overhead.trackingNs;

      // Apply: demotions first, then promotions; a policy bug is an error, never clipped.
      applyMoves(st, moves.demote, CXL, e, strict, tie, config.pingPongWindowEpochs);
      applyMoves(st, moves.promote, DRAM, e, strict, tie, config.pingPongWindowEpochs);
      if (moves.promote.count + moves.demote.count > 0) st.migrated = true;
      if (st.used > capacity) throw new SimPolicyError(`${st.policy.name}: ${st.used} pages in DRAM exceed its ${capacity}`);
      st.maxUsed = Math.max(st.maxUsed, st.used);
      st.promoted += moves.promote.count;
      st.demoted += moves.demote.count;
      // Migration: a fixed CPU cost per page, and copies that share both tiers' bandwidth with
      // the epoch's accesses (what they cost is the time they add to serving it).
      const movedPages = moves.promote.count + moves.demote.count;
      const servedNs = epochServeNs(tiers, epochAllDramNs, share, bytes);
      const servedWithCopiesNs = movedPages > 0 ? epochServeNs(tiers, epochAllDramNs, share, bytes, movedPages * copyBytesPerPage) : servedNs;
      const migNs = movedPages * tiers.migrationPerPageNs + (servedWithCopiesNs - servedNs);
      st.migrationNs += migNs;
      st.modelledNs += servedWithCopiesNs + movedPages * tiers.migrationPerPageNs + overhead.trackingNs;

      if (steady[e]) {
        st.steadyP += precision;
        st.steadyR += recall;
        st.steadyN++;
      }
      // Converged only counts once the policy has moved something (it is then its own work).
      if (st.converged === null && st.migratedBefore && recall >= config.convergeRecall) st.converged = e;
      st.migratedBefore = st.migrated;
      if (config.timeline) {
        st.series.dramShare.push(share);
        st.series.precision.push(precision);
        st.series.recall.push(recall);
        st.series.promotedPages.push(moves.promote.count);
        st.series.demotedPages.push(moves.demote.count);
      }
      trackReconvergence(st, e, recall, shiftEpochs, config.convergeRecall);
    }
    hooks.onEpoch?.(e, epochs);
  }

  const pageBytes = config.settings.pageSizeBytes;
  return {
    pages,
    dramPages: capacity,
    epochs,
    epochMs,
    accessesPerEpoch,
    accessRatePerSec: config.accessRatePerSec,
    shiftEpochs,
    simulatedAccesses: epochs * accessesPerEpoch,
    wallMs: now() - wallStart,
    policies: states.map((st) => {
      const p = st.steadyN > 0 ? st.steadyP / st.steadyN : 0;
      const r = st.steadyN > 0 ? st.steadyR / st.steadyN : 0;
      const result: PolicyResult = {
        policy: st.policy.name,
        dramShare: st.hits / (epochs * accessesPerEpoch),
        dramShareSteady: st.steadyAccesses > 0 ? st.steadyHits / st.steadyAccesses : 0,
        precisionSteady: p,
        recallSteady: r,
        f1Steady: p + r > 0 ? (2 * p * r) / (p + r) : 0,
        epochsToConverge: st.converged,
        reconvergeEpochs: st.reconverge,
        promotedBytes: st.promoted * pageBytes,
        demotedBytes: st.demoted * pageBytes,
        pingPongPages: st.pingPong,
        slowdown: st.modelledNs / allDramNs,
        modelledSec: st.modelledNs / 1e9,
        migrationSec: st.migrationNs / 1e9,
        trackingCpuShare: st.trackingNs / st.modelledNs,
        policyCpuMs: st.cpuMs,
        maxDramUsedPages: st.maxUsed,
        counters: st.policy.counters?.() ?? {},
      };
      if (config.timeline) result.timeline = st.series;
      return result;
    }),
  };
}

/** Accesses of the stream served from DRAM: one lookup per access in the 1-byte-per-page tier
 *  map (2.5 MiB for 10 GiB), which stays in cache better than per-page counters would. */
function dramHits(tier: Uint8Array, stream: Uint32Array): number {
  let hits = 0;
  for (let i = 0; i < stream.length; i++) hits += tier[stream[i] & PAGE_MASK];
  return hits;
}

/** DRAM at first touch: the first `capacity` pages, or seeded random 2 MiB blocks (the last
 *  block taken partly), as a guest that faults its memory in in no particular order; `cxl`:
 *  none (everything on the slow tier). */
export function firstTouchLayout(pages: number, capacity: number, mode: FirstTouchMode, seed: number): Uint8Array {
  const tier = new Uint8Array(pages);
  if (mode === 'cxl') return tier;
  if (mode === 'address') return tier.fill(DRAM, 0, capacity);
  const block = 512;
  const blocks = Math.ceil(pages / block);
  const order = new Uint32Array(blocks);
  for (let i = 0; i < blocks; i++) order[i] = i;
  const rng = Prng.derive(seed, 'first-touch');
  for (let i = blocks - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  let left = capacity;
  for (let i = 0; i < blocks && left > 0; i++) {
    const first = order[i] * block;
    const end = Math.min(pages, first + block, first + left);
    tier.fill(DRAM, first, end);
    left -= end - first;
  }
  return tier;
}

/** The true hot set with ties: `strict` marks pages hotter than the K-th (`above` of them),
 *  `tie` pages exactly as hot as it; any min(ties, K - above) of the tied pages complete it. */
export function tieAwareTruth(pmf: Float64Array, k: number): { strict: Uint8Array; tie: Uint8Array; above: number } {
  const n = pmf.length;
  const strict = new Uint8Array(n);
  const tie = new Uint8Array(n);
  if (k >= n) return { strict: strict.fill(1), tie, above: n };
  const kth = Float64Array.from(pmf).sort()[n - k];
  let above = 0;
  for (let p = 0; p < n; p++) {
    if (pmf[p] > kth) {
      strict[p] = 1;
      above++;
    } else if (pmf[p] === kth) tie[p] = 1;
  }
  return { strict, tie, above };
}

function countInTop(tier: Uint8Array, top: Uint8Array): number {
  let n = 0;
  for (let p = 0; p < tier.length; p++) n += tier[p] & top[p];
  return n;
}

/** Moves `list` to tier `to`, checking every page was in the other tier. */
function applyMoves(st: PolicyState, list: PageList, to: number, e: number, top: Uint8Array, tie: Uint8Array, window: number): void {
  const { tier, lastMoveDir, lastMoveEpoch } = st;
  const from = to === DRAM ? CXL : DRAM;
  const dir = to === DRAM ? 1 : -1;
  const pages = tier.length;
  for (let i = 0; i < list.count; i++) {
    const p = list.pages[i];
    if (!(p < pages) || tier[p] !== from) {
      throw new SimPolicyError(`${st.policy.name}: ${to === DRAM ? 'promoted' : 'demoted'} page ${p} which is not in ${from === DRAM ? 'DRAM' : 'CXL'}`);
    }
    tier[p] = to;
    st.used += dir;
    st.inTop += dir * top[p];
    st.inTie += dir * tie[p];
    if (lastMoveDir[p] === -dir && e - lastMoveEpoch[p] <= window) st.pingPong++;
    lastMoveDir[p] = dir;
    lastMoveEpoch[p] = e;
  }
}

/** After each shift at epoch s: epochs served (from s on) before the placement's recall is back
 *  at the target. 0 = the placement was ready when the shift came (only the oracle can). */
function trackReconvergence(st: PolicyState, e: number, recall: number, shifts: number[], target: number): void {
  for (let i = 0; i < shifts.length; i++) {
    const s = shifts[i];
    if (e < s) break;
    const next = i + 1 < shifts.length ? shifts[i + 1] : Infinity;
    if (e >= next) continue;
    if (st.reconverge.length <= i) st.reconverge.push(null);
    if (st.reconverge[i] === null && recall >= target) st.reconverge[i] = e - s;
  }
}
