// The simulator next to the lab: the same workload (pattern, size, hot fraction, duration) in
// `vtier sim` for the policy that models each measured system, with DRAM the size of the true
// hot set, every page starting on the slow tier as in the lab (its arms move the whole region to
// the CXL node after the first touch: `firstTouch: 'cxl'`), and the DRAM-served share and
// migration traffic side by side. Where the model is off by more than 20% (relative) on either,
// the row is flagged and gives the known reason; docs/policies.md keeps the table.
import { DEFAULT_POLICY_SETTINGS, DEFAULT_SIM, makePolicy, makeWorkload, runSimulation, type FirstTouchMode, type PolicyName, type WorkloadKind } from '../src/sim/index.js';
import type { LabSystem, LabWorkload, LabWorkloadSpec } from './lab-arm.js';

/** Relative error above which a calibration row is flagged. */
export const CALIBRATION_TOLERANCE = 0.2;

export interface CalibrationRow {
  system: LabSystem;
  workload: LabWorkload;
  simPolicy: PolicyName;
  /** Measured: mean share of the accesses served from node 0 over the run (the access-weighted
   *  placement where the arm recorded it, else the true hot set's share on node 0, which is the
   *  same thing when every access goes to the hot set). */
  realDramServedShare: number | null;
  simDramServedShare: number | null;
  realMigratedBytes: number;
  simMigratedBytes: number | null;
  /** |sim - real| / real of the DRAM-served share; 0 when both are 0; null when either is
   *  missing or real is 0 and sim is not (no finite relative error: flagged). */
  relativeError: number | null;
  /** The same for migration traffic (bytes). */
  trafficRelativeError: number | null;
  /** Off by more than CALIBRATION_TOLERANCE on either measure (or no finite error where both exist). */
  flagged: boolean;
  /** Why the two differ, when flagged. */
  remark: string | null;
}

export const SIM_POLICY_FOR: Record<LabSystem, PolicyName> = { vtier: 'vtier', autonuma: 'autonuma', damos: 'damon', static: 'static' };

/** The simulator's workload for a lab workload (same names but `shift`, which it calls `shifting`). */
export const SIM_WORKLOAD_FOR: Record<LabWorkload, WorkloadKind> = { hotspot: 'hotspot', shift: 'shifting', zipf: 'zipf' };

export interface CalibrateInput extends LabWorkloadSpec {
  /** The model's starting layout; the lab's is `cxl` (the default). */
  firstTouch?: FirstTouchMode;
  measured: Array<{ system: LabSystem; dramServedShareMean: number | null; migratedBytes: number; runs: number }>;
}

const KNOWN_DIFFERENCES: Partial<Record<LabSystem, string>> = {
  vtier: 'the lab\'s vtier decides on DAMON aggregations under TCG (its epochs stretch to 1.5-3 s and the classifier waits for confirmation) while the model decides every 1 s epoch on time',
  damos: 'the lab\'s DAMOS promotes whole DAMON regions (hot and cold pages together) into a DRAM node larger than the workload and demotes idle memory of the whole node, the guest\'s own included (pgmigrate counts it all); the model\'s DRAM is the hot set\'s size, so its damon policy can only bring the hot set up once',
};
const GENERIC_DIFFERENCE = 'both start with every page on the CXL node; the lab samples the placement once a second under TCG, the model scores every access of every 1 s epoch';

/** Relative error with the zero cases spelled out: both 0 is exact, real 0 alone has none. */
export function relativeError(real: number | null, sim: number | null): number | null {
  if (real === null || sim === null || !Number.isFinite(real) || !Number.isFinite(sim)) return null;
  if (real === 0) return sim === 0 ? 0 : null;
  return Math.abs(sim - real) / Math.abs(real);
}

export function calibrate(input: CalibrateInput): CalibrationRow[] {
  const pages = Math.max(1024, Math.floor(input.sizeBytes / 4096));
  const hotPages = Math.max(1, Math.round(pages * input.hotFrac));
  const epochs = Math.max(2, Math.round(input.durationMs / 1000));
  // The lab's vtier arm is fed by DAMON (its own kdamond), so the model's vtier is too.
  const settings = { ...DEFAULT_POLICY_SETTINGS, vtierSampler: 'damon' as const };
  const rows: CalibrationRow[] = [];
  for (const m of input.measured) {
    const simPolicy = SIM_POLICY_FOR[m.system];
    let simShare: number | null = null;
    let simBytes: number | null = null;
    try {
      const workload = makeWorkload({
        kind: SIM_WORKLOAD_FOR[input.workload],
        pages,
        seed: input.seed,
        hotFrac: input.hotFrac,
        hotProb: 1,
        // The C workload's zipf: rank r at region page offset + r, exponent 0.99.
        ...(input.workload === 'zipf' ? { theta: 0.99, layout: 'contiguous' as const } : {}),
        shiftEveryEpochs: Math.max(1, Math.round(input.shiftEveryMs / 1000)),
      });
      const result = runSimulation(
        { ...DEFAULT_SIM, settings, pages, dramPages: hotPages, epochs, accessesPerEpoch: 200_000, seed: input.seed, firstTouch: input.firstTouch ?? 'cxl' },
        workload,
        [makePolicy(simPolicy, settings)],
      );
      const p = result.policies[0];
      simShare = p.dramShare;
      simBytes = p.promotedBytes + p.demotedBytes;
    } catch {
      /* reported as null */
    }
    const real = m.runs > 0 ? m.dramServedShareMean : null;
    const realBytes = m.runs > 0 ? m.migratedBytes : null;
    const shareError = relativeError(real, simShare);
    const trafficError = relativeError(realBytes, simBytes);
    const off = (e: number | null, a: number | null, b: number | null) => (e === null ? a !== null && b !== null && Number.isFinite(a) && Number.isFinite(b) : e > CALIBRATION_TOLERANCE);
    const flagged = off(shareError, real, simShare) || off(trafficError, realBytes, simBytes);
    const what = [
      off(shareError, real, simShare) ? `DRAM-served share off by ${shareError === null ? 'more than any ratio (real 0)' : `${(shareError * 100).toFixed(0)}%`}` : '',
      off(trafficError, realBytes, simBytes) ? `migration traffic off by ${trafficError === null ? 'more than any ratio (real 0)' : `${(trafficError * 100).toFixed(0)}%`}` : '',
    ].filter(Boolean).join(', ');
    rows.push({
      system: m.system,
      workload: input.workload,
      simPolicy,
      realDramServedShare: real,
      simDramServedShare: simShare,
      realMigratedBytes: m.migratedBytes,
      simMigratedBytes: simBytes,
      relativeError: shareError,
      trafficRelativeError: trafficError,
      flagged,
      remark: flagged ? `${what}: ${KNOWN_DIFFERENCES[m.system] ?? GENERIC_DIFFERENCE}` : null,
    });
  }
  return rows;
}
