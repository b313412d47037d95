// One vocabulary: every command that takes one of the shared options (cli/options.ts) declares
// it under the same name with the same default (golden table of those options), usage errors are `"kind":"usage"` with exit 2
// in every command, and `vtier --help` documents the exit codes. The options table of every
// command is a golden file; when an intended change alters it, accept it with:
//   VTIER_UPDATE_GOLDEN=1 npx vitest run test/cli-vocabulary.test.ts
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../cli/options.js';
import { Classifier } from '../src/classifier/index.js';
import { runsFrom } from '../src/samples.js';

const ROOT = join(import.meta.dirname, '..');
const GOLDEN = join(ROOT, 'test', 'golden', 'cli', 'options.txt');
const ACCEPT = 'VTIER_UPDATE_GOLDEN=1 npx vitest run test/cli-vocabulary.test.ts';

/** The options cli/options.ts declares for every command that takes them. */
const SHARED = /^(-o, )?--(out|output|size|workload-size|dram|dram-budget|host-dram-budget|epoch|thp|no-thp|hot-prob|hot-frac|shift-every|sample-period|period|cpu-budget|pid) /;
const SHARED_FLAGS = (flags: string): string => `${flags} `;

const COMMANDS = [
  ['demo'], ['doctor'], ['workload'], ['guest', 'record'], ['guest', 'run'], ['guest', 'top'], ['classify'], ['sim'], ['sim', 'sweep'],
  ['host', 'run'], ['host', 'status'], ['report'], ['eval', 'overhead'], ['eval', 'compare'], ['eval', 'sim'], ['eval', 'accuracy'],
  ['lab', 'run'], ['lab', 'shell'], ['lab', 'setup'], ['lab', 'status'],
];

function vtier(args: string[]) {
  return spawnSync(process.execPath, [join(ROOT, 'bin', 'vtier.js'), ...args], { encoding: 'utf8', timeout: 60_000 });
}

interface OptionLine {
  flags: string;
  fallback: string | null;
}

/** The options of one command's --help: flags and default, wrapped lines joined. */
function options(help: string): OptionLine[] {
  const section = help.split(/^Options:$/m)[1]?.split(/^\S/m)[0] ?? '';
  const entries: string[] = [];
  for (const line of section.split('\n')) {
    if (/^ {2}-/.test(line)) entries.push(line.trim());
    else if (line.trim() && entries.length) entries[entries.length - 1] += ` ${line.trim()}`;
  }
  return entries.map((e) => {
    const [flags] = e.split(/\s{2,}/);
    const fallback = /\(default: (.*?)\)$/.exec(e)?.[1] ?? null;
    return { flags, fallback };
  });
}

const helps = new Map(COMMANDS.map((c) => [c.join(' '), vtier([...c, '--help'])]));

