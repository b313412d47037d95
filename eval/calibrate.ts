// The simulator next to the lab: the same workload (pattern, size, hot fraction, duration) in
// `vtier sim` for the policy that models each measured system, with DRAM the size of the true
// hot set, and the DRAM-served share and migration traffic side by side. Where the model is off
// by more than 20% (relative), the row says so and gives the known reason; docs/policies.md
// keeps the table.
import { DEFAULT_POLICY_SETTINGS, DEFAULT_SIM, makePolicy, makeWorkload, runSimulation, type PolicyName } from '../src/sim/index.js';
import type { LabSystem, LabWorkloadSpec } from './lab-arm.js';

export interface CalibrationRow {
  system: LabSystem;
  simPolicy: PolicyName;
  /** Measured: mean share of the true hot set on DRAM over the run (hotspot: = share of accesses). */
  realDramServedShare: number | null;
  simDramServedShare: number | null;
  realMigratedBytes: number;
  simMigratedBytes: number | null;
  /** |sim - real| / real of the DRAM-served share; null when either is missing. */
  relativeError: number | null;
  /** Why the two differ, when they differ by more than 20%. */
  remark: string | null;
}

export const SIM_POLICY_FOR: Record<LabSystem, PolicyName> = { vtier: 'vtier', autonuma: 'autonuma', damos: 'damon', static: 'static' };

export interface CalibrateInput extends LabWorkloadSpec {
  measured: Array<{ system: LabSystem; hotDramShareMean: number | null; migratedBytes: number; runs: number }>;
}

const KNOWN_DIFFERENCES =
  'the lab run starts with the whole region on the CXL node and the placement is sampled once a second from the end of the first touch; the model fills DRAM at first touch (random 2 MiB blocks) and scores every access from epoch 0';

export function calibrate(input: CalibrateInput): CalibrationRow[] {
  const pages = Math.max(1024, Math.floor(input.sizeBytes / 4096));
  const hotPages = Math.max(1, Math.round(pages * input.hotFrac));
  const epochs = Math.max(2, Math.round(input.durationMs / 1000));
  const rows: CalibrationRow[] = [];
  for (const m of input.measured) {
    const simPolicy = SIM_POLICY_FOR[m.system];
    let simShare: number | null = null;
    let simBytes: number | null = null;
    try {
      const workload = makeWorkload({
        kind: input.workload === 'shift' ? 'shifting' : 'hotspot',
        pages,
        seed: input.seed,
        hotFrac: input.hotFrac,
        hotProb: 1,
        shiftEveryEpochs: Math.max(1, Math.round(input.shiftEveryMs / 1000)),
      });
      const result = runSimulation(
        { ...DEFAULT_SIM, pages, dramPages: hotPages, epochs, accessesPerEpoch: 200_000, seed: input.seed, firstTouch: 'random' },
        workload,
        [makePolicy(simPolicy, DEFAULT_POLICY_SETTINGS)],
      );
      const p = result.policies[0];
      simShare = p.dramShare;
      simBytes = p.promotedBytes + p.demotedBytes;
    } catch {
      /* reported as null */
    }
    const real = m.runs > 0 ? m.hotDramShareMean : null;
    const relativeError = real !== null && simShare !== null && real > 0 ? Math.abs(simShare - real) / real : null;
    rows.push({
      system: m.system,
      simPolicy,
      realDramServedShare: real,
      simDramServedShare: simShare,
      realMigratedBytes: m.migratedBytes,
      simMigratedBytes: simBytes,
      relativeError,
      remark: relativeError !== null && relativeError > 0.2 ? `off by ${(relativeError * 100).toFixed(0)}%: ${KNOWN_DIFFERENCES}` : real === 0 && simShare !== null && simShare > 0 ? KNOWN_DIFFERENCES : null,
    });
  }
  return rows;
}
