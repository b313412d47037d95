// Access-stream generators over a memory of `pages` pages. Each workload is a sequence of
// phases; within a phase accesses are drawn from a fixed distribution whose exact per-page
// probabilities (`pmf`) are known, so the simulator can score policies against the true hot set
// and model accessed-bit/fault samplers from true per-page rates. Bit 31 of an access marks a
// write (key-value updates); consumers mask it with PAGE_MASK.
import { AliasTable } from './alias.js';
import { Prng, shuffle } from './prng.js';

export const WRITE_BIT = 0x80000000;
export const PAGE_MASK = 0x7fffffff;
/** Pages addressable by the stream encoding (bit 31 is the write flag): 8 TiB of 4 KiB pages. */
export const MAX_SIM_PAGES = PAGE_MASK;

export const WORKLOAD_KINDS = ['uniform', 'hotspot', 'zipf', 'shift', 'graph', 'kv'] as const;
/** Old workload names, still understood: `shifting` is `shift` (the name vtier workload,
 *  eval accuracy and the lab use). The CLI warns when it gets one. */
export const DEPRECATED_WORKLOAD_NAMES: Readonly<Record<string, (typeof WORKLOAD_KINDS)[number]>> = { shifting: 'shift' };
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number] | 'shifting' | 'trace';

export type HotLayout = 'contiguous' | 'scattered';

export interface WorkloadOptions {
  kind: WorkloadKind;
  pages: number;
  seed: number;
  /** hotspot/shift/kv: share of pages (or keys) that are hot. */
  hotFrac?: number;
  /** hotspot/shift/kv: share of accesses that hit the hot pages. */
  hotProb?: number;
  /** zipf exponent. */
  theta?: number;
  /** shift: epochs between hot-set moves. */
  shiftEveryEpochs?: number;
  /** Where the hot set lies: one block at a seeded offset, or pages scattered at random. */
  layout?: HotLayout;
}

export interface Workload {
  readonly name: string;
  readonly pages: number;
  /** Phase index for an epoch; the pmf only changes when the phase changes. */
  phaseOf(epoch: number): number;
  /** Exact access probability of every page during `epoch` (sums to 1). Cached per phase. */
  pmf(epoch: number): Float64Array;
  /** Writes `out.length` accesses of `epoch` into `out`. */
  fill(out: Uint32Array, epoch: number): void;
  /** Human description of the parameters, for reports. */
  describe(): Record<string, string | number>;
}

function checkPages(pages: number): void {
  if (!Number.isSafeInteger(pages) || pages < 2 || pages > MAX_SIM_PAGES) {
    throw new RangeError(`workload: ${pages} pages is out of range (2..${MAX_SIM_PAGES})`);
  }
}

/** Splits [0, pages) into `hot` (hotCount pages) and `cold` for one phase. */
function pickHotSet(pages: number, hotCount: number, layout: HotLayout, rng: Prng, startHint?: number) {
  const hot = new Uint32Array(hotCount);
  const cold = new Uint32Array(pages - hotCount);
  const isHot = new Uint8Array(pages);
  if (layout === 'contiguous') {
    const start = startHint ?? rng.below(pages);
    for (let i = 0; i < hotCount; i++) {
      const p = (start + i) % pages;
      hot[i] = p;
      isHot[p] = 1;
    }
  } else {
    // Partial Fisher-Yates over a page permutation: the first hotCount entries are the hot set.
    const perm = new Uint32Array(pages);
    for (let i = 0; i < pages; i++) perm[i] = i;
    for (let i = 0; i < hotCount; i++) {
      const j = i + rng.below(pages - i);
      const t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
      hot[i] = perm[i];
      isHot[perm[i]] = 1;
    }
  }
  let c = 0;
  for (let p = 0; p < pages; p++) if (!isHot[p]) cold[c++] = p;
  return { hot, cold, start: layout === 'contiguous' ? hot[0] : -1 };
}

