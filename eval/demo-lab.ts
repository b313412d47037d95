// `vtier demo` in the two-node lab VM: the same demo (`vtier demo --on host`) runs inside a guest
// of our own, where DAMON is ours (own kdamond, 5 ms / 100 ms intervals) and node 1 is a
// CPU-less lower-tier node, so the host agent's moves really change nodes. This module picks
// where the demo runs and drives the VM; the demo itself is eval/demo.ts, unchanged inside.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { labMissing } from '../lab/cache.js';
import { runLab, type LabEnd } from '../lab/vm.js';
import { defaultTierNodes, readNumaTopology } from '../host-agent/numa.js';
import type { DemoSummary } from './demo.js';

export type DemoPlace = 'auto' | 'lab' | 'host';
export const DEMO_PLACES: readonly DemoPlace[] = ['auto', 'lab', 'host'];

/** The lab VM the demo boots: 2 GiB DRAM node + 2 GiB CPU-less node, 2 vCPUs. */
export const DEMO_LAB_VM = { nodes: 2 as const, memBytes: 2 * 2 ** 30, cxlBytes: 2 * 2 ** 30, smp: 2 };
/** Boot, doctor, first touch and the report on top of --duration, under TCG. */
const LAB_OVERHEAD_MS = 6 * 60_000;

export interface DemoPlaceChoice {
  where: 'lab' | 'host';
  why: string;
}

export async function chooseDemoPlace(on: DemoPlace): Promise<DemoPlaceChoice> {
  if (on === 'host') return { where: 'host', why: 'on this machine (--on host)' };
  const missing = labMissing();
  if (on === 'lab') {
    if (process.env.VTIER_LAB) throw new Error('--on lab: already inside a lab VM');
    if (missing.length > 0) throw new Error(`--on lab: lab not ready: ${missing.join('; ')}`);
    return { where: 'lab', why: 'in a two-node lab VM (--on lab)' };
  }
  if (process.env.VTIER_LAB) return { where: 'host', why: 'inside a lab VM: running the loop here' };
  if (defaultTierNodes(readNumaTopology()).cxlNodes.length > 0) return { where: 'host', why: 'this machine has a lower memory tier: running the loop here' };
  if (missing.length > 0) return { where: 'host', why: `on this machine: the lab VM is not ready (${missing.join('; ')})` };
  return {
    where: 'lab',
    why: 'this machine has one NUMA node (no move can change node) and its DAMON belongs to someone else: running the loop in a two-node lab VM with its own kdamond (--on host runs it here)',
  };
}

export interface DemoInLabOptions {
  /** Demo options passed on to the demo inside. */
  forwarded: string[];
  out?: string;
  resultsDir: string;
  durationMs: number;
  signal: AbortSignal;
  json: boolean;
  onOutput: (chunk: Buffer) => void;
}

export interface DemoInLabResult {
  dir: string;
  report: string | null;
  summary: DemoSummary | null;
  end: LabEnd;
  failure: string | null;
  facts: { nodes: number; kernel: string; accel: string; accelReason: string; bootMs: number | null; wallMs: number; consoleLog: string };
  factsLine: string;
}

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, 'Z');
}

/** The demo's summary as the inner run wrote it: summary.json when it finished, else the raw run. */
function readInnerSummary(dir: string): DemoSummary | null {
  for (const path of [join(dir, 'summary.json')]) {
    if (existsSync(path)) return JSON.parse(readFileSync(path, 'utf8')) as DemoSummary;
  }
  const runs = join(dir, 'runs');
  if (!existsSync(runs)) return null;
  const raw = readdirSync(runs).filter((f) => f.endsWith('-demo.json')).sort().pop();
  return raw ? (JSON.parse(readFileSync(join(runs, raw), 'utf8')) as DemoSummary) : null;
}

export async function runDemoInLab(options: DemoInLabOptions): Promise<DemoInLabResult> {
  const dir = options.out ? resolve(options.out) : resolve(options.resultsDir, `demo-lab-${stamp()}`);
  const inner = join(dir, 'demo');
  const result = await runLab({
    ...DEMO_LAB_VM,
    timeoutMs: options.durationMs + LAB_OVERHEAD_MS,
    resultsDir: dir,
    command: ['vtier', 'demo', '--on', 'host', ...options.forwarded, '--out', inner],
    signal: options.signal,
    onOutput: options.json ? undefined : options.onOutput,
  });
  const summary = readInnerSummary(inner);
  const report = existsSync(join(inner, 'report.html')) ? join(inner, 'report.html') : null;
  const facts = {
    nodes: result.nodes,
    kernel: result.kernel,
    accel: result.accel,
    accelReason: result.accelReason,
    bootMs: result.bootMs,
    wallMs: result.wallMs,
    consoleLog: result.consoleLog,
  };
  const factsLine = `lab: ${result.nodes}-node VM (node 1 CPU-less, lower tier), kernel ${result.kernel}, ${result.accelReason}; boot ${result.bootMs === null ? '-' : (result.bootMs / 1000).toFixed(1)} s, wall ${(result.wallMs / 1000).toFixed(0)} s; console ${result.consoleLog}`;
  let failure: string | null = null;
  if (result.end !== 'exited') failure = `lab VM: ${result.detail ?? result.end}`;
  else if (result.exitStatus !== 0) failure = `the demo inside the lab VM exited with status ${result.exitStatus}; its output is in ${result.outputLog}`;
  return { dir, report, summary: failure ? null : summary, end: result.end, failure: failure ?? (summary ? null : `no demo summary in ${inner}`), facts, factsLine };
}
