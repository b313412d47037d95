// The results directory every campaign writes, and the reader the report uses.
//
//   results/<campaign>-<timestamp>/
//     command.json      exact argv, cwd, versions, tools, campaign settings
//     machine.json      `vtier doctor --json` output (or basic facts when doctor is unavailable)
//     runs/*.json       raw JSON of every run, written as each run ends
//     observations.csv  tidy: one row per observation, appended as runs end
//     summary.json      the campaign's own summary (written at the end)
//     DONE              written last; a directory without it is an interrupted run
//
// Observations are the single source the report plots from, so a campaign interrupted after
// three runs still yields a report of those three runs.
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, hostname, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The tidy CSV columns, in order. `time_s` is set for time series, `param`/`param_value` for sweeps. */
export const CSV_COLUMNS = ['campaign', 'system', 'workload', 'run', 'metric', 'value', 'unit', 'time_s', 'param', 'param_value'] as const;

/** Metric names the report knows how to plot; campaigns may write others (they land in tables). */
export const METRICS = {
  precision: 'precision',
  recall: 'recall',
  f1: 'f1',
  /** treated / baseline wall time (or baseline / treated throughput) of one paired run. */
  slowdown: 'slowdown',
  wallTime: 'wall_time',
  throughput: 'throughput',
  agentCpu: 'agent_cpu',
  agentCpuShare: 'agent_cpu_share',
  dramServedShare: 'dram_served_share',
  promotedBytes: 'promoted_bytes',
  demotedBytes: 'demoted_bytes',
} as const;

export interface Observation {
  /** The system or policy observed (`vtier`, `autonuma`, `static`, `baseline`, `agent`, ...). */
  system: string;
  workload: string;
  /** Run index, 1-based; 0 for a single deterministic run (a simulation). */
  run: number;
  metric: string;
  value: number;
  /** `ratio`, `s`, `ops/s`, `bytes`, `pages`, `fraction`, ... */
  unit: string;
  /** Seconds since the run started, for time series. */
  timeS?: number;
  /** Swept parameter (e.g. `dram_bytes`, `period`) and its value for this observation. */
  param?: string;
  paramValue?: number;
}

export interface CommandFacts {
  campaign: string;
  argv: string[];
  cwd: string;
  vtierVersion: string;
  gitCommit: string | null;
  node: string;
  kernel: string;
  startedAt: string;
  /** Versions of the external tools the campaign ran, e.g. { "redis-server": "7.0.15" }. */
  tools: Record<string, string>;
  /** Campaign settings worth recording (source, runs, which agent command was used, ...). */
  settings: Record<string, unknown>;
}

export interface LoadedResults {
  dir: string;
  /** False when the DONE marker is missing: the campaign was interrupted or is still running. */
  complete: boolean;
  command: CommandFacts | null;
  machine: unknown;
  summary: unknown;
  observations: Observation[];
  /** Files that were present but not understood, with the reason. */
  warnings: string[];
}

/** Walks up from this module to the directory holding vtier's package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if (JSON.parse(readFileSync(pkg, 'utf8')).name === 'vtier') return dir;
      } catch {
        /* keep walking */
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the vtier package root');
    dir = parent;
  }
}

/** The command that runs this vtier's CLI as a child: [node, bin/vtier.js]. */
export function vtierCommand(): [string, string] {
  return [process.execPath, join(repoRoot(), 'bin', 'vtier.js')];
}

function tryRun(file: string, args: string[], timeoutMs = 10_000): string | null {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs }).trim();
  } catch {
    return null;
  }
}

/** First line of `tool --version` (or the given args), or null when the tool is missing. */
export function toolVersion(tool: string, args = ['--version']): string | null {
  const out = tryRun(tool, args);
  return out === null ? null : (out.split('\n')[0] ?? '').trim();
}

/** Compact UTC timestamp for directory names: 20261122T043100Z. */
export function timestampForName(date = new Date()): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