/** Hotspot: hotProb of accesses go uniformly to hotFrac of pages; the rest uniformly to the others.
 *  `shiftEveryEpochs` > 0 moves the hot set to fresh pages every that many epochs.
 *  Pages are placed by an arithmetic bijection of [0, pages) rather than lookup tables, so a draw
 *  touches no memory: contiguous = x -> (start + x) mod pages; scattered = x -> (a*x + b) mod
 *  pages with a coprime to pages (a < 2^21, so a*x stays exact in a double), which spreads the
 *  hot set evenly over the whole memory (~hotFrac of every 2 MiB region). Phase k's hot set is
 *  the image of [k*H, (k+1)*H), so successive hot sets are disjoint while hotFrac <= 0.5. */
class HotspotWorkload implements Workload {
  readonly name: string;
  readonly pages: number;
  private readonly hotCount: number;
  private readonly hotProbU32: number;
  private readonly rng: Prng;
  private readonly mulA: number;
  private readonly addB: number;
  private readonly pmfs = new Map<number, Float64Array>();

  constructor(
    private readonly o: Required<Pick<WorkloadOptions, 'pages' | 'seed' | 'hotFrac' | 'hotProb' | 'layout'>> & {
      shiftEveryEpochs: number;
      name: string;
    },
  ) {
    checkPages(o.pages);
    if (!(o.hotFrac > 0 && o.hotFrac < 1)) throw new RangeError('hotspot: hot-frac must be in (0, 1)');
    if (!(o.hotProb >= 0 && o.hotProb <= 1)) throw new RangeError('hotspot: hot-prob must be in [0, 1]');
    this.name = o.name;
    this.pages = o.pages;
    this.hotCount = Math.max(1, Math.min(o.pages - 1, Math.round(o.pages * o.hotFrac)));
    this.hotProbU32 = Math.min(4294967296, Math.round(o.hotProb * 4294967296));
    this.rng = Prng.derive(o.seed, `${o.name}:stream`);
    const layoutRng = Prng.derive(o.seed, `${o.name}:layout`);
    if (o.layout === 'contiguous') {
      this.mulA = 1;
    } else {
      let a = (1 << 20) + layoutRng.below(1 << 20);
      while (gcd(a, o.pages) !== 1) a++;
      this.mulA = a % o.pages || 1;
    }
    this.addB = layoutRng.below(o.pages);
  }

  phaseOf(epoch: number): number {
    return this.o.shiftEveryEpochs > 0 ? Math.floor(epoch / this.o.shiftEveryEpochs) : 0;
  }

  /** Page of index x of the bijection. */
  private pageOf(x: number): number {
    return (this.mulA * x + this.addB) % this.pages;
  }

  pmf(epoch: number): Float64Array {
    const phase = this.phaseOf(epoch);
    const cached = this.pmfs.get(phase);
    if (cached) return cached;
    const n = this.pages;
    const pmf = new Float64Array(n).fill((1 - this.o.hotProb) / (n - this.hotCount));
    const hotP = this.o.hotProb / this.hotCount;
    const offset = (phase * this.hotCount) % n;
    for (let i = 0; i < this.hotCount; i++) pmf[this.pageOf((offset + i) % n)] = hotP;
    this.pmfs.set(phase, pmf);
    for (const k of [...this.pmfs.keys()]) if (k < phase - 1 || k > phase + 1) this.pmfs.delete(k);
    return pmf;
  }

  fill(out: Uint32Array, epoch: number): void {
    const n = this.pages;
    const h = this.hotCount;
    const a = this.mulA;
    const b = this.addB;
    const offset = (this.phaseOf(epoch) * h) % n;
    const hotScale = h / 4294967296;
    const coldScale = (n - h) / 4294967296;
    const rng = this.rng;
    const hotProbU32 = this.hotProbU32;
    for (let i = 0; i < out.length; i++) {
      const x = rng.nextU32() < hotProbU32 ? Math.floor(rng.nextU32() * hotScale) : h + Math.floor(rng.nextU32() * coldScale);
      let idx = offset + x;
      if (idx >= n) idx -= n;
      out[i] = (a * idx + b) % n;
    }
  }

  describe() {
    return {
      hotFrac: this.o.hotFrac,
      hotProb: this.o.hotProb,
      hotPages: this.hotCount,
      layout: this.o.layout,
      shiftEveryEpochs: this.o.shiftEveryEpochs,
    };
  }
}

function gcd(x: number, y: number): number {
  while (y) [x, y] = [y, x % y];
  return x;
}

