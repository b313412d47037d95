// `vtier eval compare --lab`: vtier against AutoNUMA tiering, the kernel's DAMOS tiering and no
// migration, each arm in a fresh two-node lab VM (so no page placement, THP pool or kernel
// state leaks from one arm to the next), the order of arms rotated every round. Each VM runs
// `vtier eval arm` (eval/lab-arm.ts) and writes its own results directory under arms/; this
// module boots the VMs, gathers their summaries and time series into the campaign's results,
// and sets the measured arms next to `vtier sim` on the same configuration (the calibration).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runLab } from '../lab/vm.js';
import { readObservations, type Observation, type ResultsWriter } from './results.js';
import type { ArmSummary, LabSystem, LabWorkload, LabWorkloadSpec } from './lab-arm.js';
import { calibrate, type CalibrationRow } from './calibrate.js';

export interface LabCompareOptions extends LabWorkloadSpec {
  systems: LabSystem[];
  runs: number;
  promoteRateMBps?: number;
  /** The lab VM: node 0 (DRAM) and node 1 (CXL stand-in) sizes. */
  memBytes: number;
  cxlBytes: number;
  results: ResultsWriter;
  signal: AbortSignal;
  onProgress?: (done: number, total: number, info: string) => void;
  onLine?: (line: string) => void;
}

export interface LabSystemSummary {
  system: LabSystem;
  runs: number;
  /** Means over the runs. */
  hotDramShareMean: number | null;
  /** Share of the accesses served from DRAM (access-weighted placement), where recorded. */
  accessDramShareMean: number | null;
  /** What the calibration compares with the model's DRAM-served share: the access-weighted
   *  share where recorded, else the hot set's share on DRAM. */
  dramServedShareMean: number | null;
  hotDramShareEnd: number | null;
  reach90S: number | null;
  migratedBytes: number;
  promotedBytes: number;
  demotedBytes: number;
  trackingCpuS: number | null;
  workloadAccessesPerSec: number | null;
  notes: string[];
}

export interface LabCompareSummary {
  workload: LabWorkload;
  runs: number;
  systems: LabSystemSummary[];
  failedArms: Array<{ system: LabSystem; run: number; why: string }>;
  calibration: CalibrationRow[];
  labels: string[];
}

const avg = (values: Array<number | null>): number | null => {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  return v.length === 0 ? null : v.reduce((a, b) => a + b, 0) / v.length;
};

export const TCG_LABEL = 'lab VM under TCG, both NUMA nodes on the same host DRAM: placement and migration traffic are real, throughput does not show CXL latency';

/** The order of the arms in round `run` (1-based): the list rotated by run - 1, so each system
 *  runs first in turn (with two systems the order alternates) and drift over the campaign does
 *  not always favour the same one. */
export function armOrder<T>(systems: readonly T[], run: number): T[] {
  if (systems.length === 0) return [];
  const shift = (run - 1) % systems.length;
  return [...systems.slice(shift), ...systems.slice(0, shift)];
}

/** The argv of one arm inside its VM (`vtier eval arm`). */
export function armCommand(o: LabWorkloadSpec & { promoteRateMBps?: number }, system: LabSystem, run: number, out: string): string[] {
  return [
    'vtier', 'eval', 'arm', '--system', system, '--workload', o.workload,
    '--size', String(o.sizeBytes), '--hot-frac', String(o.hotFrac), '--duration', `${o.durationMs}ms`,
    '--shift-every', `${o.shiftEveryMs}ms`, '--seed', String(o.seed + run - 1), '--out', out,
    ...(o.promoteRateMBps !== undefined ? ['--promote-rate', String(o.promoteRateMBps)] : []),
  ];
}

