// Per-VM migration: validate and translate a guest's decisions, then move the backing
// pages with move_pages(2) — demotions first (they make room), promotions within the DRAM
// budget and the host's rate limit — and account every page by the kernel's own status.
//
// The kernel is the source of truth for placement: refreshPlacement() asks move_pages in
// query mode where every page is, so a restarted agent rebuilds its view. The syscall is a
// parameter (`movePages`): tests inject EBUSY/ENOMEM/ESRCH there and nowhere else.
import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import type { PageRuns } from '../src/samples.js';
import { emptyRuns } from '../src/samples.js';
import { MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, movePages as nativeMovePages, type MovePagesFn } from '../native/addon.js';
import { PageBuffer, type TranslateResult } from './translate.js';

export const SINGLE_NODE_NOTE = 'single NUMA node: cross-node moves not possible here';
export const EACCES_FIX = 'needs CAP_SYS_NICE for shared pages (MPOL_MF_MOVE_ALL)';

const ENOENT = 2;
const EAGAIN = 11;
const ENOMEM = 12;
const EACCES = 13;
const EFAULT = 14;
const EBUSY = 16;

/** Why a page was not moved. The first five are move_pages statuses. */
export const MOVE_FAILURES = ['ENOENT', 'EBUSY', 'ENOMEM', 'EACCES', 'other', 'budget', 'rate-limited', 'outside-ram', 'no-target-node', 'vm-gone'] as const;
export type MoveFailure = (typeof MOVE_FAILURES)[number];

export interface DirectionOutcome {
  /** Pages handed to move_pages. */
  tried: number;
  /** Pages the kernel reports on a node of the target tier afterwards. */
  moved: number;
  /** Pages already on the target tier (nothing to do). */
  already: number;
  failed: Record<MoveFailure, number>;
}

export interface MigrationReport {
  epoch: number;
  promote: DirectionOutcome;
  demote: DirectionOutcome;
  dramPages: number;
  cxlPages: number;
  promoted: PageRuns;
  demoted: PageRuns;
  /** Pages of this decision already on the target tier (DRAM / CXL): nothing moved. */
  alreadyDram: PageRuns;
  alreadyCxl: PageRuns;
  crossNodeMoves: boolean;
  /** Pages waiting in the retry queue (EBUSY, transient). */
  retryPending: number;
  notes: string[];
}

/** Maps guest page runs to addresses in the target process (a QEMU VM or a local process). */
export interface PageTranslator {
  /** Pages in the dense numbering (placement array size). */
  readonly totalPages: number;
  translate(runs: PageRuns, targetNode: number, out: PageBuffer, maxPages?: number): TranslateResult;
  /** The address of every page, indexed by dense page number. */
  allPages(): Float64Array;
}

/** How many DRAM pages a VM may hold now. */
export interface DramBudget {
  /** Pages this VM may still promote. */
  availablePages(vm: VmMigrator): number;
  /** The grant announced to the guest. */
  grantPages(vm: VmMigrator): number;
}

export class FixedBudget implements DramBudget {
  constructor(readonly pages: number) {}
  availablePages(vm: VmMigrator): number {
    return Math.max(0, this.pages - vm.dramPages);
  }
  grantPages(): number {
    return this.pages;
  }
}

/** One DRAM pool shared by several VMs: promotions stop when the pool is full; each
 *  connected VM is told an equal share. */
export class SharedPool implements DramBudget {
  readonly members = new Set<VmMigrator>();
  constructor(readonly pages: number) {}
  availablePages(): number {
    let used = 0;
    for (const vm of this.members) used += vm.dramPages;
    return Math.max(0, this.pages - used);
  }
  grantPages(): number {
    return Math.floor(this.pages / Math.max(1, this.members.size));
  }
}

/** Host-wide migration rate limit (bytes/s, burst = one second). */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    readonly bytesPerSec: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = bytesPerSec;
    this.last = now();
  }
  /** Takes up to `pages` pages' worth of tokens; returns how many pages were granted. */
  take(pages: number, pageBytes = 4096): number {
    if (!Number.isFinite(this.bytesPerSec)) return pages;
    const t = this.now();
    this.tokens = Math.min(this.bytesPerSec, this.tokens + ((t - this.last) / 1000) * this.bytesPerSec);
    this.last = t;
    const granted = Math.min(pages, Math.floor(this.tokens / pageBytes));
    this.tokens -= granted * pageBytes;
    return granted;
  }
}

