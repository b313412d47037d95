// One arm of the lab comparison, run inside a fresh two-node lab VM (`vtier eval arm`): the
// built-in workload with its truth, first touch on the CXL node, under one system:
//   static    no migration (NUMA balancing off, no demotion): the floor;
//   autonuma  kernel.numa_balancing=2 (memory tiering), demotion_enabled, the promote rate limit;
//   damos     the kernel's DAMON tiering (eval/damos-tiering.ts, as samples/damon/mtier.c);
//   vtier     guest agent + host agent (local-process target), the demo's loop (eval/demo.ts).
// Every system is measured the same way: once a second a move_pages placement query of the
// true hot set (`hot_dram_share`) and of the pages weighted by their expected share of the
// accesses (`access_dram_share`, eval/access-share.ts: for zipf the two differ), /proc/vmstat migration counters before and after, the CPU
// the tracking used where it is a thread of its own (kdamond, the vtier agents), and the
// workload's own access rate, which under TCG on one host memory says nothing about CXL latency.
// Settings go through the kernel-state journal and are restored at the end, also on Ctrl-C.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KernelStateJournal } from '../guest-agent/kernel-state.js';
import { startWorkload } from '../guest-agent/workload.js';
import { defaultTierNodes, readNumaTopology } from '../host-agent/numa.js';
import { migrationBytes, readVmstat, REAL_ROOTS, systemSettings, vmstatDelta, type Roots } from './compare.js';
import { queryAccessShare } from './access-share.js';
import { restartShiftClock, runDemo, threadCpuSeconds, type DemoSummary } from './demo.js';
import { damosStats, startDamosTiering } from './damos-tiering.js';
import { moveRegion, queryHotPlacement, type HotPlacement } from './placement.js';
import { TruthScorer } from './truth-scorer.js';
import { Aborted, abortableSleep } from './abort.js';
import type { Observation, ResultsWriter } from './results.js';

export const LAB_SYSTEMS = ['vtier', 'autonuma', 'damos', 'static'] as const;
export type LabSystem = (typeof LAB_SYSTEMS)[number];
export const LAB_WORKLOADS = ['hotspot', 'shift', 'zipf'] as const;
export type LabWorkload = (typeof LAB_WORKLOADS)[number];

/** The workload every lab arm runs, as the comparison, each arm and the calibration see it. */
export interface LabWorkloadSpec {
  workload: LabWorkload;
  sizeBytes: number;
  hotFrac: number;
  /** How long each system runs after the first touch. */
  durationMs: number;
  /** shift: how often the hot set moves. */
  shiftEveryMs: number;
  seed: number;
}

export interface ArmOptions extends LabWorkloadSpec {
  system: LabSystem;
  /** autonuma: numa_balancing_promote_rate_limit_MBps; undefined = the kernel's default. */
  promoteRateMBps?: number;
  results: ResultsWriter;
  signal: AbortSignal;
  onStep?: (line: string) => void;
}

export interface ArmSummary {
  system: LabSystem;
  workload: LabWorkload;
  /** The true hot set on DRAM by the kernel's placement: after the first touch, mean over the run, at the end. */
  hotDramShare: { start: number | null; mean: number | null; end: number | null };
  /** The share of the accesses served from DRAM (placement weighted by the truth's expected
   *  per-page shares), the same three; absent in results written before it was recorded. */
  accessDramShare?: { start: number | null; mean: number | null; end: number | null };
  /** Seconds until the hot set was >= 90% on DRAM (null: never). */
  reach90S: number | null;
  vmstat: Record<string, number>;
  /** Pages the kernel migrated, every cause (pgmigrate_success x 4 KiB): the one traffic figure
   *  all systems share (move_pages, NUMA-balancing promotion, DAMOS migrate, demotion). */
  migratedBytes: number;
  /** Direction split: autonuma from pgpromote_success / pgdemote_*, damos from its schemes'
   *  applied bytes, vtier from its host agent's reports. */
  promotedBytes: number;
  demotedBytes: number;
  /** vtier's own count of pages it moved (vtier arm). */
  vtierMoved: { promote: number; demote: number } | null;
  /** CPU seconds of the tracking threads (kdamonds, the vtier agents' process); null where the
   *  cost sits in the workload itself (autonuma's hint faults: see numa_hint_faults). */
  trackingCpuS: number | null;
  workloadAccessesPerSec: number | null;
  durationS: number;
  notes: string[];
  settingsRestored: boolean;
}