export async function runLabCompare(o: LabCompareOptions): Promise<LabCompareSummary> {
  const total = o.runs * o.systems.length;
  let done = 0;
  const arms: ArmSummary[] = [];
  const failedArms: LabCompareSummary['failedArms'] = [];
  for (let run = 1; run <= o.runs; run++) {
    for (const system of armOrder(o.systems, run)) {
      if (o.signal.aborted) break;
      o.onProgress?.(done, total, `run ${run} ${system}`);
      const armDir = join(o.results.dir, 'arms', `run${run}-${system}`);
      const inner = join(armDir, 'arm');
      const command = armCommand(o, system, run, inner);
      const lab = await runLab({ nodes: 2, memBytes: o.memBytes, cxlBytes: o.cxlBytes, smp: 2, timeoutMs: o.durationMs + 8 * 60_000, resultsDir: armDir, command, signal: o.signal });
      const summaryPath = join(inner, 'summary.json');
      if (lab.end !== 'exited' || lab.exitStatus !== 0 || !existsSync(summaryPath)) {
        const why = lab.end !== 'exited' ? lab.detail ?? lab.end : `exit status ${lab.exitStatus}; see ${lab.outputLog}`;
        failedArms.push({ system, run, why });
        o.onLine?.(`run ${run} ${system}: failed: ${why}`);
        if (lab.end === 'interrupted') break;
        done++;
        continue;
      }
      const arm = JSON.parse(readFileSync(summaryPath, 'utf8')) as ArmSummary;
      arms.push(arm);
      o.results.writeRaw(`run${run}-${system}`, { ...arm, lab: { bootMs: lab.bootMs, wallMs: lab.wallMs, accel: lab.accelReason, kernel: lab.kernel } });
      // The arm's time series, under this campaign's run number.
      const warnings: string[] = [];
      const series = readObservations(join(inner, 'observations.csv'), warnings).filter((x) => x.metric === 'hot_dram_share' || x.metric === 'access_dram_share');
      o.results.observe(series.map((x) => ({ ...x, system, run })));
      const at = { system, workload: o.workload, run };
      const obs: Observation[] = [
        { ...at, metric: 'hot_dram_share_mean', value: arm.hotDramShare.mean ?? NaN, unit: 'fraction' },
        { ...at, metric: 'hot_dram_share_end', value: arm.hotDramShare.end ?? NaN, unit: 'fraction' },
        { ...at, metric: 'access_dram_share_mean', value: arm.accessDramShare?.mean ?? NaN, unit: 'fraction' },
        { ...at, metric: 'access_dram_share_end', value: arm.accessDramShare?.end ?? NaN, unit: 'fraction' },
        { ...at, metric: 'migrated_bytes', value: arm.migratedBytes, unit: 'bytes' },
        { ...at, metric: 'promoted_bytes', value: arm.promotedBytes, unit: 'bytes' },
        { ...at, metric: 'demoted_bytes', value: arm.demotedBytes, unit: 'bytes' },
      ];
      if (arm.trackingCpuS !== null) obs.push({ ...at, metric: 'tracking_cpu_s', value: arm.trackingCpuS, unit: 's' });
      if (arm.workloadAccessesPerSec !== null) obs.push({ ...at, metric: 'throughput_tcg', value: arm.workloadAccessesPerSec, unit: 'accesses/s' });
      for (const [name, value] of Object.entries(arm.vmstat)) obs.push({ ...at, metric: `vmstat:${name}`, value, unit: 'pages' });
      o.results.observe(obs.filter((x) => Number.isFinite(x.value)));
      o.onLine?.(
        `run ${run} ${system}: hot set on DRAM ${pct(arm.hotDramShare.start)} -> ${pct(arm.hotDramShare.end)} (mean ${pct(arm.hotDramShare.mean)}), migrated ${(arm.migratedBytes / 2 ** 20).toFixed(1)} MiB` +
          `${arm.vmstat.pgpromote_success !== undefined ? `, pgpromote_success ${arm.vmstat.pgpromote_success}` : ''}; VM boot ${((lab.bootMs ?? 0) / 1000).toFixed(1)} s, wall ${(lab.wallMs / 1000).toFixed(0)} s`,
      );
      for (const n of arm.notes) o.onLine?.(`  ${system}: ${n}`);
      done++;
    }
    if (o.signal.aborted) break;
  }
  const systems: LabSystemSummary[] = o.systems.map((system) => {
    const mine = arms.filter((a) => a.system === system);
    return {
      system,
      runs: mine.length,
      hotDramShareMean: avg(mine.map((a) => a.hotDramShare.mean)),
      accessDramShareMean: avg(mine.map((a) => a.accessDramShare?.mean ?? null)),
      dramServedShareMean: avg(mine.map((a) => a.accessDramShare?.mean ?? a.hotDramShare.mean)),
      hotDramShareEnd: avg(mine.map((a) => a.hotDramShare.end)),
      reach90S: avg(mine.map((a) => a.reach90S)),
      migratedBytes: avg(mine.map((a) => a.migratedBytes)) ?? 0,
      promotedBytes: avg(mine.map((a) => a.promotedBytes)) ?? 0,
      demotedBytes: avg(mine.map((a) => a.demotedBytes)) ?? 0,
      trackingCpuS: avg(mine.map((a) => a.trackingCpuS)),
      workloadAccessesPerSec: avg(mine.map((a) => a.workloadAccessesPerSec)),
      notes: [...new Set(mine.flatMap((a) => a.notes.filter((n) => !/^vtier: DAMON own|^DAMOS applied/.test(n))))],
    };
  });
  const calibration = calibrate({ ...o, measured: systems });
  for (const row of calibration) {
    o.results.observe([
      { system: row.system, workload: o.workload, run: 0, metric: 'sim_dram_served_share', value: row.simDramServedShare ?? NaN, unit: 'fraction' },
      { system: row.system, workload: o.workload, run: 0, metric: 'sim_migrated_bytes', value: row.simMigratedBytes ?? NaN, unit: 'bytes' },
    ].filter((x) => Number.isFinite(x.value)));
  }
  return { workload: o.workload, runs: o.runs, systems, failedArms, calibration, labels: [TCG_LABEL] };
}

export function pct(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : `${(v * 100).toFixed(1)}%`;
}
