// The report sections of `vtier eval compare --lab`, from the tidy observations alone (so an old
// results directory renders the same way): the DRAM-served share over time, one line per system;
// the migration traffic per system (pgmigrate_success x 4 KiB, the one figure every system
// shares); and the calibration table, system x workload, lab against `vtier sim` on the same
// configuration, with the relative errors and the rows off by more than 20% flagged.
import type { TopLevelSpec } from 'vega-lite';
import type { Observation } from './results.js';
import { barSpec, systemLinesSpec } from './plots.js';
import { CALIBRATION_TOLERANCE, relativeError } from './calibrate.js';

export interface LabTable {
  columns: string[];
  rows: string[][];
}

export interface LabSection {
  id: string;
  title: string;
  caption: string;
  table: LabTable;
  spec?: TopLevelSpec;
  /** Show the table itself, not behind a "data" fold (the calibration table is the content). */
  open?: boolean;
}

/** Scalar metrics these sections present; the report leaves them out of "All other metrics". */
export const LAB_SECTION_METRICS = new Set([
  'hot_dram_share_mean', 'hot_dram_share_end', 'access_dram_share_mean', 'access_dram_share_end',
  'migrated_bytes', 'sim_dram_served_share', 'sim_migrated_bytes',
]);

const SERIES = { access: 'access_dram_share', hot: 'hot_dram_share' } as const;
const MIB = 2 ** 20;

const num = (v: number | null | undefined, digits = 1): string => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits));
const pct = (v: number | null | undefined): string => (v === null || v === undefined || !Number.isFinite(v) ? '–' : `${(v * 100).toFixed(1)}%`);
const mean = (values: number[]): number | null => (values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length);
const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function scalars(obs: Observation[], metric: string, workload: string, system: string): number[] {
  return obs.filter((o) => o.metric === metric && o.timeS === undefined && o.workload === workload && o.system === system && Number.isFinite(o.value)).map((o) => o.value);
}

/** Per workload: one line per system, the runs averaged per whole second. */
function shareOverTime(obs: Observation[]): LabSection[] {
  const sections: LabSection[] = [];
  const workloads = [...new Set(obs.filter((o) => o.timeS !== undefined && (o.metric === SERIES.access || o.metric === SERIES.hot)).map((o) => o.workload))].sort(byText);
  for (const workload of workloads) {
    const here = obs.filter((o) => o.workload === workload && o.timeS !== undefined);
    // The access-weighted share where the arms recorded it (equal to the hot set's share when
    // every access goes to the hot set); older results only have the hot set's.
    const metric = here.some((o) => o.metric === SERIES.access) ? SERIES.access : SERIES.hot;
    const rows = here.filter((o) => o.metric === metric);
    const bins = new Map<string, { system: string; timeS: number; values: number[] }>();
    for (const o of rows) {
      const t = Math.round(o.timeS ?? 0);
      const key = `${o.system}\u0000${t}`;
      const bin = bins.get(key) ?? { system: o.system, timeS: t, values: [] };
      bin.values.push(o.value);
      bins.set(key, bin);
    }
    const points = [...bins.values()]
      .map((b) => ({ system: b.system, timeS: b.timeS, value: mean(b.values) ?? 0 }))
      .sort((a, b) => byText(a.system, b.system) || a.timeS - b.timeS);
    const systems = [...new Set(points.map((p) => p.system))];
    const yTitle = metric === SERIES.access ? 'accesses served from DRAM (fraction 0–1)' : 'true hot set on DRAM (fraction of its pages, 0–1)';
    sections.push({
      id: `lab-dram-share-${workload}`,
      title: `DRAM-served share over time — ${workload}`,
      caption:
        (metric === SERIES.access
          ? 'Share of the workload’s accesses served from node 0 (DRAM): the kernel’s placement (move_pages query, once a second) weighted by each page’s expected share of the accesses from the workload’s truth file. '
          : 'Share of the workload’s true hot set on node 0 (DRAM) by the kernel’s placement (move_pages query, once a second); the share of the accesses when every access goes to the hot set. ') +
        'One line per system (colour and shape), runs averaged per second; time from when the system started, with the whole region on node 1 (the CXL stand-in).',
      table: {
        columns: ['system', 'first (fraction)', 'mean (fraction)', 'last (fraction)', 'first time >= 0.9 (s)'],
        rows: systems.map((system) => {
          const mine = points.filter((p) => p.system === system);
          const reach = mine.find((p) => p.value >= 0.9);
          return [system, num(mine[0]?.value, 3), num(mean(mine.map((p) => p.value)), 3), num(mine.at(-1)?.value, 3), reach ? String(reach.timeS) : 'never'];
        }),
      },
      spec: systemLinesSpec(`DRAM-served share over time — ${workload}`, points, yTitle, [0, 1]),
    });
  }
  return sections;
}