/** True when this process has CAP_SYS_NICE in its effective set (needed for MOVE_ALL). */
export function hasCapSysNice(statusText?: string): boolean {
  const text = statusText ?? readFileSync('/proc/self/status', 'utf8');
  const m = /^CapEff:\s*([0-9a-f]+)/m.exec(text);
  return m ? (BigInt(`0x${m[1]}`) & (1n << 23n)) !== 0n : false;
}

export interface MigratorOptions {
  name: string;
  /** The process whose pages move (QEMU, or the local workload). */
  pid: number;
  translator: PageTranslator;
  dramNodes: number[];
  cxlNodes: number[];
  budget: DramBudget;
  rateLimiter?: TokenBucket;
  movePages?: MovePagesFn;
  /** MPOL_MF_MOVE_ALL when we have CAP_SYS_NICE (default: detected). */
  flags?: number;
  /** Pages per move_pages call. */
  batchPages?: number;
  /** Bound on the EBUSY retry queue (pages). */
  maxRetryPages?: number;
  /** Attempts per page before a busy page is given up. */
  maxAttempts?: number;
  /** Most pages one decisions message may name (promote + demote). */
  maxPagesPerDecision?: number;
  /** Whether the target process is gone, asked when move_pages fails with something other
   *  than ESRCH (default: /proc with the real syscall; never with an injected one). */
  processGone?: (pid: number) => boolean;
  /** Query the named pages' placement before each decision (default true). */
  verifyPlacement?: boolean;
  now?: () => number;
}

const UNKNOWN = -1;
const ABSENT = -2;

function newOutcome(): DirectionOutcome {
  const failed = {} as Record<MoveFailure, number>;
  for (const f of MOVE_FAILURES) failed[f] = 0;
  return { tried: 0, moved: 0, already: 0, failed };
}

/** Counters for `vtier host status`. */
export interface MigratorStats {
  promotedPages: number;
  demotedPages: number;
  failures: Record<MoveFailure, number>;
  /** move_pages calls in move mode / in query mode. */
  moveCalls: number;
  queryCalls: number;
  /** Runs refused (outside guest RAM, malformed, too many pages). */
  refusedRuns: number;
  /** Decisions applied. */
  decisions: number;
  /** Wall time of move_pages calls in move mode: cumulative histogram over MOVE_LATENCY_BUCKETS_S. */
  moveLatency: { buckets: number[]; sumSeconds: number; count: number };
  lastError?: string;
}

/** Upper bounds (seconds) of the move-latency histogram. */
export const MOVE_LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export interface VmMigratorEvents {
  gone: [Error];
}

export class VmMigrator extends EventEmitter<VmMigratorEvents> {
  readonly name: string;
  pid: number;
  private translator: PageTranslator;
  readonly dramNodes: number[];
  readonly cxlNodes: number[];
  budget: DramBudget;
  private readonly rateLimiter?: TokenBucket;
  private readonly move: MovePagesFn;
  readonly flags: number;
  private readonly batchPages: number;
  private readonly maxRetryPages: number;
  private readonly maxAttempts: number;
  readonly maxPagesPerDecision: number;
  private readonly verifyPlacement: boolean;
  private readonly now: () => number;
  private readonly processGone: (pid: number) => boolean;

  /** Node of each page (dense numbering), UNKNOWN or ABSENT. */
  private placement: Int16Array;
  /** Tier of each node id: 1 = DRAM, 2 = CXL. */
  private readonly tierOfNode = new Uint8Array(1024);
  dramPages = 0;
  cxlPages = 0;
  /** Per-page stamp to drop duplicates within one decisions message. */
  private stamp: Uint32Array;
  private stampValue = 0;
  /** FIFO of promoted pages: the oldest are demoted first when DRAM runs out (ENOMEM). */
  private promotedFifo: Float64Array;
  private fifoHead = 0;
  private fifoLen = 0;
  private readonly retry = new PageBuffer(256);
  private retryAttempts = new Uint8Array(256);
  gone = false;
  readonly stats: MigratorStats = {
    promotedPages: 0,
    demotedPages: 0,
    failures: newOutcome().failed,
    moveCalls: 0,
    queryCalls: 0,
    refusedRuns: 0,
    decisions: 0,
    moveLatency: { buckets: MOVE_LATENCY_BUCKETS_S.map(() => 0), sumSeconds: 0, count: 0 },
  };
  /** (time ms, promoted pages, demoted pages) samples for MB/s. */
  private readonly history: Array<[number, number, number]> = [];

