// DAMON control through /sys/kernel/mm/damon/admin. Two ways to get physical-address
// access data:
//  - own:     no kdamond runs: configure one (paddr ops, System RAM regions), every write
//             journaled so the previous state comes back on exit, signal, error or crash;
//  - observe: a paddr kdamond already runs (the kernel cannot add a kdamond while one
//             runs): configure nothing, read its settings, and listen to its
//             damon:damon_aggregated events filtered by its pid.
// Every path sits under an injectable sysfs root so the restore logic runs on a fake tree.
// Kernel versions differ (test/fixtures/damon/<version>/ mirror them): 6.1 has the core
// files only; 6.15+ adds monitoring_attrs/intervals/intervals_goal/ (auto-tuned intervals
// when access_bp > 0); 6.18 adds contexts/N/addr_unit (region addresses, in sysfs and in
// the damon_aggregated tracepoint, are in units of addr_unit bytes). Only files that exist
// are read or written.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { type PageRuns } from '../src/samples.js';
import { runsToByteRanges } from './iomem.js';
import { KernelStateJournal } from './kernel-state.js';

export type DamonMode = 'own' | 'observe';

export interface RunningKdamond {
  index: number;
  pid: number;
  ops: string;
  sampleUs: number;
  aggrUs: number;
}

export interface DamonStatus {
  available: boolean;
  paddr: boolean;
  vaddr: boolean;
  /** A kdamond runs: the kernel refuses to add or remove kdamonds now. */
  busy: boolean;
  /** kdamond directories exist (running or not): configuring our own would replace them. */
  configured: number;
  running: RunningKdamond[];
  detail: string;
}

export class DamonError extends Error {
  constructor(
    message: string,
    readonly code: 'damon-busy' | 'damon-unavailable' | 'damon-setup' = 'damon-setup',
  ) {
    super(message);
    this.name = 'DamonError';
  }
}

export function adminDir(sysRoot = '/sys'): string {
  return join(sysRoot, 'kernel', 'mm', 'damon', 'admin');
}

function readTrim(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function readInt(path: string): number {
  const text = readTrim(path);
  const value = text === undefined ? NaN : Number(text);
  return Number.isFinite(value) ? value : -1;
}

/** Which DAMON operation sets the kernel has: sysfs lists them only inside a context. */
function availableOps(admin: string, sysRoot: string): { paddr: boolean; vaddr: boolean; how: string } {
  const kdamonds = join(admin, 'kdamonds');
  for (const k of listIndexDirs(kdamonds)) {
    for (const c of listIndexDirs(join(kdamonds, k, 'contexts'))) {
      const ops = readTrim(join(kdamonds, k, 'contexts', c, 'avail_operations'));
      if (ops !== undefined) {
        const names = ops.split(/\s+/);
        return { paddr: names.includes('paddr'), vaddr: names.includes('vaddr'), how: 'avail_operations' };
      }
    }
  }
  // No context to ask: the kernel config tells (only for the real root).
  if (sysRoot === '/sys') {
    try {
      const config = gunzipSync(readFileSync('/proc/config.gz')).toString('utf8');
      return { paddr: /^CONFIG_DAMON_PADDR=y/m.test(config), vaddr: /^CONFIG_DAMON_VADDR=y/m.test(config), how: '/proc/config.gz' };
    } catch {
      /* fall through */
    }
  }
  return { paddr: true, vaddr: true, how: 'assumed (no context to ask)' };
}

function listIndexDirs(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((name) => /^\d+$/.test(name))
      .sort((a, b) => Number(a) - Number(b));
  } catch {
    return [];
  }
}