/** Draws from a fixed pmf through an alias table (zipf, graph vertex popularity). */
class PmfWorkload implements Workload {
  private readonly table: AliasTable;
  private readonly rng: Prng;

  constructor(
    readonly name: string,
    private readonly weights: Float64Array,
    seed: number,
    private readonly info: Record<string, string | number>,
  ) {
    checkPages(weights.length);
    this.table = new AliasTable(weights);
    this.rng = Prng.derive(seed, `${name}:stream`);
    let total = 0;
    for (let i = 0; i < weights.length; i++) total += weights[i];
    for (let i = 0; i < weights.length; i++) weights[i] /= total;
  }

  get pages(): number {
    return this.weights.length;
  }
  phaseOf(): number {
    return 0;
  }
  pmf(): Float64Array {
    return this.weights;
  }
  fill(out: Uint32Array): void {
    for (let i = 0; i < out.length; i++) out[i] = this.table.draw(this.rng);
  }
  describe() {
    return this.info;
  }
}

/** Rank -> page placement: a seeded permutation (scattered) or a block at a seeded offset. */
function rankToPage(pages: number, layout: HotLayout, rng: Prng): Uint32Array {
  const map = new Uint32Array(pages);
  if (layout === 'scattered') {
    for (let i = 0; i < pages; i++) map[i] = i;
    return shuffle(map, rng);
  }
  const start = rng.below(pages);
  for (let i = 0; i < pages; i++) map[i] = (start + i) % pages;
  return map;
}

function zipfWorkload(o: WorkloadOptions): Workload {
  const theta = o.theta ?? 0.99;
  if (!(theta >= 0 && theta <= 5)) throw new RangeError('zipf: theta must be in [0, 5]');
  checkPages(o.pages);
  const layout = o.layout ?? 'scattered';
  const map = rankToPage(o.pages, layout, Prng.derive(o.seed, 'zipf:layout'));
  const weights = new Float64Array(o.pages);
  for (let r = 0; r < o.pages; r++) weights[map[r]] = 1 / Math.pow(r + 1, theta);
  return new PmfWorkload('zipf', weights, o.seed, { theta, layout });
}

/** Graph traversal (BFS/PageRank-like): half the accesses go to vertex-property pages with a
 *  power-law popularity (high-degree vertices scattered over the vertex array), half stream
 *  sequentially through the edge array (each page read `linesPerEdgePage` times, then the next),
 *  so edge pages look uniformly warm over time but each is hot only briefly. */
class GraphWorkload implements Workload {
  readonly name = 'graph';
  readonly pages: number;
  private readonly vertexPages: number;
  private readonly vertexTable: AliasTable;
  private readonly vertexMap: Uint32Array;
  private readonly weights: Float64Array;
  private readonly rng: Prng;
  private edgeCursor = 0;
  private edgeLine = 0;
  private readonly linesPerEdgePage = 16;

  constructor(o: WorkloadOptions) {
    checkPages(o.pages);
    this.pages = o.pages;
    this.vertexPages = Math.max(1, Math.round(o.pages * 0.3));
    const theta = o.theta ?? 0.9;
    const vw = new Float64Array(this.vertexPages);
    for (let r = 0; r < this.vertexPages; r++) vw[r] = 1 / Math.pow(r + 1, theta);
    this.vertexTable = new AliasTable(vw);
    this.vertexMap = rankToPage(this.vertexPages, 'scattered', Prng.derive(o.seed, 'graph:layout'));
    let total = 0;
    for (let r = 0; r < this.vertexPages; r++) total += vw[r];
    this.weights = new Float64Array(o.pages);
    const edgePages = o.pages - this.vertexPages;
    for (let r = 0; r < this.vertexPages; r++) this.weights[this.vertexMap[r]] = (edgePages > 0 ? 0.5 : 1) * (vw[r] / total);
    for (let p = this.vertexPages; p < o.pages; p++) this.weights[p] = 0.5 / edgePages;
    this.rng = Prng.derive(o.seed, 'graph:stream');
  }