  constructor(o: MigratorOptions) {
    super();
    this.name = o.name;
    this.pid = o.pid;
    this.translator = o.translator;
    this.dramNodes = o.dramNodes;
    this.cxlNodes = o.cxlNodes;
    this.budget = o.budget;
    this.rateLimiter = o.rateLimiter;
    this.move = o.movePages ?? nativeMovePages;
    this.processGone = o.processGone ?? (o.movePages ? () => false : (pid) => processGone(pid));
    if (!(Number.isInteger(o.pid) && o.pid > 0)) throw new Error(`${o.name}: pid ${o.pid} is not a process id`);
    this.flags = o.flags ?? (hasCapSysNice() ? MPOL_MF_MOVE_ALL : MPOL_MF_MOVE);
    this.batchPages = o.batchPages ?? 8192;
    this.maxRetryPages = o.maxRetryPages ?? 65_536;
    this.maxAttempts = o.maxAttempts ?? 3;
    this.maxPagesPerDecision = o.maxPagesPerDecision ?? 1 << 20;
    this.verifyPlacement = o.verifyPlacement ?? true;
    this.now = o.now ?? (() => performance.now());
    for (const n of o.dramNodes) this.tierOfNode[n] = 1;
    for (const n of o.cxlNodes) {
      if (this.tierOfNode[n] === 1) throw new Error(`node ${n} is listed as both DRAM and CXL`);
      this.tierOfNode[n] = 2;
    }
    this.placement = new Int16Array(0);
    this.stamp = new Uint32Array(0);
    this.promotedFifo = new Float64Array(0);
    this.resize();
    if (o.budget instanceof SharedPool) o.budget.members.add(this);
  }

  private resize(): void {
    const n = this.translator.totalPages;
    this.placement = new Int16Array(n).fill(UNKNOWN);
    this.stamp = new Uint32Array(n);
    this.promotedFifo = new Float64Array(Math.min(n, 1 << 22));
    this.fifoHead = 0;
    this.fifoLen = 0;
    this.retry.clear();
    this.dramPages = 0;
    this.cxlPages = 0;
  }

  /** True when pages can really change tier here. */
  get crossNodeMoves(): boolean {
    return this.dramNodes.length > 0 && this.cxlNodes.length > 0;
  }

  get totalPages(): number {
    return this.translator.totalPages;
  }

  get retryPending(): number {
    return this.retry.count;
  }

  /** New layout (memory hotplug) or new process (QEMU restarted): forget everything. */
  retarget(pid: number, translator: PageTranslator): void {
    this.pid = pid;
    this.translator = translator;
    this.gone = false;
    this.resize();
  }

  /** Leaves the shared pool (VM removed). */
  detach(): void {
    if (this.budget instanceof SharedPool) this.budget.members.delete(this);
  }

  private setPlacement(index: number, node: number): void {
    const old = this.placement[index];
    if (old >= 0) {
      const t = this.tierOfNode[old];
      if (t === 1) this.dramPages--;
      else if (t === 2) this.cxlPages--;
    }
    this.placement[index] = node;
    if (node >= 0) {
      const t = this.tierOfNode[node];
      if (t === 1) this.dramPages++;
      else if (t === 2) this.cxlPages++;
    }
  }

  /** Asks the kernel where every page of the VM is (move_pages query mode). With a new
   *  translator (hotplug, restarted process), the switch happens only once its placement
   *  is known, so status never shows a half-built view. */
  async refreshPlacement(next?: { pid: number; translator: PageTranslator }): Promise<{ dramPages: number; cxlPages: number; absentPages: number; otherPages: number }> {
    const translator = next?.translator ?? this.translator;
    if (next) {
      this.pid = next.pid;
      this.gone = false;
    }
    const all = translator.allPages();
    let absent = 0;
    let other = 0;
    const placement = new Int16Array(all.length);
    for (let start = 0; start < all.length; start += 1 << 18) {
      const chunk = all.subarray(start, Math.min(all.length, start + (1 << 18)));
      const r = await this.callMove(chunk, null);
      if (!r) throw new Error(`${this.name}: process ${this.pid} is gone`);
      placement.set(r.status.map((s) => (s >= 0 ? s : ABSENT)), start);
    }
    if (translator !== this.translator || this.stamp.length !== translator.totalPages) {
      this.translator = translator;
      this.resize();
    }
    this.placement = placement;
    this.dramPages = 0;
    this.cxlPages = 0;
    for (let i = 0; i < placement.length; i++) {
      const node = placement[i];
      if (node < 0) absent++;
      else if (this.tierOfNode[node] === 1) this.dramPages++;
      else if (this.tierOfNode[node] === 2) this.cxlPages++;
      else other++;
    }
    return { dramPages: this.dramPages, cxlPages: this.cxlPages, absentPages: absent, otherPages: other };
  }