/** What DAMON offers here and who is using it. Reads only. */
export function damonStatus(sysRoot = '/sys'): DamonStatus {
  const admin = adminDir(sysRoot);
  const nrPath = join(admin, 'kdamonds', 'nr_kdamonds');
  if (!existsSync(nrPath)) {
    return { available: false, paddr: false, vaddr: false, busy: false, configured: 0, running: [], detail: `no DAMON sysfs interface at ${admin} (kernel without CONFIG_DAMON_SYSFS)` };
  }
  const configured = Math.max(0, readInt(nrPath));
  const running: RunningKdamond[] = [];
  for (const k of listIndexDirs(join(admin, 'kdamonds'))) {
    const dir = join(admin, 'kdamonds', k);
    if (readTrim(join(dir, 'state')) !== 'on') continue;
    const ctx = join(dir, 'contexts', '0');
    running.push({
      index: Number(k),
      pid: readInt(join(dir, 'pid')),
      ops: readTrim(join(ctx, 'operations')) ?? '?',
      sampleUs: readInt(join(ctx, 'monitoring_attrs', 'intervals', 'sample_us')),
      aggrUs: readInt(join(ctx, 'monitoring_attrs', 'intervals', 'aggr_us')),
    });
  }
  const ops = availableOps(admin, sysRoot);
  const busy = running.length > 0;
  const parts = [`ops: ${[ops.paddr && 'paddr', ops.vaddr && 'vaddr'].filter(Boolean).join(', ') || 'none'} (${ops.how})`];
  if (busy) {
    parts.push(
      `running: ${running.map((r) => `kdamond.${r.index} (pid ${r.pid}, ${r.ops}, sample ${r.sampleUs / 1000} ms, aggr ${r.aggrUs / 1000} ms)`).join(', ')}`,
    );
  } else if (configured > 0) {
    parts.push(`${configured} kdamond(s) configured but off`);
  } else {
    parts.push('idle');
  }
  return { available: true, paddr: ops.paddr, vaddr: ops.vaddr, busy, configured, running, detail: parts.join('; ') };
}

export function busyMessage(status: DamonStatus): string {
  const r = status.running[0];
  return `DAMON busy: kdamond.${r.index} (pid ${r.pid}, ${r.ops}) is running; the kernel cannot add a kdamond while one runs (use --damon-mode observe)`;
}

export interface DamonOwnOptions {
  /** Sampling interval (default 5 ms, DAMON's default). */
  sampleUs?: number;
  /** Aggregation interval (default 100 ms). */
  aggrUs?: number;
  /** Operations update interval (default 1 s). */
  updateUs?: number;
  minRegions?: number;
  maxRegions?: number;
}

/** monitoring_attrs/intervals/intervals_goal (6.15+): DAMON tunes sample and aggregation
 *  intervals itself (same ratio) while accessBp > 0. */
export interface IntervalsGoal {
  accessBp: number;
  aggrs: number;
  minSampleUs: number;
  maxSampleUs: number;
}

export interface DamonSessionInfo {
  mode: DamonMode;
  kdamondIndex: number;
  kdamondPid: number;
  ops: string;
  sampleUs: number;
  aggrUs: number;
  updateUs: number;
  minRegions: number;
  maxRegions: number;
  /** Configured target regions, physical byte ranges [start, end) (scaled by addrUnit). */
  targetRanges: Array<{ start: number; end: number }>;
  /** Bytes per DAMON address unit (contexts/N/addr_unit, 6.18+; 1 where the file is absent). */
  addrUnit: number;
  /** null where the kernel has no intervals_goal directory. */
  intervalsGoal: IntervalsGoal | null;
}

export const DAMON_OWN_DEFAULTS = { sampleUs: 5_000, aggrUs: 100_000, updateUs: 1_000_000, minRegions: 10, maxRegions: 1_000 } as const;
/** DAMON caps regions per target; keep the region list small enough to write quickly. */
const MAX_TARGET_REGIONS = 256;

function checkedInt(value: number, what: string, min: number, max: number): number {
  if (!(Number.isSafeInteger(value) && value >= min && value <= max)) throw new TypeError(`${what}: ${value} is not an integer in [${min}, ${max}]`);
  return value;
}

/**
 * Configures and starts our own paddr kdamond over `ramRanges`. Every write goes through
 * the journal (which the caller restores). Fails with DamonError('damon-busy') when a
 * kdamond runs, before writing anything.
 */
