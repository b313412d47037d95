// Every command line the documentation shows must parse: each `vtier ...` line of README.md's
// fenced blocks, and each line under "Examples:" in every command's --help. They are parsed
// by the real command tree (cli/program.ts) with every action replaced by a no-op, so nothing
// runs: an unknown option, a missing argument or a missing required option (what the CLI
// reports as a usage error, exit 2) fails here. A `-- vtier ...` command inside an example is
// parsed too. The top-level example of `vtier --help` also really runs (as root).
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CommanderError, type Command } from 'commander';
import { buildProgram, TOP_EXAMPLES } from '../cli/program.js';
import { packageRoot } from '../native/addon.js';
import { decodeTrace } from '../src/trace/index.js';

const root = packageRoot();
const run = promisify(execFile);

/** Shell-like words of each simple command of `line`: quotes group, backslashes escape, an
 *  unquoted `#` starts a comment, `&&`, `||`, `;` and `|` separate commands, and redirections
 *  (`> FILE`, `2> FILE`, `< FILE`) are dropped. */
export function shellCommands(line: string): string[][] {
  const commands: string[][] = [[]];
  let word: string | null = null;
  let skipNext = false;
  const end = () => {
    if (word !== null) {
      if (skipNext) skipNext = false;
      else commands[commands.length - 1].push(word);
    }
    word = null;
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "'" || c === '"') {
      const close = line.indexOf(c, i + 1);
      if (close < 0) throw new Error(`unclosed quote in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, close);
      i = close;
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[++i];
    } else if (/\s/.test(c)) {
      end();
    } else if (c === '#' && word === null) {
      break;
    } else if (c === '&' || c === '|' || c === ';') {
      end();
      if (line[i + 1] === c) i++;
      commands.push([]);
    } else if (c === '>' || c === '<') {
      if (word !== null && /^\d$/.test(word)) word = null;
      end();
      if (line[i + 1] === '>') i++;
      skipNext = true;
    } else {
      word = (word ?? '') + c;
    }
  }
  end();
  return commands.filter((c) => c.length > 0);
}

/** The words of a line holding one simple command. */
export function shellWords(line: string): string[] {
  return shellCommands(line).flat();
}

/** `vtier ...` lines of the README's fenced code blocks (continuations joined). */
function readmeExamples(): string[] {
  const text = readFileSync(join(root, 'README.md'), 'utf8');
  const out: string[] = [];
  for (const block of text.matchAll(/```[a-z]*\n([\s\S]*?)```/g)) {
    const joined = block[1].replace(/\\\n\s*/g, ' ');
    for (const raw of joined.split('\n')) {
      const line = raw.trim().replace(/^\$\s+/, '');
      if (/^vtier\s/.test(line)) out.push(line);
    }
  }
  return out;
}

function allCommands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap((c) => allCommands(c))];
}

/** Each command's --help text, rendered in-process (addHelpText blocks included). */
function helpTexts(): Array<{ name: string; text: string }> {
  const program = buildProgram();
  return allCommands(program).map((c) => {
    let text = '';
    c.configureOutput({ writeOut: (s) => (text += s), writeErr: (s) => (text += s) });
    c.outputHelp();
    const names: string[] = [];
    for (let x: Command | null = c; x; x = x.parent) names.unshift(x.name());
    return { name: names.join(' '), text };
  });
}

function helpExamples(): Array<{ where: string; line: string }> {
  const out: Array<{ where: string; line: string }> = [];
  for (const { name, text } of helpTexts()) {
    const block = /\nExamples:\n((?: {2}.*\n?)+)/.exec(text)?.[1] ?? '';
    for (const raw of block.split('\n')) {
      const line = raw.trim().replace(/^\$\s+/, '');
      if (line) out.push({ where: `${name} --help`, line });
    }
  }
  return out;
}

/** Parses `words` (after "vtier") with no action run; returns the usage error or null. */
async function parseOnly(words: string[]): Promise<string | null> {
  const program = buildProgram();
  for (const c of allCommands(program)) {
    c.exitOverride();
    c.configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} });
    if ((c as unknown as { _actionHandler: unknown })._actionHandler) c.action(() => {});
  }
  try {
    await program.parseAsync(words, { from: 'user' });
    return null;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? null : err.message;
    throw err;
  }
}

/** The words after `vtier` of each vtier command in the example, `-- vtier ...` ones included. */
function commandLines(line: string): string[][] {
  const nested = (words: string[]): string[][] => {
    const dash = words.indexOf('--');
    // An option value that is a vtier command (eval compare --vtier-cmd "vtier guest run ...").
    const quoted = words.slice(1, dash > 0 ? dash : undefined).filter((w) => /^vtier\s/.test(w));
    return [
      words.slice(1),
      ...quoted.flatMap((w) => nested(shellWords(w))),
      ...(dash > 0 && words[dash + 1] === 'vtier' ? nested(words.slice(dash + 1)) : []),
    ];
  };
  const commands = shellCommands(line).filter((words) => words[0] === 'vtier');
  expect(commands.length, `no vtier command in: ${line}`).toBeGreaterThan(0);
  return commands.flatMap(nested);
}

describe('documented command lines parse', () => {
  const readme = readmeExamples();
  const help = helpExamples();

  it('finds the examples (README blocks, every command with an Examples section)', () => {
    expect(readme.length).toBeGreaterThanOrEqual(15);
    expect(help.length).toBeGreaterThanOrEqual(30);
    expect(help.map((h) => h.line)).toEqual(expect.arrayContaining(TOP_EXAMPLES));
  });

  it('a usage error is caught (the check can fail)', async () => {
    expect(await parseOnly(shellWords('sim --workload hotspot --no-such-option 1'))).toMatch(/unknown option/);
    expect(await parseOnly(shellWords('guest run --source faults'))).toMatch(/required option/);
    expect(await parseOnly(shellWords('no-such-command'))).toMatch(/unknown command/);
  });

  it('every README example parses', async () => {
    const failures: string[] = [];
    for (const line of readme) {
      for (const words of commandLines(line)) {
        const err = await parseOnly(words);
        if (err) failures.push(`README.md: ${line}\n    vtier ${words.join(' ')}: ${err}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('every --help example parses', async () => {
    const failures: string[] = [];
    for (const { where, line } of help) {
      for (const words of commandLines(line)) {
        const err = await parseOnly(words);
        if (err) failures.push(`${where}: ${line}\n    vtier ${words.join(' ')}: ${err}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('shellWords: quotes, escapes and comments', () => {
    expect(shellWords(`vtier a 'b c' "d e" f\\ g  # note`)).toEqual(['vtier', 'a', 'b c', 'd e', 'f g']);
    expect(shellWords('vtier x--y -- vtier workload')).toEqual(['vtier', 'x--y', '--', 'vtier', 'workload']);
    expect(shellCommands('mkdir a && vtier sim --json > a/s.json 2>/dev/null; vtier report a | tee x')).toEqual([
      ['mkdir', 'a'],
      ['vtier', 'sim', '--json'],
      ['vtier', 'report', 'a'],
      ['tee', 'x'],
    ]);
  });
});

// `vtier --help`'s record example starts `vtier workload` after --: `vtier` must resolve in the
// child, and the recorded pid must be the process that touches the memory (the CLI would run
// the workload binary as its own child, whose faults a pid filter does not see).
const workloadBuilt = existsSync(join(root, 'build', 'Release', 'vtier-workload'));
describe.skipIf((process.getuid?.() !== 0 && process.env.CI !== 'true') || !workloadBuilt)('the vtier --help record example runs', () => {
  it('records the workload started as `-- vtier workload hotspot`: its pages, not the launcher\'s', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtier-readme-'));
    try {
      const example = shellWords(TOP_EXAMPLES.find((l) => l.includes('-- vtier workload'))!);
      // The example as written, shortened: 3 s and a 128 MiB region; faults (first touches)
      // make the page count exact whatever --source auto picks here. Following the launcher
      // instead (node running the CLI) sees ~11k pages of its own.
      const args = example.slice(1).map((w, i, a) => (a[i - 1] === '--duration' ? '3s' : a[i - 1] === '--size' ? '128M' : a[i - 1] === '--source' ? 'faults' : a[i - 1] === '--out' ? join(dir, 'run.trace') : w));
      const env = { ...process.env, PATH: (process.env.PATH ?? '').split(':').filter((p) => !existsSync(join(p, 'vtier'))).join(':') };
      const dash = args.indexOf('--');
      const { stdout } = await run('node', [join(root, 'bin', 'vtier.js'), ...args.slice(0, dash), '--json', ...args.slice(dash)], { cwd: dir, env, timeout: 60_000 });
      const summary = JSON.parse(stdout);
      expect(summary.target.command).toEqual(example.slice(example.indexOf('--') + 1).map((w, i, a) => (a[i - 1] === '--size' ? '128M' : w)));
      // 128 MiB = 32768 pages, each first-touched once by the process the trace names.
      expect(summary.pagesSeen).toBeGreaterThan(32768 * 0.9);
      expect(summary.pagesSeen).toBeLessThan(32768 * 1.1);
      const trace = decodeTrace(readFileSync(join(dir, 'run.trace')));
      expect(trace.header.target?.pid).toBe(summary.target.pid);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