  /** One syscall; undefined when the process is gone (ESRCH), which marks the VM gone. */
  private async callMove(addresses: Float64Array, nodes: Int32Array | null): Promise<{ result: number; status: Int32Array } | undefined> {
    if (this.gone) return undefined;
    if (nodes) this.stats.moveCalls++;
    else this.stats.queryCalls++;
    const t0 = nodes ? performance.now() : 0;
    try {
      const r = await this.move(this.pid, addresses, nodes, nodes ? this.flags : 0);
      if (nodes) this.observeMoveLatency((performance.now() - t0) / 1000);
      return r;
    } catch (err) {
      const e = err as { code?: string; message?: string };
      // A QEMU killed mid-batch is first a zombie without memory: move_pages then fails with
      // EINVAL/EFAULT rather than ESRCH. Ask /proc before calling it anything but gone.
      if (e.code === 'ESRCH' || this.processGone(this.pid)) {
        this.gone = true;
        const gone = new Error(`${this.name}: process ${this.pid} exited (move_pages: ${e.code ?? 'error'})`);
        this.stats.lastError = gone.message;
        this.emit('gone', gone);
        return undefined;
      }
      this.stats.lastError = `move_pages: ${e.message ?? String(err)}`;
      throw err;
    }
  }

  private observeMoveLatency(seconds: number): void {
    const h = this.stats.moveLatency;
    h.count++;
    h.sumSeconds += seconds;
    for (let i = 0; i < MOVE_LATENCY_BUCKETS_S.length; i++) if (seconds <= MOVE_LATENCY_BUCKETS_S[i]) h.buckets[i]++;
  }

  /** Moves the pages buffer[from, to) to their target nodes; accounts each page. Pages the
   *  kernel reports busy go to the retry queue; ENOMEM pages are returned for make-room. */
  private async moveBuffer(buf: PageBuffer, outcome: DirectionOutcome, moved: PageBuffer, tier: 1 | 2, enomem?: PageBuffer, attempts?: Uint8Array): Promise<void> {
    for (let start = 0; start < buf.count; start += this.batchPages) {
      const end = Math.min(buf.count, start + this.batchPages);
      const n = end - start;
      outcome.tried += n;
      let r: { result: number; status: Int32Array } | undefined;
      try {
        // subarray: the addon copies the addresses before it returns.
        r = await this.callMove(buf.hva.subarray(start, end), buf.node.subarray(start, end));
      } catch {
        outcome.failed.other += n;
        continue;
      }
      if (!r) {
        outcome.failed['vm-gone'] += buf.count - start;
        outcome.tried -= n;
        return;
      }
      moved.ensure(moved.count + n);
      // Hot loop: locals only, placement counts updated inline.
      const status = r.status;
      const placement = this.placement;
      const tierOf = this.tierOfNode;
      const bufIndex = buf.index;
      const bufPfn = buf.gpaPfn;
      const movedPfn = moved.gpaPfn;
      const movedIndex = moved.index;
      let movedCount = moved.count;
      let dram = this.dramPages;
      let cxl = this.cxlPages;
      let nMoved = 0;
      let nAlready = 0;
      let nOther = 0;
      for (let k = 0; k < n; k++) {
        const i = start + k;
        const s = status[k];
        const index = bufIndex[i];
        if (s >= 0) {
          const prev = placement[index];
          const prevTier = prev >= 0 ? tierOf[prev] : 0;
          const newTier = tierOf[s];
          if (prev !== s) {
            if (prevTier === 1) dram--;
            else if (prevTier === 2) cxl--;
            if (newTier === 1) dram++;
            else if (newTier === 2) cxl++;
            placement[index] = s;
          }
          if (newTier !== tier) {
            nOther++;
          } else if (prev < 0 || prevTier === tier) {
            // Not resident before, or already on this tier: placed, not moved between tiers.
            nAlready++;
            copyPage(buf, i, this.alreadyBuf(tier));
          } else {
            nMoved++;
            movedPfn[movedCount] = bufPfn[i];
            movedIndex[movedCount] = index;
            movedCount++;
          }
          continue;
        }
        // Per-page failures: rare, handled out of line.
        this.dramPages = dram;
        this.cxlPages = cxl;
        if (s === -EBUSY || s === -EAGAIN) {
          outcome.failed.EBUSY++;
          this.queueRetry(buf, i, (attempts?.[i] ?? 0) + 1);
        } else if (s === -ENOMEM) {
          if (enomem) copyPage(buf, i, enomem);
          else outcome.failed.ENOMEM++;
        } else if (s === -ENOENT || s === -EFAULT) {
          this.setPlacement(index, ABSENT);
          outcome.failed.ENOENT++;
        } else if (s === -EACCES) {
          outcome.failed.EACCES++;
        } else {
          outcome.failed.other++;
        }
        dram = this.dramPages;
        cxl = this.cxlPages;
      }
      this.dramPages = dram;
      this.cxlPages = cxl;
      moved.count = movedCount;
      outcome.moved += nMoved;
      outcome.already += nAlready;
      outcome.failed.other += nOther;
    }
  }