export function startOwnKdamond(journal: KernelStateJournal, ramRanges: PageRuns, options: DamonOwnOptions = {}, sysRoot = '/sys'): DamonSessionInfo {
  const status = damonStatus(sysRoot);
  if (!status.available) throw new DamonError(status.detail, 'damon-unavailable');
  if (status.busy) throw new DamonError(busyMessage(status), 'damon-busy');
  if (status.configured > 0) {
    throw new DamonError(
      `DAMON in use: ${status.configured} kdamond(s) configured (off) by someone else; vtier will not replace them (use --damon-mode observe after they start, or remove them)`,
      'damon-busy',
    );
  }
  if (!status.paddr) throw new DamonError('DAMON here has no physical-address (paddr) operations (CONFIG_DAMON_PADDR)', 'damon-unavailable');
  const sampleUs = checkedInt(options.sampleUs ?? DAMON_OWN_DEFAULTS.sampleUs, 'damon sampleUs', 100, 60_000_000);
  const aggrUs = checkedInt(options.aggrUs ?? DAMON_OWN_DEFAULTS.aggrUs, 'damon aggrUs', sampleUs, 600_000_000);
  const updateUs = checkedInt(options.updateUs ?? DAMON_OWN_DEFAULTS.updateUs, 'damon updateUs', aggrUs, 3_600_000_000);
  const minRegions = checkedInt(options.minRegions ?? DAMON_OWN_DEFAULTS.minRegions, 'damon minRegions', 3, 1_000_000);
  const maxRegions = checkedInt(options.maxRegions ?? DAMON_OWN_DEFAULTS.maxRegions, 'damon maxRegions', minRegions, 1_000_000);
  const targetRanges = runsToByteRanges(ramRanges);
  if (targetRanges.length === 0) throw new DamonError('DAMON: no RAM ranges to monitor');
  if (targetRanges.length > MAX_TARGET_REGIONS) throw new DamonError(`DAMON: ${targetRanges.length} RAM ranges (more than ${MAX_TARGET_REGIONS})`);

  const admin = adminDir(sysRoot);
  const kdamonds = join(admin, 'kdamonds');
  const k = join(kdamonds, '0');
  const ctx = join(k, 'contexts', '0');
  const target = join(ctx, 'targets', '0');
  // Order matters: each count creates the directories the next writes go to, and the
  // journal restores newest-first, so state goes off before the directories are removed.
  journal.set(join(kdamonds, 'nr_kdamonds'), 1);
  journal.set(join(k, 'contexts', 'nr_contexts'), 1);
  journal.set(join(ctx, 'operations'), 'paddr');
  journal.set(join(ctx, 'monitoring_attrs', 'intervals', 'sample_us'), sampleUs);
  journal.set(join(ctx, 'monitoring_attrs', 'intervals', 'aggr_us'), aggrUs);
  journal.set(join(ctx, 'monitoring_attrs', 'intervals', 'update_us'), updateUs);
  journal.set(join(ctx, 'monitoring_attrs', 'nr_regions', 'min'), minRegions);
  journal.set(join(ctx, 'monitoring_attrs', 'nr_regions', 'max'), maxRegions);
  journal.set(join(ctx, 'targets', 'nr_targets'), 1);
  // Files only some versions have: byte addresses (addr_unit 1, 6.18+) and fixed intervals
  // (intervals_goal off, 6.15+), so the tracepoint's addresses and our intervals hold.
  const addrUnitPath = join(ctx, 'addr_unit');
  if (existsSync(addrUnitPath)) journal.set(addrUnitPath, 1);
  const accessBpPath = join(ctx, 'monitoring_attrs', 'intervals', 'intervals_goal', 'access_bp');
  if (existsSync(accessBpPath)) journal.set(accessBpPath, 0);
  journal.set(join(target, 'regions', 'nr_regions'), targetRanges.length);
  targetRanges.forEach((range, i) => {
    journal.set(join(target, 'regions', String(i), 'start'), range.start);
    journal.set(join(target, 'regions', String(i), 'end'), range.end);
  });
  journal.set(join(k, 'state'), 'on');
  const pid = readInt(join(k, 'pid'));
  if (!(pid > 0)) throw new DamonError(`DAMON: kdamond.0 did not start (pid file reads ${pid})`);
  const intervalsGoal = readIntervalsGoal(ctx);
  return { mode: 'own', kdamondIndex: 0, kdamondPid: pid, ops: 'paddr', sampleUs, aggrUs, updateUs, minRegions, maxRegions, targetRanges, addrUnit: 1, intervalsGoal };
}