function csvField(value: string | number | undefined): string {
  if (value === undefined) return '';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '';
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** Facts about this machine that do not need `vtier doctor`. */
export function basicMachineFacts(): Record<string, unknown> {
  const nodeDir = '/sys/devices/system/node';
  let numaNodes: number[] = [];
  try {
    numaNodes = readdirSync(nodeDir)
      .map((n) => /^node(\d+)$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
  } catch {
    /* no NUMA sysfs: leave empty */
  }
  let osRelease: string | null = null;
  try {
    osRelease = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? null;
  } catch {
    /* not Linux-like */
  }
  return {
    hostname: hostname(),
    kernel: release(),
    os: osRelease,
    cpuModel: cpus()[0]?.model ?? null,
    cpuCount: cpus().length,
    memTotalBytes: totalmem(),
    numaNodes,
  };
}

/** `vtier doctor --json` as a child process, falling back to basic facts with the reason. */
export function collectMachineFacts(): Record<string, unknown> {
  const [node, bin] = vtierCommand();
  let doctor: unknown = null;
  let doctorError: string | null = null;
  try {
    const out = execFileSync(node, [bin, 'doctor', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    doctor = JSON.parse(out);
  } catch (err) {
    const e = err as { stdout?: string; message?: string };
    try {
      const parsed = JSON.parse(e.stdout ?? '') as { error?: { message?: string } };
      doctorError = parsed.error?.message ?? 'vtier doctor failed';
    } catch {
      doctorError = (e.message ?? String(err)).split('\n')[0];
    }
  }
  return { basic: basicMachineFacts(), doctor, doctorError };
}

export interface CreateResultsOptions {
  campaign: string;
  /** Parent directory (default `results`). */
  baseDir?: string;
  /** Exact directory to use instead of `<baseDir>/<campaign>-<timestamp>`. */
  dir?: string;
  argv?: string[];
  settings?: Record<string, unknown>;
  tools?: Record<string, string>;
  /** Machine facts; default runs `vtier doctor --json`. Tests pass a fixed object. */
  machine?: unknown;
  now?: Date;
}

/** Writes one campaign's results directory; every write lands on disk at once. */
export class ResultsWriter {
  readonly dir: string;
  readonly campaign: string;
  private readonly command: CommandFacts;
  private runFiles = 0;
  private finished = false;

  private constructor(dir: string, command: CommandFacts) {
    this.dir = dir;
    this.campaign = command.campaign;
    this.command = command;
  }

  static create(options: CreateResultsOptions): ResultsWriter {
    const now = options.now ?? new Date();
    let dir = options.dir ? resolve(options.dir) : resolve(options.baseDir ?? 'results', `${options.campaign}-${timestampForName(now)}`);
    if (!options.dir) {
      for (let i = 2; existsSync(dir); i++) dir = resolve(options.baseDir ?? 'results', `${options.campaign}-${timestampForName(now)}-${i}`);
    } else if (existsSync(join(dir, 'command.json'))) {
      throw new Error(`${dir} already holds results; choose another --out`);
    }
    mkdirSync(join(dir, 'runs'), { recursive: true });
    const root = repoRoot();
    let vtierVersion = '0.0.0';
    try {
      vtierVersion = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
    } catch {
      /* keep the placeholder */
    }
    const command: CommandFacts = {
      campaign: options.campaign,
      argv: options.argv ?? process.argv.slice(),
      cwd: process.cwd(),
      vtierVersion,
      gitCommit: tryRun('git', ['-C', root, 'rev-parse', 'HEAD']),
      node: process.version,
      kernel: release(),
      startedAt: now.toISOString(),
      tools: { ...(options.tools ?? {}) },
      settings: { ...(options.settings ?? {}) },
    };
    const writer = new ResultsWriter(dir, command);
    writer.writeCommand();
    writeFileSync(join(dir, 'observations.csv'), `${CSV_COLUMNS.join(',')}\n`);
    writeFileSync(join(dir, 'machine.json'), `${JSON.stringify(options.machine ?? collectMachineFacts(), null, 2)}\n`);
    return writer;
  }

  private writeCommand(): void {
    writeFileSync(join(this.dir, 'command.json'), `${JSON.stringify(this.command, null, 2)}\n`);
  }

  /** Records a tool version or a setting discovered during the run (rewrites command.json). */
  note(kind: 'tool' | 'setting', key: string, value: unknown): void {
    if (kind === 'tool') this.command.tools[key] = String(value);
    else this.command.settings[key] = value;
    this.writeCommand();
  }

  /** Writes one run's raw JSON as runs/NNN-<name>.json and returns the path. */
  writeRaw(name: string, data: unknown): string {
    this.runFiles += 1;
    const safe = name.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80);
    const path = join(this.dir, 'runs', `${String(this.runFiles).padStart(3, '0')}-${safe}.json`);
    writeFileSync(path, `${JSON.stringify(data, null, 2)}\n`);
    return path;
  }

  /** Appends observations to the tidy CSV. */
  observe(observations: readonly Observation[]): void {
    if (observations.length === 0) return;
    const lines = observations.map((o) =>
      [this.campaign, o.system, o.workload, o.run, o.metric, o.value, o.unit, o.timeS, o.param, o.paramValue].map(csvField).join(','),
    );
    appendFileSync(join(this.dir, 'observations.csv'), `${lines.join('\n')}\n`);
  }

  /**
   * Removes the directory when nothing was measured yet (no raw run, no observation): a failed
   * start must not leave an empty results directory behind. Returns true when it removed it.
   */
  discardIfEmpty(): boolean {
    if (this.finished || this.runFiles > 0) return false;
    const csv = readFileSync(join(this.dir, 'observations.csv'), 'utf8');
    if (csv.trim() !== CSV_COLUMNS.join(',')) return false;
    if (readdirSync(join(this.dir, 'runs')).length > 0) return false;
    rmSync(this.dir, { recursive: true, force: true });
    return true;
  }

  /** Writes summary.json, then the DONE marker (last, so its presence means complete). */
  finish(summary: unknown): void {
    if (this.finished) return;
    writeFileSync(join(this.dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    writeFileSync(join(this.dir, 'DONE'), `${new Date().toISOString()}\n`);
    this.finished = true;
  }
}

/** Parses RFC 4180 CSV (quoted fields, doubled quotes). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

function numberOrUndefined(text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

/** Reads observations.csv; rows with a bad value are skipped and counted in `warnings`. */
export function readObservations(path: string, warnings: string[]): Observation[] {
  const rows = parseCsv(readFileSync(path, 'utf8'));
  const header = rows.shift() ?? [];
  const index = new Map(header.map((name, i) => [name, i]));
  for (const required of ['system', 'workload', 'run', 'metric', 'value', 'unit']) {
    if (!index.has(required)) throw new Error(`${path}: not a vtier observations file (no "${required}" column)`);
  }
  const col = (row: string[], name: string): string | undefined => {
    const i = index.get(name);
    return i === undefined ? undefined : row[i];
  };
  const observations: Observation[] = [];
  let skipped = 0;
  for (const row of rows) {
    if (row.length === 1 && row[0] === '') continue;
    const value = numberOrUndefined(col(row, 'value'));
    if (value === undefined) {
      skipped++;
      continue;
    }
    const o: Observation = {
      system: col(row, 'system') ?? '',
      workload: col(row, 'workload') ?? '',
      run: numberOrUndefined(col(row, 'run')) ?? 0,
      metric: col(row, 'metric') ?? '',
      value,
      unit: col(row, 'unit') ?? '',
    };
    const timeS = numberOrUndefined(col(row, 'time_s'));
    if (timeS !== undefined) o.timeS = timeS;
    const param = col(row, 'param');
    if (param) o.param = param;
    const paramValue = numberOrUndefined(col(row, 'param_value'));
    if (paramValue !== undefined) o.paramValue = paramValue;
    observations.push(o);
  }
  if (skipped > 0) warnings.push(`observations.csv: ${skipped} row(s) without a numeric value were skipped`);
  return observations;
}

function readJsonIfPresent(path: string): unknown {
  if (!existsSync(path)) return null;
  return JSON.parse(readFileSync(path, 'utf8'));
}

/** Converters for JSON other tools write (e.g. `vtier sim --json`) saved into a results dir. */
export type ImportAdapter = (data: unknown, fileName: string) => Observation[] | null;
const adapters: ImportAdapter[] = [];

/** Registers a converter tried on every unknown top-level *.json in a results directory. */
export function registerImportAdapter(adapter: ImportAdapter): void {
  adapters.push(adapter);
}

const OWN_FILES = new Set(['command.json', 'machine.json', 'summary.json']);

/** Loads a results directory for the report. Throws one-line errors for unusable input. */
export function loadResults(dirArg: string): LoadedResults {
  const dir = resolve(dirArg);
  if (!existsSync(dir)) throw new Error(`${dirArg}: no such results directory`);
  if (!statSync(dir).isDirectory()) throw new Error(`${dirArg}: not a directory (vtier report takes a results directory)`);
  const warnings: string[] = [];
  const parse = (name: string): unknown => {
    try {
      return readJsonIfPresent(join(dir, name));
    } catch (err) {
      warnings.push(`${name}: unreadable JSON (${(err as Error).message.split('\n')[0]})`);
      return null;
    }
  };
  const command = parse('command.json') as CommandFacts | null;
  const observations = existsSync(join(dir, 'observations.csv')) ? readObservations(join(dir, 'observations.csv'), warnings) : [];
  let imported = 0;
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith('.json') || OWN_FILES.has(name)) continue;
    const data = parse(name);
    if (data === null) continue;
    const converted = adapters.map((a) => a(data, name)).find((r) => r !== null);
    if (converted) {
      observations.push(...converted);
      imported++;
    } else warnings.push(`${name}: not a shape vtier report knows; ignored`);
  }
  if (command === null && imported === 0) {
    throw new Error(`${dirArg}: not a vtier results directory (no command.json, no saved vtier sim --json output)`);
  }
  if (command !== null && !existsSync(join(dir, 'observations.csv'))) {
    throw new Error(`${dirArg}: observations.csv is missing (results directory damaged)`);
  }
  return {
    dir,
    // A directory of imported tool output has no campaign to interrupt.
    complete: command === null ? true : existsSync(join(dir, 'DONE')),
    command,
    machine: parse('machine.json'),
    summary: parse('summary.json'),
    observations,
    warnings,
  };
}