  /** Reads the current node of the pages in buf (move_pages query mode) into placement. */
  private async queryPages(buf: PageBuffer): Promise<void> {
    for (let start = 0; start < buf.count; start += this.batchPages) {
      const end = Math.min(buf.count, start + this.batchPages);
      let r;
      try {
        r = await this.callMove(buf.hva.subarray(start, end), null);
      } catch {
        return; // the move itself will report the failure
      }
      if (!r) return;
      const status = r.status;
      const index = buf.index;
      for (let k = 0; k < end - start; k++) {
        const s = status[k];
        const i = index[start + k];
        if (this.placement[i] !== (s >= 0 ? s : ABSENT)) this.setPlacement(i, s >= 0 ? s : ABSENT);
      }
    }
  }

  private bufs?: { dBuf: PageBuffer; pBuf: PageBuffer; promotedBuf: PageBuffer; demotedBuf: PageBuffer };
  /** Pages of the current message found already on DRAM ([0]) / CXL ([1]); grown on demand. */
  private readonly already = [new PageBuffer(64), new PageBuffer(64)];

  private buffers(pages: number): { dBuf: PageBuffer; pBuf: PageBuffer; promotedBuf: PageBuffer; demotedBuf: PageBuffer } {
    this.bufs ??= { dBuf: new PageBuffer(1024), pBuf: new PageBuffer(1024), promotedBuf: new PageBuffer(1024), demotedBuf: new PageBuffer(1024) };
    for (const b of Object.values(this.bufs)) {
      b.clear();
      b.ensure(pages);
    }
    for (const b of this.already) b.clear();
    return this.bufs;
  }

  private alreadyBuf(tier: 1 | 2): PageBuffer {
    return this.already[tier - 1];
  }

  private queueRetry(buf: PageBuffer, i: number, attempts: number): void {
    if (attempts > this.maxAttempts || this.retry.count >= this.maxRetryPages) return;
    this.retry.ensure(this.retry.count + 1);
    if (this.retryAttempts.length < this.retry.hva.length) {
      const a = new Uint8Array(this.retry.hva.length);
      a.set(this.retryAttempts);
      this.retryAttempts = a;
    }
    this.retryAttempts[this.retry.count] = attempts;
    copyPage(buf, i, this.retry);
  }

  /** Drops pages already on the target tier and duplicates; returns the rest in place. */
  private filter(buf: PageBuffer, tier: 1 | 2, outcome: DirectionOutcome): void {
    let w = 0;
    for (let i = 0; i < buf.count; i++) {
      const index = buf.index[i];
      if (this.stamp[index] === this.stampValue) continue; // named twice in one message
      this.stamp[index] = this.stampValue;
      const node = this.placement[index];
      if (node >= 0 && this.tierOfNode[node] === tier) {
        outcome.already++;
        copyPage(buf, i, this.alreadyBuf(tier));
        continue;
      }
      if (w !== i) copyWithin(buf, i, w);
      w++;
    }
    buf.count = w;
  }

  /** Keeps the first `allowed` pages of buf, counting the rest as failed for `reason`. */
  private limit(buf: PageBuffer, allowed: number, outcome: DirectionOutcome, reason: MoveFailure): void {
    if (buf.count > allowed) {
      outcome.failed[reason] += buf.count - allowed;
      buf.count = Math.max(0, allowed);
    }
  }

  private takeRate(pages: number): number {
    return this.rateLimiter ? this.rateLimiter.take(pages) : pages;
  }