function readIntervalsGoal(ctx: string): IntervalsGoal | null {
  const dir = join(ctx, 'monitoring_attrs', 'intervals', 'intervals_goal');
  if (!existsSync(join(dir, 'access_bp'))) return null;
  return {
    accessBp: readInt(join(dir, 'access_bp')),
    aggrs: readInt(join(dir, 'aggrs')),
    minSampleUs: readInt(join(dir, 'min_sample_us')),
    maxSampleUs: readInt(join(dir, 'max_sample_us')),
  };
}

/** Largest byte address a JS number holds exactly. */
const MAX_EXACT_BYTES = Number.MAX_SAFE_INTEGER;

/** contexts/N/addr_unit: 1 where the file is absent (before 6.18). */
function readAddrUnit(ctx: string): number {
  const path = join(ctx, 'addr_unit');
  if (!existsSync(path)) return 1;
  const unit = readInt(path);
  if (!(Number.isSafeInteger(unit) && unit >= 1)) throw new DamonError(`DAMON: ${path} reads ${readTrim(path) ?? '?'}, not a positive address unit`, 'damon-unavailable');
  return unit;
}

/** What one kdamond looks like now (sysfs): read each epoch to notice restarts. */
export interface KdamondSnapshot {
  /** 'gone': its directory (or nr_kdamonds) no longer has it. */
  state: 'on' | 'off' | 'gone';
  pid: number;
  ops: string;
  sampleUs: number;
  aggrUs: number;
  addrUnit: number;
  intervalsGoal: IntervalsGoal | null;
}

export function readKdamond(index: number, sysRoot = '/sys'): KdamondSnapshot {
  const kdamonds = join(adminDir(sysRoot), 'kdamonds');
  const dir = join(kdamonds, String(index));
  const state = readTrim(join(dir, 'state'));
  const nr = readInt(join(kdamonds, 'nr_kdamonds'));
  if (state === undefined || nr <= index) {
    return { state: 'gone', pid: -1, ops: '?', sampleUs: -1, aggrUs: -1, addrUnit: 1, intervalsGoal: null };
  }
  const ctx = join(dir, 'contexts', '0');
  let addrUnit = 1;
  try {
    addrUnit = readAddrUnit(ctx);
  } catch {
    addrUnit = -1;
  }
  return {
    state: state === 'on' ? 'on' : 'off',
    pid: readInt(join(dir, 'pid')),
    ops: readTrim(join(ctx, 'operations')) ?? '?',
    sampleUs: readInt(join(ctx, 'monitoring_attrs', 'intervals', 'sample_us')),
    aggrUs: readInt(join(ctx, 'monitoring_attrs', 'intervals', 'aggr_us')),
    addrUnit,
    intervalsGoal: readIntervalsGoal(ctx),
  };
}

/** What changed since the last look at the observed kdamond. */
export type KdamondEvent =
  | { kind: 'restarted'; fromPid: number; toPid: number; snapshot: KdamondSnapshot }
  | { kind: 'stopped'; pid: number; why: 'off' | 'gone' }
  | { kind: 'not-paddr'; ops: string }
  | { kind: 'stalled'; pid: number; silentMs: number; expectedMs: number }
  | { kind: 'resumed'; pid: number }
  | { kind: 'intervals'; sampleUs: number; aggrUs: number; fromSampleUs: number; fromAggrUs: number };