  phaseOf(): number {
    return 0;
  }
  pmf(): Float64Array {
    return this.weights;
  }
  fill(out: Uint32Array): void {
    const edgePages = this.pages - this.vertexPages;
    for (let i = 0; i < out.length; i++) {
      if (edgePages === 0 || (this.rng.nextU32() & 1) === 0) {
        out[i] = this.vertexMap[this.vertexTable.draw(this.rng)];
      } else {
        out[i] = this.vertexPages + this.edgeCursor;
        if (++this.edgeLine === this.linesPerEdgePage) {
          this.edgeLine = 0;
          this.edgeCursor = (this.edgeCursor + 1) % edgePages;
        }
      }
    }
  }
  describe() {
    return { vertexPages: this.vertexPages, edgePages: this.pages - this.vertexPages, vertexTheta: 0.9 };
  }
}

/** Key-value store under YCSB-like load: each op reads a hash-index page (2% of memory, uniform)
 *  then reads or updates (50/50) one value page (4 KiB values: one key per page); hotProb of ops
 *  hit hotFrac of the keys, which a hash table scatters over memory. */
class KvWorkload implements Workload {
  readonly name = 'kv';
  readonly pages: number;
  private readonly indexPages: number;
  private readonly hot: Uint32Array;
  private readonly cold: Uint32Array;
  private readonly weights: Float64Array;
  private readonly rng: Prng;
  private readonly hotProbU32: number;
  private opHalf = 0;
  private pendingValue = 0;

  constructor(private readonly o: WorkloadOptions) {
    checkPages(o.pages);
    this.pages = o.pages;
    this.indexPages = Math.max(1, Math.round(o.pages * 0.02));
    const valuePages = o.pages - this.indexPages;
    if (valuePages < 2) throw new RangeError('kv: memory too small');
    const hotFrac = o.hotFrac ?? 0.2;
    const hotProb = o.hotProb ?? 0.8;
    const hotKeys = Math.max(1, Math.min(valuePages - 1, Math.round(valuePages * hotFrac)));
    const set = pickHotSet(valuePages, hotKeys, o.layout ?? 'scattered', Prng.derive(o.seed, 'kv:layout'));
    this.hot = set.hot.map((k) => k + this.indexPages);
    this.cold = set.cold.map((k) => k + this.indexPages);
    this.hotProbU32 = Math.min(4294967296, Math.round(hotProb * 4294967296));
    this.weights = new Float64Array(o.pages);
    for (let p = 0; p < this.indexPages; p++) this.weights[p] = 0.5 / this.indexPages;
    for (const p of this.hot) this.weights[p] = (0.5 * hotProb) / this.hot.length;
    for (const p of this.cold) this.weights[p] = (0.5 * (1 - hotProb)) / this.cold.length;
    this.rng = Prng.derive(o.seed, 'kv:stream');
  }

  phaseOf(): number {
    return 0;
  }
  pmf(): Float64Array {
    return this.weights;
  }
  fill(out: Uint32Array): void {
    const rng = this.rng;
    for (let i = 0; i < out.length; i++) {
      if (this.opHalf === 0) {
        out[i] = Math.floor((rng.nextU32() / 4294967296) * this.indexPages);
        const hotHit = rng.nextU32() < this.hotProbU32;
        const set = hotHit ? this.hot : this.cold;
        const value = set[Math.floor((rng.nextU32() / 4294967296) * set.length)];
        this.pendingValue = (rng.nextU32() & 1) === 1 ? (value | WRITE_BIT) >>> 0 : value;
        this.opHalf = 1;
      } else {
        out[i] = this.pendingValue;
        this.opHalf = 0;
      }
    }
  }
  describe() {
    return {
      indexPages: this.indexPages,
      hotFrac: this.o.hotFrac ?? 0.2,
      hotProb: this.o.hotProb ?? 0.8,
      readShare: 0.5,
      layout: this.o.layout ?? 'scattered',
    };
  }
}

class UniformWorkload implements Workload {
  readonly name = 'uniform';
  private readonly rng: Prng;
  private readonly weights: Float64Array;
  constructor(readonly pages: number, seed: number) {
    checkPages(pages);
    this.rng = Prng.derive(seed, 'uniform:stream');
    this.weights = new Float64Array(pages).fill(1 / pages);
  }
  phaseOf(): number {
    return 0;
  }
  pmf(): Float64Array {
    return this.weights;
  }
  fill(out: Uint32Array): void {
    const scale = this.pages / 4294967296;
    for (let i = 0; i < out.length; i++) out[i] = Math.floor(this.rng.nextU32() * scale);
  }
  describe() {
    return {};
  }
}