  /** Applies one decisions message. Never throws for bad guest input. */
  async apply(epoch: number, promote: PageRuns, demote: PageRuns): Promise<MigrationReport> {
    const report: MigrationReport = {
      epoch,
      promote: newOutcome(),
      demote: newOutcome(),
      dramPages: 0,
      cxlPages: 0,
      promoted: emptyRuns(0),
      demoted: emptyRuns(0),
      alreadyDram: emptyRuns(0),
      alreadyCxl: emptyRuns(0),
      crossNodeMoves: this.crossNodeMoves,
      retryPending: 0,
      notes: [],
    };
    const notes = new Set<string>();
    if (!this.crossNodeMoves) notes.add(this.dramNodes.length + this.cxlNodes.length <= 1 ? SINGLE_NODE_NOTE : 'no CXL node configured: demotions not possible');
    this.stampValue = (this.stampValue + 1) >>> 0 || 1;
    // Buffers sized once for the whole message (bounded by maxPagesPerDecision), reused.
    const want = Math.min(this.maxPagesPerDecision, sumPages(demote) + sumPages(promote));
    const { dBuf, pBuf, promotedBuf, demotedBuf } = this.buffers(want);
    const demoteNode = this.cxlNodes[0] ?? -1;
    const promoteNode = this.dramNodes[0] ?? -1;
    const dRes = this.translator.translate(demote, demoteNode, dBuf, this.maxPagesPerDecision);
    const pRes = this.translator.translate(promote, promoteNode, pBuf, Math.max(0, this.maxPagesPerDecision - dRes.pages));
    this.stats.refusedRuns += countRejected(dRes, demote, report.demote, this.translator.totalPages);
    this.stats.refusedRuns += countRejected(pRes, promote, report.promote, this.translator.totalPages);
    if (dRes.rejected.length + pRes.rejected.length > 0) notes.add(`${dRes.rejected.length + pRes.rejected.length} runs rejected (outside guest RAM, malformed or too many pages)`);

    if (this.gone) {
      report.demote.failed['vm-gone'] += dBuf.count;
      report.promote.failed['vm-gone'] += pBuf.count;
      notes.add(`${this.name} is gone (QEMU exited)`);
      return this.finish(report, notes, promotedBuf, demotedBuf);
    }

    // Retries first: they were decided earlier.
    await this.runRetries(report, promotedBuf, demotedBuf);

    // Placement truth for exactly these pages, from the kernel: pages may have moved since
    // the last look (kernel demotion under memory pressure, NUMA balancing, swap).
    if (this.verifyPlacement) {
      await this.queryPages(dBuf);
      await this.queryPages(pBuf);
      if (this.gone) {
        report.demote.failed['vm-gone'] += dBuf.count;
        report.promote.failed['vm-gone'] += pBuf.count;
        notes.add(`${this.name} is gone (QEMU exited)`);
        return this.finish(report, notes, promotedBuf, demotedBuf);
      }
    }

    // 1. Demotions (they make room in DRAM).
    this.filter(dBuf, 2, report.demote);
    if (demoteNode < 0) {
      report.demote.failed['no-target-node'] += dBuf.count;
      dBuf.count = 0;
    }
    this.limit(dBuf, this.takeRate(dBuf.count), report.demote, 'rate-limited');
    await this.moveBuffer(dBuf, report.demote, demotedBuf, 2);

    // 2. Promotions, within the budget.
    this.filter(pBuf, 1, report.promote);
    if (promoteNode < 0) {
      report.promote.failed['no-target-node'] += pBuf.count;
      pBuf.count = 0;
    }
    if (this.crossNodeMoves || pBuf.count === 0) {
      this.limit(pBuf, this.budget.availablePages(this), report.promote, 'budget');
    } else {
      // One tier only: promotion to the sole DRAM node is a plain move (pages not yet
      // resident get placed); the budget cannot be enforced without a slower tier.
    }
    this.limit(pBuf, this.takeRate(pBuf.count), report.promote, 'rate-limited');
    const enomem = new PageBuffer(64);
    await this.moveBuffer(pBuf, report.promote, promotedBuf, 1, enomem);
    if (enomem.count > 0) await this.makeRoomAndRetry(enomem, report, promotedBuf, demotedBuf, notes);

    this.pushPromoted(promotedBuf);
    if (report.promote.failed.EACCES + report.demote.failed.EACCES > 0) notes.add(`EACCES: ${EACCES_FIX}`);
    if (this.gone) notes.add(`${this.name} is gone (QEMU exited)`);
    return this.finish(report, notes, promotedBuf, demotedBuf);
  }

