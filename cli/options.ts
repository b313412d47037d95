// The shared vocabulary of the command line: options that several commands take are declared
// here once, with one name, one meaning and one default, and every command adds them from here.
// A golden test (test/cli-vocabulary.test.ts) checks each command's --help against this table.
import { Option } from 'commander';
import { InputError, parseSizeBytes } from '../src/util/units.js';

/** The defaults every command shares. */
export const DEFAULTS = {
  /** Decision / batch interval: the guest agent's, the recorder's and the simulator's epoch. */
  epoch: '500ms',
  /** How often the `shift` workload moves its hot set. */
  shiftEvery: '20s',
  /** Share of accesses that hit the hot set (hotspot, shift): 1 = cold pages stay idle after the
   *  first touch, a crisp truth that DAMON's region sampling can resolve. */
  hotProb: '1',
  /** Share of the region that is hot. */
  hotFrac: '0.1',
  /** Transparent huge pages back the built-in workload unless --no-thp. */
  thp: true,
  /** The built-in workload's region on this machine (guest record, eval accuracy, demo). The
   *  simulator's --size is simulated memory (its own default); eval compare --lab's is the lab
   *  VM's workload, sized to its 2 GiB node (a deliberate lab default). */
  workloadSize: '1G',
  /** The simulator's guest memory. */
  simSize: '10G',
  /** CPU share of one core a perf sample source may spend (the period adapts to it). */
  cpuBudget: '1%',
} as const;

/** The one name of the shifting-hot-set workload. */
export const SHIFT_WORKLOAD = 'shift';

/** `-o, --out <path>`: where a command writes its output (file or directory, said in `what`). */
export function outOption(what: string, argName = 'path'): Option {
  return new Option(`-o, --out <${argName}>`, what);
}

/** `--size <bytes>`: the workload region (binary multiples: 512M, 10G). */
export function sizeOption(what = 'workload region (512M, 10G)', fallback?: string): Option {
  const o = new Option('--size <bytes>', what);
  return fallback === undefined ? o : o.default(fallback);
}

/** A DRAM budget option other than --dram (guest run --dram-budget, lab run --host-dram-budget):
 *  the same values, a size or a share. */
export function dramBudgetOption(flag: string, what: string): Option {
  return new Option(`${flag} <size|pct>`, `${what}; a size (2G) or a share of the memory (20%)`);
}

/** `--dram <size|pct>`: a DRAM budget as bytes (2G) or a share of the memory it splits (20%). */
export function dramOption(what: string, fallback?: string): Option {
  const o = new Option('--dram <size|pct>', `${what}; a size (2G) or a share of the memory (20%)`);
  return fallback === undefined ? o : o.default(fallback);
}

/** `--epoch <time>`, default DEFAULTS.epoch unless the command derives it (then no default). */
export function epochOption(what = 'classifier epoch (decision interval)', withDefault = true): Option {
  const o = new Option('--epoch <time>', what);
  return withDefault ? o.default(DEFAULTS.epoch) : o;
}

/** `--hot-prob <fraction>`. */
export function hotProbOption(what = 'probability an access hits the hot set (hotspot, shift)'): Option {
  return new Option('--hot-prob <fraction>', what).default(DEFAULTS.hotProb);
}

/** `--hot-frac <fraction>`. */
export function hotFracOption(what = 'fraction of the region that is hot (hotspot, shift)'): Option {
  return new Option('--hot-frac <fraction>', what).default(DEFAULTS.hotFrac);
}

/** `--shift-every <time>`. */
export function shiftEveryOption(what = 'shift workload: move the hot set this often'): Option {
  return new Option('--shift-every <time>', what).default(DEFAULTS.shiftEvery);
}

/** `--sample-period <n>`: events per sample (faults, pebs, ibs; the simulator's PEBS period). */
export function samplePeriodOption(what = 'events per sample (faults, pebs, ibs)', fallback?: string): Option {
  const o = new Option('--sample-period <n>', what);
  return fallback === undefined ? o : o.default(fallback);
}

/** `--cpu-budget <pct>`: the sample period of perf sources (pebs, ibs, faults via perf) adapts
 *  so their BPF program stays within this share of one core; `off` keeps it fixed. */
export function cpuBudgetOption(what = 'perf sources (pebs, ibs, faults with --sample-period > 1): adapt the sample period to keep sampling within this CPU share of one core, or off (DAMON and the fault tracepoint have no period)'): Option {
  return new Option('--cpu-budget <pct>', what).default(DEFAULTS.cpuBudget);
}

/** `--thp` and `--no-thp` (commander pairs them): THP on unless --no-thp. */
export function thpOptions(what = 'the workload region'): Option[] {
  return [
    new Option('--thp', `back ${what} with transparent huge pages (the default)`).default(DEFAULTS.thp),
    new Option('--no-thp', `back ${what} with base pages instead of transparent huge pages`),
  ];
}

/** Adds options to a command (commander has no addOptions). */
export function addOptions<T extends { addOption(o: Option): T }>(cmd: T, ...options: Array<Option | Option[]>): T {
  for (const o of options.flat()) cmd.addOption(o);
  return cmd;
}

/**
 * Parses a `--dram` value: `2G`-style sizes or `N%` of `totalBytes`. Returns bytes; throws an
 * InputError naming the option when the value is not one of those, or is out of (0, total].
 */
export function parseDramBytes(text: string, totalBytes: number | null, what = '--dram'): number {
  const pct = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(String(text));
  if (pct) {
    const share = Number(pct[1]);
    if (!(share > 0 && share <= 100)) throw new InputError(`${what}: "${text}" must be a share above 0% and at most 100%`);
    if (totalBytes === null) throw new InputError(`${what}: "${text}" is a share, but the memory size it would be a share of is unknown here; give a size (2G)`);
    return Math.floor((totalBytes * share) / 100);
  }
  return parseSizeBytes(text, what);
}

/** Exit codes every command uses; printed by `vtier --help`. */
export const EXIT_CODES: Array<[number, string]> = [
  [0, 'success'],
  [1, 'the command failed (the error line says why; under --json: {"error":{...}})'],
  [2, 'usage error: bad option or argument (under --json: "kind":"usage")'],
  [130, 'interrupted (Ctrl-C); campaigns keep what they measured'],
];