/** Builds a workload by name. Defaults: hotspot 80/20, zipf theta 0.99, shift every 20 epochs. */
export function makeWorkload(o: WorkloadOptions): Workload {
  switch (o.kind) {
    case 'uniform':
      return new UniformWorkload(o.pages, o.seed);
    case 'hotspot':
    case 'shift':
    case 'shifting':
      return new HotspotWorkload({
        name: o.kind === 'hotspot' ? 'hotspot' : 'shift',
        pages: o.pages,
        seed: o.seed,
        hotFrac: o.hotFrac ?? 0.2,
        hotProb: o.hotProb ?? 0.8,
        layout: o.layout ?? 'contiguous',
        shiftEveryEpochs: o.kind !== 'hotspot' ? o.shiftEveryEpochs ?? 20 : 0,
      });
    case 'zipf':
      return zipfWorkload(o);
    case 'graph':
      return new GraphWorkload(o);
    case 'kv':
      return new KvWorkload(o);
    default:
      throw new RangeError(`unknown workload "${o.kind}" (known: ${WORKLOAD_KINDS.join(', ')})`);
  }
}

/** Replays recorded sample batches: epoch e draws accesses in proportion to the samples recorded
 *  in trace epoch e (a region run spreads its weight over its pages). Epochs with no samples
 *  reuse the previous distribution. Page i of the simulated memory is frame firstPfn + i. */
export class ReplayWorkload implements Workload {
  readonly name = 'trace';
  private readonly rng: Prng;
  private phase = -1;
  private table: AliasTable | null = null;
  private cached: Float64Array | null = null;

  /** `epochWeights[e]` holds per-page weights for epoch e, or null when nothing was sampled. */
  constructor(
    readonly pages: number,
    readonly firstPfn: number,
    private readonly epochWeights: Array<Float64Array | null>,
    seed: number,
  ) {
    checkPages(pages);
    if (!epochWeights.some((w) => w !== null)) throw new RangeError('trace: no samples to replay');
    this.rng = Prng.derive(seed, 'trace:stream');
  }

  get epochs(): number {
    return this.epochWeights.length;
  }

  /** The phase of an epoch is the last trace epoch at or before it that had samples. */
  phaseOf(epoch: number): number {
    const e = Math.min(epoch, this.epochWeights.length - 1);
    for (let i = e; i >= 0; i--) if (this.epochWeights[i]) return i;
    for (let i = e + 1; i < this.epochWeights.length; i++) if (this.epochWeights[i]) return i;
    return 0;
  }

  private readonly built = new Map<number, { pmf: Float64Array; table: AliasTable }>();

  private enter(epoch: number): void {
    const phase = this.phaseOf(epoch);
    if (phase === this.phase) return;
    const hit = this.built.get(phase);
    if (hit) {
      this.cached = hit.pmf;
      this.table = hit.table;
      this.phase = phase;
      return;
    }
    const w = this.epochWeights[phase] as Float64Array;
    let total = 0;
    for (let i = 0; i < w.length; i++) total += w[i];
    const pmf = new Float64Array(w.length);
    for (let i = 0; i < w.length; i++) pmf[i] = w[i] / total;
    this.cached = pmf;
    this.table = new AliasTable(pmf);
    this.phase = phase;
    this.built.set(phase, { pmf, table: this.table });
    for (const k of [...this.built.keys()]) if (k < phase - 1 || k > phase + 1) this.built.delete(k);
  }

  pmf(epoch: number): Float64Array {
    this.enter(epoch);
    return this.cached as Float64Array;
  }
  fill(out: Uint32Array, epoch: number): void {
    this.enter(epoch);
    const table = this.table as AliasTable;
    for (let i = 0; i < out.length; i++) out[i] = table.draw(this.rng);
  }
  describe() {
    return { firstPfn: this.firstPfn, traceEpochs: this.epochWeights.length };
  }
}