/**
 * Watches one kdamond through sysfs (reads only): its pid changes when it restarts (the
 * BPF filter is bound to the old one), it stops ('off') or disappears, it stops delivering
 * aggregations while 'on', or (intervals_goal active) its intervals change.
 */
export class KdamondWatch {
  pid: number;
  sampleUs: number;
  aggrUs: number;
  private down: 'off' | 'gone' | undefined;
  private stalled = false;
  private sinceMs: number;

  constructor(
    readonly index: number,
    info: { kdamondPid: number; sampleUs: number; aggrUs: number },
    private readonly sysRoot = '/sys',
    nowMs = Date.now(),
  ) {
    this.pid = info.kdamondPid;
    this.sampleUs = info.sampleUs;
    this.aggrUs = info.aggrUs;
    this.sinceMs = nowMs;
  }

  /** Aggregation interval measured between aggregations (intervals_goal tunes it without
   *  sysfs showing it until the owner asks): the stall bound follows the longer one. */
  measuredAggrUs: number | undefined;

  /** Silence longer than this while 'on' is a stall: three aggregations and a second. */
  stallAfterMs(): number {
    return (3 * Math.max(this.aggrUs, this.measuredAggrUs ?? 0, 0)) / 1000 + 1000;
  }

  /** One look. lastAggregationMs: when the last aggregation arrived (undefined: none yet). */
  check(lastAggregationMs: number | undefined, nowMs = Date.now()): KdamondEvent[] {
    const now = readKdamond(this.index, this.sysRoot);
    const events: KdamondEvent[] = [];
    if (now.state !== 'on') {
      if (this.down !== now.state) events.push({ kind: 'stopped', pid: this.pid, why: now.state });
      this.down = now.state;
      this.stalled = false;
      return events;
    }
    if (now.ops !== 'paddr') return [{ kind: 'not-paddr', ops: now.ops }];
    if (now.pid > 0 && now.pid !== this.pid) {
      events.push({ kind: 'restarted', fromPid: this.pid, toPid: now.pid, snapshot: now });
      this.pid = now.pid;
      this.down = undefined;
      this.stalled = false;
      this.sinceMs = nowMs;
    } else if (this.down) {
      // back on with the same pid (a restart that reused it): the filter still matches
      this.down = undefined;
      this.sinceMs = nowMs;
      events.push({ kind: 'resumed', pid: this.pid });
    }
    if (now.sampleUs > 0 && now.aggrUs > 0 && (now.sampleUs !== this.sampleUs || now.aggrUs !== this.aggrUs)) {
      events.push({ kind: 'intervals', sampleUs: now.sampleUs, aggrUs: now.aggrUs, fromSampleUs: this.sampleUs, fromAggrUs: this.aggrUs });
      this.sampleUs = now.sampleUs;
      this.aggrUs = now.aggrUs;
    }
    const last = Math.max(lastAggregationMs ?? -Infinity, this.sinceMs);
    const silentMs = nowMs - last;
    if (silentMs > this.stallAfterMs()) {
      if (!this.stalled) events.push({ kind: 'stalled', pid: this.pid, silentMs, expectedMs: Math.max(this.aggrUs, this.measuredAggrUs ?? 0) / 1000 });
      this.stalled = true;
    } else if (this.stalled && lastAggregationMs !== undefined && lastAggregationMs > this.sinceMs) {
      this.stalled = false;
      events.push({ kind: 'resumed', pid: this.pid });
    }
    return events;
  }
}

/** Reads a running paddr kdamond's settings. Writes nothing. */
export function observeKdamond(sysRoot = '/sys', status = damonStatus(sysRoot)): DamonSessionInfo {
  if (!status.available) throw new DamonError(status.detail, 'damon-unavailable');
  const running = status.running.find((r) => r.ops === 'paddr');
  if (!running) {
    throw new DamonError(
      status.busy
        ? `DAMON observe: no running kdamond uses paddr (running: ${status.running.map((r) => `kdamond.${r.index} ${r.ops}`).join(', ')})`
        : 'DAMON observe: no kdamond is running (use --damon-mode own)',
      'damon-unavailable',
    );
  }
  return readSession(sysRoot, running);
}