const cpuSeconds = (pid: number): number => threadCpuSeconds(pid) ?? 0;

/** The kernel settings a system runs under, as written through the journal: NUMA balancing and
 *  demotion off but for autonuma, which also gets `promoteRateMBps` as
 *  numa_balancing_promote_rate_limit_MBps when one is given (else the kernel's value stays). */
export function armSettings(system: LabSystem, promoteRateMBps: number | undefined, roots: Roots = REAL_ROOTS): Array<{ path: string; value: string }> {
  return systemSettings(system === 'autonuma' ? 'autonuma' : 'static', roots, promoteRateMBps ?? 0).filter(
    (s) => !(s.path.endsWith('numa_balancing_promote_rate_limit_MBps') && promoteRateMBps === undefined),
  );
}


function mean(values: number[]): number | null {
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;
}

export async function runArm(options: ArmOptions): Promise<ArmSummary> {
  const step = options.onStep ?? (() => {});
  const topology = readNumaTopology();
  const tiers = defaultTierNodes(topology);
  if (tiers.cxlNodes.length === 0) throw new Error('eval arm needs a lower memory tier (run it inside a two-node lab VM: vtier eval compare --lab)');
  const notes: string[] = [];
  const journal = KernelStateJournal.openSync();
  const started = performance.now();
  const series: Array<{ t: number; share: number }> = [];
  const record = (t: number, p: HotPlacement | null) => {
    if (p?.dramShare == null) return;
    series.push({ t, share: p.dramShare });
  };
  const accessSeries: Array<{ t: number; share: number }> = [];
  let accessStart: number | null = null;
  const recordAccess = (t: number, share: number | null) => {
    if (share === null) return;
    accessSeries.push({ t, share });
    options.results.observe([{ system: options.system, workload: options.workload, run: 1, metric: 'access_dram_share', value: share, unit: 'fraction', timeS: t }]);
  };
  let damosBytes: { promoted: number; demoted: number } | null = null;
  let summaryExtra: { vtierMoved: ArmSummary['vtierMoved']; accessesPerSec: number | null; start: number | null; end: number | null } = { vtierMoved: null, accessesPerSec: null, start: null, end: null };
  let cpuBefore = 0;
  let vmBefore = new Map<string, number>();
  let vmAfter = new Map<string, number>();
  let trackingCpuS: number | null = null;
  let restored = false;
  let demoKdamondCpuS: number | null = null;
  try {
    // The system's settings: static ones now; autonuma's once the workload sits on the CXL
    // node, so every system starts from the same layout at the same moment.
    const applySettings = () => {
      for (const s of armSettings(options.system, options.promoteRateMBps)) journal.set(s.path, s.value);
      if (options.system === 'autonuma') {
        const rate = readFileSync(join(REAL_ROOTS.procSys, 'kernel/numa_balancing_promote_rate_limit_MBps'), 'utf8').trim();
        const tierOf = (n: number) => topology.memoryTiers.find((t) => t.nodes.includes(n))?.tier;
        const lower = tiers.cxlNodes.every((n) => (tierOf(n) ?? 0) > (tierOf(tiers.dramNodes[0]) ?? 0));
        notes.push(`NUMA balancing tiering mode (numa_balancing=2), demotion_enabled=true, promote rate limit ${rate} MB/s`);
        if (!lower) notes.push('node 1 is not in a lower memory tier than node 0: NUMAB-2 promotes only from a lower tier, so it cannot promote here');
      }
    };
    if (options.system !== 'autonuma') applySettings();
    if (options.system === 'vtier') {
      const accessQueries: Array<Promise<void>> = [];
      vmBefore = readVmstat();
      cpuBefore = process.cpuUsage().user + process.cpuUsage().system;
      const demo: DemoSummary = await runDemo({
        source: 'damon',
        sizeBytes: options.sizeBytes,
        hotFrac: options.hotFrac,
        hotProb: 1,
        durationMs: options.durationMs,
        epochMs: 500,
        thp: true,
        seed: options.seed,
        firstTouch: 'cxl',
        pattern: options.workload,
        shiftEveryMs: options.shiftEveryMs,
        system: 'vtier',
        results: options.results,
        signal: options.signal,
        onStep: step,
        onPlacement: (t, p, w) => {
          record(t, p);
          accessQueries.push(queryAccessShare(w.pid, w.truth, tiers).then((share) => recordAccess(t, share), () => {}));
        },
        onKdamondCpu: (seconds) => (demoKdamondCpuS = seconds),
      });
      vmAfter = readVmstat();
      await Promise.all(accessQueries);
      accessSeries.sort((a, b) => a.t - b.t);
      // The starting layout was made with move_pages inside the demo: not the system's traffic.
      vmBefore.set('pgmigrate_success', (vmBefore.get('pgmigrate_success') ?? 0) + (demo.tiers.firstTouchMovedPages ?? 0));
      const cpuUs = process.cpuUsage().user + process.cpuUsage().system - cpuBefore;
      // The sampler's kdamond is gone by now (stopped with the agent), so vtier's tracking CPU is
      // this process's (guest and host agent, classifier, placement queries) plus the kdamond's
      // as the sampler last read it.
      trackingCpuS = cpuUs / 1e6 + (demoKdamondCpuS ?? 0);
      notes.push('vtier tracking CPU is an upper bound: the agents share their process with the evaluation harness (placement queries, truth reloads, scoring)');
      if (demo.interrupted) throw new Aborted();
      summaryExtra = { vtierMoved: demo.moved, accessesPerSec: demo.workload.accessesPerSec, start: demo.hotPlacement.start?.dramShare ?? null, end: demo.hotPlacement.end?.dramShare ?? null };
      // The demo recorded hot_dram_share each second; read the series back from what it observed.
      notes.push(`vtier: DAMON own (5 ms / 100 ms), DRAM budget = the true hot set (${demo.workload.hotPages} pages); moved ${demo.moved.promote} up, ${demo.moved.demote} down; precision ${demo.final?.precision.toFixed(3) ?? '-'}, recall ${demo.final?.recall.toFixed(3) ?? '-'}`);
    } else {
      const dir = mkdtempSync(join(tmpdir(), 'vtier-arm-'));
      const truthPath = join(dir, 'truth.bin');
      let damosPids: number[] = [];
      const workload = await startWorkload({
        pattern: options.workload,
        shiftEveryMs: options.workload === 'shift' ? options.shiftEveryMs : undefined,
        sizeBytes: options.sizeBytes,
        hotFrac: options.hotFrac,
        hotProb: 1,
        thp: true,
        truthPath,
        seed: options.seed,
        reportMs: 0,
        truthRefreshMs: 1000,
      });
      try {
        const scorer = new TruthScorer(truthPath);
        const query = async (): Promise<HotPlacement | null> => {
          scorer.refresh();
          return queryHotPlacement(workload.pid, scorer.current, tiers);
        };
        const queryAccess = (): Promise<number | null> => queryAccessShare(workload.pid, scorer.current, tiers);
        await moveRegion(workload.pid, scorer.current, tiers.cxlNodes[0]);
        // The hot set lives a whole period of the measured run, as in the vtier arm (eval/demo.ts).
        if (options.workload === 'shift') restartShiftClock(workload.pid);
        const ready = performance.now();
        vmBefore = readVmstat();
        const first = await query();
        accessStart = await queryAccess();
        if (options.system === 'autonuma') applySettings();
        summaryExtra.start = first?.dramShare ?? null;
        step(`workload pid ${workload.pid}: ${options.workload} over ${(options.sizeBytes / 2 ** 30).toFixed(2)} GiB, true hot set ${scorer.truthHotPages} pages, ${((first?.dramShare ?? 0) * 100).toFixed(1)}% on DRAM after the first touch`);
        // The system starts after the first touch, as vtier's agent does.
        if (options.system === 'damos') {
          const info = startDamosTiering(journal, { dramNode: tiers.dramNodes[0], cxlNode: tiers.cxlNodes[0] });
          damosPids = info.kdamondPids;
          notes.push(...info.notes);
          cpuBefore = damosPids.reduce((sum, p) => sum + cpuSeconds(p), 0);
        }
        let last = first;
        const deadline = ready + options.durationMs;
        while (performance.now() < deadline) {
          await abortableSleep(options.signal, Math.min(1000, Math.max(0, deadline - performance.now())));
          last = await query();
          const t = Number(((performance.now() - ready) / 1000).toFixed(3));
          record(t, last);
          if (last?.dramShare != null) options.results.observe([{ system: options.system, workload: options.workload, run: 1, metric: 'hot_dram_share', value: last.dramShare, unit: 'fraction', timeS: t }]);
          recordAccess(t, await queryAccess());
        }
        summaryExtra.end = last?.dramShare ?? null;
        vmAfter = readVmstat();
        if (options.system === 'damos') {
          trackingCpuS = damosPids.reduce((sum, p) => sum + cpuSeconds(p), 0) - cpuBefore;
          const stats = damosStats(journal);
          damosBytes = { promoted: stats.find((x) => x.kdamond === 0)?.appliedBytes ?? 0, demoted: stats.find((x) => x.kdamond === 1)?.appliedBytes ?? 0 };
          notes.push(`DAMOS applied: ${stats.map((s) => `kdamond ${s.kdamond} ${(s.appliedBytes / 2 ** 20).toFixed(1)} MiB of ${(s.triedBytes / 2 ** 20).toFixed(1)} MiB tried`).join(', ')}`);
        }
      } finally {
        const w = await workload.stop();
        summaryExtra.accessesPerSec = w.accessesPerSec;
        rmSync(dir, { recursive: true, force: true });
      }
    }
  } finally {
    const report = journal.restoreAll();
    restored = report.cleared;
  }
  const delta = vmstatDelta(vmBefore, vmAfter);
  const bytes = migrationBytes(delta);
  const reach = series.find((p) => p.share >= 0.9);
  return {
    system: options.system,
    workload: options.workload,
    hotDramShare: { start: summaryExtra.start, mean: mean(series.map((p) => p.share)), end: summaryExtra.end },
    accessDramShare: { start: accessStart, mean: mean(accessSeries.map((p) => p.share)), end: accessSeries.at(-1)?.share ?? null },
    reach90S: reach ? reach.t : null,
    vmstat: delta,
    migratedBytes: (delta.pgmigrate_success ?? 0) * 4096,
    promotedBytes: options.system === 'vtier' ? (summaryExtra.vtierMoved?.promote ?? 0) * 4096 : options.system === 'damos' ? damosBytes?.promoted ?? 0 : bytes.promotedBytes,
    demotedBytes: options.system === 'vtier' ? (summaryExtra.vtierMoved?.demote ?? 0) * 4096 : options.system === 'damos' ? damosBytes?.demoted ?? 0 : bytes.demotedBytes,
    vtierMoved: summaryExtra.vtierMoved,
    trackingCpuS: options.system === 'autonuma' || options.system === 'static' ? null : trackingCpuS,
    workloadAccessesPerSec: summaryExtra.accessesPerSec,
    durationS: (performance.now() - started) / 1000,
    notes,
    settingsRestored: restored,
  };
}

export type { Observation };