  private finish(report: MigrationReport, notes: Set<string>, promotedBuf: PageBuffer, demotedBuf: PageBuffer): MigrationReport {
    report.dramPages = this.dramPages;
    report.cxlPages = this.cxlPages;
    report.promoted = toRuns(promotedBuf);
    report.demoted = toRuns(demotedBuf);
    report.alreadyDram = toRuns(this.already[0]);
    report.alreadyCxl = toRuns(this.already[1]);
    report.retryPending = this.retry.count;
    if (report.retryPending > 0) notes.add(`${report.retryPending} busy pages queued for retry`);
    report.notes = [...notes];
    this.stats.promotedPages += promotedBuf.count;
    this.stats.demotedPages += demotedBuf.count;
    this.stats.decisions++;
    for (const f of MOVE_FAILURES) this.stats.failures[f] += report.promote.failed[f] + report.demote.failed[f];
    const t = this.now();
    this.history.push([t, promotedBuf.count, demotedBuf.count]);
    while (this.history.length > 0 && t - this.history[0][0] > 10_000) this.history.shift();
    return report;
  }

  /** Promoted / demoted MB/s over the last 10 s. */
  rates(): { promotedBytesPerSec: number; demotedBytesPerSec: number } {
    const t = this.now();
    let p = 0;
    let d = 0;
    for (const [when, pp, dd] of this.history) {
      if (t - when <= 10_000) {
        p += pp;
        d += dd;
      }
    }
    return { promotedBytesPerSec: (p * 4096) / 10, demotedBytesPerSec: (d * 4096) / 10 };
  }

  private async runRetries(report: MigrationReport, promotedBuf: PageBuffer, demotedBuf: PageBuffer): Promise<void> {
    if (this.retry.count === 0) return;
    const pending = this.retry;
    const attempts = this.retryAttempts;
    const count = pending.count;
    // Split by direction into fresh buffers; the queue refills from their statuses.
    const toCxl = new PageBuffer(count);
    const toDram = new PageBuffer(count);
    const aCxl = new Uint8Array(count);
    const aDram = new Uint8Array(count);
    for (let i = 0; i < count; i++) {
      const tier = this.tierOfNode[pending.node[i]];
      const dst = tier === 2 ? toCxl : toDram;
      (tier === 2 ? aCxl : aDram)[dst.count] = attempts[i];
      copyPage(pending, i, dst);
    }
    this.retry.clear();
    const cxlOutcome = newOutcome();
    const dramOutcome = newOutcome();
    await this.moveBuffer(toCxl, cxlOutcome, demotedBuf, 2, undefined, aCxl);
    const dramAllowed = this.crossNodeMoves ? this.budget.availablePages(this) : toDram.count;
    if (toDram.count > dramAllowed) {
      report.promote.failed.budget += toDram.count - dramAllowed;
      toDram.count = dramAllowed;
    }
    await this.moveBuffer(toDram, dramOutcome, promotedBuf, 1, undefined, aDram);
    report.demote.moved += cxlOutcome.moved;
    report.promote.moved += dramOutcome.moved;
  }

  /** DRAM is full: demote the oldest promoted pages (not named in this message) to make room,
   *  try the next DRAM node first if there is one, then retry the ENOMEM pages once. */
  private async makeRoomAndRetry(enomem: PageBuffer, report: MigrationReport, promotedBuf: PageBuffer, demotedBuf: PageBuffer, notes: Set<string>): Promise<void> {
    for (let k = 1; k < this.dramNodes.length && enomem.count > 0; k++) {
      enomem.node.fill(this.dramNodes[k], 0, enomem.count);
      const again = new PageBuffer(64);
      const o = newOutcome();
      await this.moveBuffer(enomem, o, promotedBuf, 1, again);
      report.promote.moved += o.moved;
      mergeFailures(report.promote, o);
      enomem = again;
    }
    if (enomem.count === 0) return;
    if (this.cxlNodes.length === 0) {
      report.promote.failed.ENOMEM += enomem.count;
      return;
    }
    const victims = new PageBuffer(enomem.count);
    const all = this.translator.allPages();
    while (victims.count < enomem.count && this.fifoLen > 0) {
      const index = this.promotedFifo[this.fifoHead];
      this.fifoHead = (this.fifoHead + 1) % this.promotedFifo.length;
      this.fifoLen--;
      const node = this.placement[index];
      if (this.stamp[index] === this.stampValue || node < 0 || this.tierOfNode[node] !== 1) continue;
      const v = victims.count++;
      victims.hva[v] = all[index];
      victims.index[v] = index;
      victims.gpaPfn[v] = -1;
      victims.node[v] = this.cxlNodes[0];
    }
    if (victims.count > 0) {
      const o = newOutcome();
      const movedVictims = new PageBuffer(victims.count);
      await this.moveBuffer(victims, o, movedVictims, 2);
      notes.add(`DRAM full (ENOMEM): demoted ${o.moved} older pages to make room`);
      report.demote.moved += o.moved;
      this.stats.demotedPages += o.moved;
    }
    enomem.node.fill(this.dramNodes[0], 0, enomem.count);
    const o = newOutcome();
    const still = new PageBuffer(64);
    await this.moveBuffer(enomem, o, promotedBuf, 1, still);
    report.promote.moved += o.moved;
    mergeFailures(report.promote, o);
    report.promote.failed.ENOMEM += still.count;
  }