function migrationPerSystem(obs: Observation[]): LabSection | null {
  const rows = obs.filter((o) => o.metric === 'migrated_bytes' && o.timeS === undefined && Number.isFinite(o.value));
  if (rows.length === 0) return null;
  const keys = [...new Set(rows.map((o) => `${o.workload}\u0000${o.system}`))].sort(byText);
  const points = keys.map((key) => {
    const [workload, system] = key.split('\u0000');
    return { system, group: workload, value: (mean(scalars(rows, 'migrated_bytes', workload, system)) ?? 0) / MIB };
  });
  const split = (metric: string, workload: string, system: string) => num((mean(scalars(obs, metric, workload, system)) ?? NaN) / MIB);
  return {
    id: 'lab-migration',
    title: 'Migration traffic per system',
    caption:
      'Pages the kernel migrated while the system ran, every cause (pgmigrate_success x 4 KiB: move_pages, NUMA-balancing promotion, DAMOS, demotion), mean over the runs, in MiB. ' +
      'The moves that made the starting layout are not counted. Less traffic for the same DRAM-served share is better.',
    table: {
      columns: ['workload', 'system', 'runs', 'migrated (MiB)', 'promoted (MiB)', 'demoted (MiB)'],
      rows: points.map((p) => [p.group, p.system, String(scalars(rows, 'migrated_bytes', p.group, p.system).length), num(p.value), split('promoted_bytes', p.group, p.system), split('demoted_bytes', p.group, p.system)]),
    },
    spec: barSpec('Migration traffic per system', points, 'migrated (MiB, pgmigrate_success x 4 KiB)', 'workload'),
  };
}

export interface CalibrationCell {
  workload: string;
  system: string;
  real: number | null;
  sim: number | null;
  shareError: number | null;
  realBytes: number | null;
  simBytes: number | null;
  trafficError: number | null;
  flagged: boolean;
}

/** The calibration rows from observations: the lab's mean DRAM-served share (access-weighted
 *  where recorded, else the hot set's) and pgmigrate traffic against the model's. */
export function calibrationCells(obs: Observation[]): CalibrationCell[] {
  const simRows = obs.filter((o) => o.metric === 'sim_dram_served_share' && o.timeS === undefined);
  const keys = [...new Set(simRows.map((o) => `${o.workload}\u0000${o.system}`))].sort(byText);
  return keys.map((key) => {
    const [workload, system] = key.split('\u0000');
    const access = scalars(obs, 'access_dram_share_mean', workload, system);
    const real = mean(access.length > 0 ? access : scalars(obs, 'hot_dram_share_mean', workload, system));
    const sim = mean(scalars(obs, 'sim_dram_served_share', workload, system));
    const realBytes = mean(scalars(obs, 'migrated_bytes', workload, system));
    const simBytes = mean(scalars(obs, 'sim_migrated_bytes', workload, system));
    const shareError = relativeError(real, sim);
    const trafficError = relativeError(realBytes, simBytes);
    const off = (e: number | null, a: number | null, b: number | null) => (e === null ? a !== null && b !== null : e > CALIBRATION_TOLERANCE);
    return { workload, system, real, sim, shareError, realBytes, simBytes, trafficError, flagged: off(shareError, real, sim) || off(trafficError, realBytes, simBytes) };
  });
}

function calibrationSection(obs: Observation[]): LabSection | null {
  const cells = calibrationCells(obs);
  if (cells.length === 0) return null;
  const err = (e: number | null, a: number | null, b: number | null) => (e !== null ? `${(e * 100).toFixed(0)}%` : a === 0 && b !== null ? 'real 0' : '–');
  const flaggedCount = cells.filter((c) => c.flagged).length;
  return {
    id: 'calibration',
    title: 'Calibration: lab against the simulator',
    caption:
      '`vtier sim` on the same configuration as each lab arm (same pages, hot fraction, duration and seed; DRAM the size of the true hot set; every page starting on the slow tier, as the lab moves the region to node 1 after the first touch). ' +
      `DRAM-served share: the lab’s mean over the run against the model’s share of accesses; traffic: pgmigrate_success x 4 KiB against the model’s promoted + demoted bytes. Relative error |sim − real| / real; “> 20%” flags a row off by more than ${CALIBRATION_TOLERANCE * 100}% on either. ` +
      (flaggedCount > 0 ? `${flaggedCount} of ${cells.length} row(s) flagged.` : 'Every row within 20%.'),
    open: true,
    table: {
      columns: ['workload', 'system', 'real DRAM-served', 'sim DRAM-served', 'error', 'real migrated (MiB)', 'sim migrated (MiB)', 'error', 'within 20%?'],
      rows: cells.map((c) => [
        c.workload, c.system, pct(c.real), pct(c.sim), err(c.shareError, c.real, c.sim),
        num(c.realBytes === null ? null : c.realBytes / MIB), num(c.simBytes === null ? null : c.simBytes / MIB), err(c.trafficError, c.realBytes, c.simBytes),
        c.flagged ? '> 20%' : 'yes',
      ]),
    },
  };
}

/** Every lab section the observations hold data for, in reading order. */
export function labSections(obs: Observation[]): LabSection[] {
  return [...shareOverTime(obs), migrationPerSystem(obs), calibrationSection(obs)].filter((s): s is LabSection => s !== null);
}