describe('one CLI vocabulary', () => {
  it('every command prints its help', () => {
    for (const [name, res] of helps) expect(res.status, name).toBe(0);
  });

  it('shares one name and one default for each shared option (golden table)', () => {
    const table: string[] = [];
    for (const [name, res] of helps) {
      for (const o of options(res.stdout)) {
        // The shared vocabulary only: a command's own options are its owner's business.
        if (!SHARED.test(SHARED_FLAGS(o.flags))) continue;
        table.push(`${name.padEnd(16)} ${o.flags}${o.fallback !== null ? `  = ${o.fallback}` : ''}`);
      }
    }
    const actual = `${table.join('\n')}\n`;
    if (process.env.VTIER_UPDATE_GOLDEN === '1') writeFileSync(GOLDEN, actual);
    const expected = readFileSync(GOLDEN, 'utf8');
    if (actual !== expected) expect(actual, `options differ from ${GOLDEN}; if intended, accept with: ${ACCEPT}`).toBe(expected);

    // The rules themselves, whatever the golden file says.
    const all = [...helps].flatMap(([name, res]) => options(res.stdout).map((o) => ({ name, ...o })));
    const named = (re: RegExp) => all.filter((o) => re.test(o.flags));
    // commander's own defaults are quoted; prose such as "the trace's epoch" is a derived value.
    const defaults = (re: RegExp) => new Set(named(re).map((o) => o.fallback).filter((f) => f !== null && f.startsWith('"')));
    expect([...defaults(/^--epoch /)]).toEqual([`"${DEFAULTS.epoch}"`]);
    expect([...defaults(/^--shift-every /)]).toEqual([`"${DEFAULTS.shiftEvery}"`]);
    expect([...defaults(/^--hot-prob /)]).toEqual([`"${DEFAULTS.hotProb}"`]);
    expect([...defaults(/^--hot-frac /)]).toEqual([`"${DEFAULTS.hotFrac}"`]);
    // Outputs are -o/--out; a sample period is --sample-period; THP is on unless --no-thp.
    expect(named(/--output\b/)).toEqual([]);
    expect(named(/^--out /)).toEqual([]);
    expect(named(/^--period /)).toEqual([]);
    expect(named(/--workload-size/)).toEqual([]);
    for (const o of named(/^--thp$/)) expect(o.fallback, o.name).toBe('true');
    for (const o of named(/^--dram /)) expect(o.flags, o.name).toBe('--dram <size|pct>');
    // (argument placeholders such as <size> / <bytes> are cosmetic; names and defaults are the contract)
  });

  it('--size: one default per meaning', () => {
    const sizes = [...helps].flatMap(([name, res]) => options(res.stdout).filter((o) => /^--size /.test(o.flags)).map((o) => ({ name, fallback: o.fallback })));
    // The built-in workload on this machine: one default wherever the command picks it.
    for (const name of ['guest record', 'eval accuracy', 'demo']) {
      expect(sizes.find((s) => s.name === name)?.fallback, name).toBe(`"${DEFAULTS.workloadSize}"`);
    }
    // Simulated guest memory: its own default, the same in sim and sim sweep.
    for (const name of ['sim', 'sim sweep']) expect(sizes.find((s) => s.name === name)?.fallback, name).toBe(`"${DEFAULTS.simSize}"`);
    // Every other --size either has no default (workload: required) or is a deliberate lab
    // default (eval compare --lab: the lab VM's 2 GiB node); a new one must be placed above.
    const placed = new Set(['guest record', 'eval accuracy', 'demo', 'sim', 'sim sweep', 'workload', 'eval compare']);
    expect(sizes.filter((s) => !placed.has(s.name))).toEqual([]);
    expect(sizes.find((s) => s.name === 'workload')?.fallback).toBeNull();
  });

  it('DRAM budgets take a size or a share, as --dram does', () => {
    const budgets = [...helps].flatMap(([name, res]) => options(res.stdout).filter((o) => /dram/.test(o.flags)).map((o) => ({ name, flags: o.flags })));
    expect(budgets.map((b) => `${b.name}: ${b.flags}`)).toEqual(expect.arrayContaining(['guest run: --dram-budget <size|pct>', 'lab run: --host-dram-budget <size|pct>']));
    for (const b of budgets) expect(b.flags, b.name).toMatch(/ <size\|pct>$/);
    // And they parse one: guest run resolves 20% against the replayed guest RAM.
    const bad = vtier(['guest', 'run', '--connect', 'unix:/nonexistent.sock', '--source', 'replay:/nonexistent.trace', '--dram-budget', '0%', '--json']);
    expect(bad.status).toBe(2);
    expect(JSON.parse(bad.stdout).error.message).toMatch(/--dram-budget: "0%" must be a share above 0%/);
  });

  it('guest record and guest run take the same target: --pid or a command after --', () => {
    for (const name of ['guest record', 'guest run']) {
      const help = helps.get(name)?.stdout ?? '';
      expect(help, name).toMatch(/^Usage: vtier guest \w+ \[options\] \[command\.\.\.\]/m);
      expect(options(help).map((o) => o.flags), name).toContain('--pid <pid>');
    }
  });

  it('classifier cooling defaults in --help are the classifier\'s (evidence rule)', () => {
    const coolingHelp = (name: string, flag: string) => {
      const help = (helps.get(name)?.stdout ?? '').replace(/\n\s+/g, ' ');
      return new RegExp(`${flag} <n>\\s+([^]*?)(?=\\s--|$)`).exec(help)?.[1] ?? '';
    };
    // A classifier with its defaults, one sample, no new ones: the epoch of its first halving.
    const c = new Classifier({ dramBudgetPages: 8, ramRanges: runsFrom([[0, 1024]]) });
    c.ingest({ count: 1, gpaPfn: new Float64Array([5]), pages: new Uint32Array([1]), reads: new Uint32Array([100]), writes: new Uint32Array([0]) } as never);
    let firstCooling = 0;
    for (let e = 1; e <= 200 && !firstCooling; e++) {
      c.decide();
      if (c.stats().coolings > 0) firstCooling = e;
    }
    expect(firstCooling).toBeGreaterThan(0);
    for (const name of ['classify', 'eval accuracy']) {
      expect(coolingHelp(name, '--cool-epochs'), name).toMatch(new RegExp(`default: ${firstCooling}\\b`));
      expect(coolingHelp(name, '--cool-samples'), name).toMatch(/default: off/);
    }
  });

  it('sim says shift, in text and JSON; shifting is understood with a deprecation warning', () => {
    const small = ['sim', '--size', '64M', '--dram', '16M', '--duration', '2s', '--policy', 'static'];
    const text = vtier([...small, '--workload', 'shift']);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^workload shift \(/m);
    expect(text.stdout + text.stderr).not.toMatch(/shifting/);
    const old = vtier([...small, '--workload', 'shifting', '--json']);
    expect(old.status, old.stderr).toBe(0);
    expect(JSON.parse(old.stdout).workload.name).toBe('shift');
    expect(old.stdout).not.toMatch(/shifting/);
    expect(old.stderr).toMatch(/--workload shifting is deprecated; use shift/);
    expect(vtier(['sim', '--help']).stdout.replace(/\s+/g, ' ')).toMatch(/access pattern: uniform, hotspot, zipf, shift, graph, kv\b/);
  }, 60_000);

  it('names the shifting workload shift', () => {
    for (const name of ['workload', 'sim', 'eval accuracy']) {
      const help = helps.get(name)?.stdout ?? '';
      expect(help, name).toMatch(/\bshift\b/);
      expect(help, name).not.toMatch(/shifting[,)]/);
    }
  });

  it('reports a usage error as "kind":"usage" with exit 2 in every command', () => {
    for (const command of COMMANDS) {
      const res = vtier([...command, '--no-such-option', '--json']);
      expect(res.status, command.join(' ')).toBe(2);
      expect(JSON.parse(res.stdout).error, command.join(' ')).toMatchObject({ kind: 'usage' });
    }
    // A bad value (not only an unknown option) is a usage error too.
    for (const args of [['sim', '--epoch', 'soon'], ['workload', 'hotspot', '--size', 'lots'], ['classify', '/nonexistent.trace', '--dram', '1G'], ['report', '/nonexistent-dir']]) {
      const res = vtier([...args, '--json']);
      expect(res.status, args.join(' ')).toBe(2);
      expect(JSON.parse(res.stdout).error, args.join(' ')).toMatchObject({ kind: 'usage' });
    }
  }, 180_000);

  it('documents the exit codes in vtier --help', () => {
    const help = vtier(['--help']).stdout;
    expect(help).toMatch(/Exit codes:\n {2}0 +success\n {2}1 +.*\n {2}2 +usage error.*"kind":"usage".*\n {2}130 +interrupted/);
  });
});