/** The settings of a running kdamond (observe mode, and again after it restarts). */
export function readSession(sysRoot: string, running: RunningKdamond): DamonSessionInfo {
  const ctx = join(adminDir(sysRoot), 'kdamonds', String(running.index), 'contexts', '0');
  const addrUnit = readAddrUnit(ctx);
  const targetRanges: Array<{ start: number; end: number }> = [];
  for (const t of listIndexDirs(join(ctx, 'targets'))) {
    const regions = join(ctx, 'targets', t, 'regions');
    for (const r of listIndexDirs(regions)) {
      const start = readInt(join(regions, r, 'start'));
      const end = readInt(join(regions, r, 'end'));
      if (!(start >= 0 && end > start)) continue;
      if (end * addrUnit > MAX_EXACT_BYTES) {
        throw new DamonError(
          `DAMON observe: kdamond.${running.index} region ${r} ends at ${end} x addr_unit ${addrUnit} bytes, past 2^53: vtier cannot scale its addresses exactly`,
          'damon-unavailable',
        );
      }
      targetRanges.push({ start: start * addrUnit, end: end * addrUnit });
    }
  }
  return {
    mode: 'observe',
    kdamondIndex: running.index,
    kdamondPid: running.pid,
    ops: running.ops,
    sampleUs: running.sampleUs,
    aggrUs: running.aggrUs,
    updateUs: readInt(join(ctx, 'monitoring_attrs', 'intervals', 'update_us')),
    minRegions: readInt(join(ctx, 'monitoring_attrs', 'nr_regions', 'min')),
    maxRegions: readInt(join(ctx, 'monitoring_attrs', 'nr_regions', 'max')),
    targetRanges,
    addrUnit,
    intervalsGoal: readIntervalsGoal(ctx),
  };
}

/** Picks the mode for 'auto' or checks a requested one; never writes. */
export function resolveDamonMode(requested: 'auto' | DamonMode, status: DamonStatus): DamonMode {
  if (!status.available) throw new DamonError(status.detail, 'damon-unavailable');
  if (requested === 'own') {
    if (status.busy) throw new DamonError(busyMessage(status), 'damon-busy');
    return 'own';
  }
  if (requested === 'observe') return 'observe';
  if (!status.busy && status.configured === 0) return 'own';
  if (status.running.some((r) => r.ops === 'paddr')) return 'observe';
  if (status.busy) throw new DamonError(busyMessage(status).replace(' (use --damon-mode observe)', ' and it does not monitor physical addresses'), 'damon-busy');
  return 'own'; // configured-but-off: startOwnKdamond explains the refusal
}

/** One line for trace headers and recommendations. */
export function describeSession(info: DamonSessionInfo): string {
  const ranges = info.targetRanges.map((r) => `0x${r.start.toString(16)}-0x${r.end.toString(16)}`).join(', ');
  const who = info.mode === 'own' ? 'our own kdamond' : `someone else's kdamond (observed, not configured by vtier)`;
  const unit = info.addrUnit !== 1 ? `, addr_unit ${info.addrUnit} (addresses scaled to bytes)` : '';
  const goal = info.intervalsGoal && info.intervalsGoal.accessBp > 0 ? `, intervals auto-tuned by DAMON (access_bp ${info.intervalsGoal.accessBp}: re-read each epoch)` : '';
  return `DAMON ${info.mode}: ${who} kdamond.${info.kdamondIndex} pid ${info.kdamondPid}, ${info.ops}, sample ${info.sampleUs / 1000} ms, aggr ${info.aggrUs / 1000} ms${goal}, regions ${info.minRegions}-${info.maxRegions}, target ${ranges}${unit}`;
}