  /** Appends promoted pages to the FIFO (oldest dropped when full). */
  private pushPromoted(buf: PageBuffer): void {
    const cap = this.promotedFifo.length;
    if (cap === 0) return;
    const fifo = this.promotedFifo;
    const index = buf.index;
    let head = this.fifoHead;
    let len = this.fifoLen;
    let tail = (head + len) % cap;
    for (let i = 0; i < buf.count; i++) {
      if (buf.gpaPfn[i] < 0) continue;
      fifo[tail] = index[i];
      tail = tail + 1 === cap ? 0 : tail + 1;
      if (len === cap) head = head + 1 === cap ? 0 : head + 1;
      else len++;
    }
    this.fifoHead = head;
    this.fifoLen = len;
  }

}

/** The process exited or is a zombie (no memory left to move), by /proc. */
export function processGone(pid: number, procRoot = '/proc'): boolean {
  try {
    const stat = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

function sumPages(runs: PageRuns): number {
  let n = 0;
  for (let i = 0; i < runs.count; i++) n += runs.pages[i];
  return n;
}

function mergeFailures(into: DirectionOutcome, from: DirectionOutcome): void {
  for (const f of MOVE_FAILURES) into.failed[f] += from.failed[f];
}

function copyPage(src: PageBuffer, i: number, dst: PageBuffer): void {
  dst.ensure(dst.count + 1);
  const o = dst.count++;
  dst.hva[o] = src.hva[i];
  dst.index[o] = src.index[i];
  dst.gpaPfn[o] = src.gpaPfn[i];
  dst.node[o] = src.node[i];
}

function copyWithin(buf: PageBuffer, from: number, to: number): void {
  buf.hva[to] = buf.hva[from];
  buf.index[to] = buf.index[from];
  buf.gpaPfn[to] = buf.gpaPfn[from];
  buf.node[to] = buf.node[from];
}

/** Refused runs count as the pages they name, but never more than the VM has: a guest
 *  claiming 2^32 pages per run cannot inflate the counters past its own RAM per message. */
function countRejected(res: TranslateResult, runs: PageRuns, outcome: DirectionOutcome, ramPages: number): number {
  let pages = 0;
  for (const r of res.rejected) {
    const n = runs.pages[r.run];
    pages += Math.min(Number.isFinite(n) && n > 0 ? n : 1, ramPages);
  }
  outcome.failed['outside-ram'] += Math.min(pages, Math.max(ramPages, 1));
  return res.rejected.length;
}

/** Compresses moved pages (gpaPfn, in any order) into sorted runs. Pages usually arrive
 *  in ascending order (the guest sends sorted runs), so sorting is skipped when they do. */
function toRuns(buf: PageBuffer): PageRuns {
  let pfns = buf.gpaPfn.subarray(0, buf.count);
  let sorted = true;
  for (let i = 1; i < pfns.length; i++) {
    if (pfns[i] < pfns[i - 1]) {
      sorted = false;
      break;
    }
  }
  if (!sorted) pfns = Float64Array.from(pfns).sort();
  const runs = emptyRuns(0);
  let count = 0;
  const first = new Float64Array(Math.min(pfns.length, 1 << 16) || 1);
  const lengths = new Uint32Array(first.length);
  let gpa = first;
  let len = lengths;
  for (let i = 0; i < pfns.length; i++) {
    const pfn = pfns[i];
    if (pfn < 0) continue; // pages demoted to make room are not the guest's request
    const last = count - 1;
    if (last >= 0 && gpa[last] + len[last] === pfn && len[last] < 0xffffffff) {
      len[last]++;
    } else if (last < 0 || gpa[last] + len[last] <= pfn) {
      if (count === gpa.length) {
        const g2 = new Float64Array(gpa.length * 2);
        const l2 = new Uint32Array(gpa.length * 2);
        g2.set(gpa);
        l2.set(len);
        gpa = g2;
        len = l2;
      }
      gpa[count] = pfn;
      len[count] = 1;
      count++;
    }
  }
  runs.count = count;
  runs.gpaPfn = gpa;
  runs.pages = len;
  return runs;
}
