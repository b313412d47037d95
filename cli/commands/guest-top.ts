// `vtier guest top`: the hottest guest pages / ranges, refreshed with every sample batch.
// Weights decay by half each batch so the view follows a moving hot set.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { action, examples } from '../command.js';
import { epochOption, samplePeriodOption } from '../options.js';
import { UserError, type OutputOptions } from '../output.js';
import { formatBytes, InputError, parsePositiveInt } from '../../src/util/units.js';
import type { PageSamples } from '../../src/samples.js';
import { processAlive } from '../../guest-agent/pagemap.js';
import { explainError, parseSetup, startSampler } from './guest-record.js';

const DECAY = 0.5;
const FORGET_BELOW = 0.01;

export interface HotRange {
  gpaPfn: number;
  pages: number;
  /** Decayed sample weight per page. */
  weight: number;
  /** Samples per page in the latest batch. */
  reads: number;
  writes: number;
  /** Batch time (monotonic ns) when this run was first sampled. */
  firstSeenNs: number;
}

/** Keeps decayed per-run weights; runs are keyed by (first frame, length). */
export class HotTable {
  private readonly runs = new Map<string, HotRange>();
  batches = 0;

  /** Time of the latest batch (monotonic ns). */
  nowNs = 0;

  add(samples: PageSamples, tNs = this.nowNs): void {
    this.batches++;
    this.nowNs = tNs;
    for (const [key, run] of this.runs) {
      run.weight *= DECAY;
      run.reads = 0;
      run.writes = 0;
      if (run.weight < FORGET_BELOW) this.runs.delete(key);
    }
    for (let i = 0; i < samples.count; i++) {
      const key = `${samples.gpaPfn[i]}:${samples.pages[i]}`;
      let run = this.runs.get(key);
      if (!run) {
        run = { gpaPfn: samples.gpaPfn[i], pages: samples.pages[i], weight: 0, reads: 0, writes: 0, firstSeenNs: tNs };
        this.runs.set(key, run);
      }
      run.reads += samples.reads[i];
      run.writes += samples.writes[i];
      run.weight += samples.reads[i] + samples.writes[i];
    }
  }

  /**
   * The `count` hottest runs: by heat (the decayed sample weight per page), equal heat broken by
   * age (sampled longest first), then by address; with each one's share of all weight and its
   * age in seconds.
   */
  top(count: number): Array<HotRange & { share: number; ageS: number }> {
    let total = 0;
    for (const run of this.runs.values()) total += run.weight * run.pages;
    return [...this.runs.values()]
      .sort((a, b) => b.weight - a.weight || a.firstSeenNs - b.firstSeenNs || a.gpaPfn - b.gpaPfn)
      .slice(0, count)
      .map((run) => ({ ...run, share: total > 0 ? (run.weight * run.pages) / total : 0, ageS: Math.max(0, (this.nowNs - run.firstSeenNs) / 1e9) }));
  }

  get size(): number {
    return this.runs.size;
  }
}

function hex(pfn: number): string {
  return `0x${(pfn * 4096).toString(16).padStart(9, '0')}`;
}

/** Why a source shows nothing yet, in one line. */
export function emptyReason(source: string, pid: number | undefined, damonAggregationS?: number): string {
  if (source === 'faults') return `no samples yet: ${pid ? `process ${pid}` : 'no process'} touched no new pages; faults only sees first touches (and copy-on-write, hint faults)`;
  if (source === 'damon') return `no samples yet: DAMON reports once per aggregation interval${damonAggregationS ? ` (${damonAggregationS} s here)` : ''}, and only regions it found accessed`;
  return `no samples yet: ${source} delivers a sample every --sample-period events; nothing ${pid ? `in process ${pid} ` : ''}has reached that yet`;
}

export function formatTop(title: string, rows: ReturnType<HotTable['top']>, process: string | null = null, empty = '(no samples yet)'): string {
  const lines = [
    title,
    `${'#'.padStart(3)}  ${'GPA range'.padEnd(25)}  ${'size'.padStart(9)}  ${'now/pg'.padStart(7)}  ${'heat/pg'.padStart(8)}  ${'reads'.padStart(7)}  ${'writes'.padStart(7)}  ${'share'.padStart(6)}  ${'age'.padStart(6)}  process`,
  ];
  rows.forEach((r, i) => {
    const range = `${hex(r.gpaPfn)}-${hex(r.gpaPfn + r.pages)}`;
    lines.push(
      `${String(i + 1).padStart(3)}  ${range.padEnd(25)}  ${formatBytes(r.pages * 4096).padStart(9)}  ${String(r.reads + r.writes).padStart(7)}  ${r.weight.toFixed(2).padStart(8)}  ${String(r.reads).padStart(7)}  ${String(r.writes).padStart(7)}  ${`${(r.share * 100).toFixed(1)}%`.padStart(6)}  ${`${r.ageS.toFixed(1)}s`.padStart(6)}  ${process ?? '-'}`,
    );
  });
  if (rows.length === 0) lines.push(`  ${empty}`);
  return lines.join('\n');
}

/** `pid (comm)` of a process, or null when it is gone. */
function processLabel(pid: number): string | null {
  try {
    return `${pid} (${readFileSync(`/proc/${pid}/comm`, 'utf8').trim()})`;
  } catch {
    return null;
  }
}

interface TopCliOptions extends OutputOptions {
  source: string;
  damonMode: string;
  pid?: string;
  epoch: string;
  count: string;
  iterations?: string;
  samplePeriod?: string;
  verbose?: boolean;
}

export function registerGuestTop(guest: Command): void {
  const cmd = guest
    .command('top')
    .description('live view of the hottest guest pages and ranges, refreshed with every sample batch')
    .option('--source <source>', 'auto | damon | faults | pebs | ibs', 'auto')
    .option('--damon-mode <mode>', 'damon: auto | own | observe', 'auto')
    .option('--pid <pid>', 'only this process (page sources)')
    .addOption(epochOption('refresh interval for page sources (damon follows its aggregation interval)'))
    .option('--count <n>', 'rows to show', '20')
    .option('--iterations <n>', 'stop after this many refreshes (default: until interrupted)')
    .addOption(samplePeriodOption())
    .option('--verbose', "libbpf's log on stderr");
  examples(cmd, ['vtier guest top', 'vtier guest top --source faults --pid 1234 --count 10', 'vtier guest top --iterations 3 --json']);
  action<TopCliOptions>(cmd, async (_args, o) => {
    const setup = parseSetup(o);
    const count = parsePositiveInt(o.count, '--count');
    const iterations = o.iterations === undefined ? Infinity : parsePositiveInt(o.iterations, '--iterations');
    let pid: number | undefined;
    if (o.pid !== undefined) {
      pid = parsePositiveInt(o.pid, '--pid');
      if (!processAlive(pid)) throw new UserError(`no process with pid ${pid}`, 'target-gone');
    }
    if (count > 10_000) throw new InputError('--count: at most 10000');
    const { sampler, source } = await startSampler(setup, pid);
    const table = new HotTable();
    const tty = Boolean(process.stdout.isTTY) && !o.json;
    let failure: unknown;
    let wake: () => void = () => {};
    let done = false;
    const stop = () => {
      done = true;
      wake();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    // `q` quits on a terminal (raw keys; Ctrl-C still arrives as a key then).
    const keys = tty && process.stdin.isTTY;
    const onKey = (key: Buffer): void => {
      const k = key.toString();
      if (k === 'q' || k === 'Q' || k === '\u0003') stop();
    };
    if (keys) {
      process.stdin.setRawMode(true);
      process.stdin.resume();
      process.stdin.on('data', onKey);
    }
    const mode = sampler.describe().damonMode;
    // Only a --pid view knows whose pages these are (samples carry guest frames, not owners).
    const owner = pid !== undefined ? processLabel(pid) : null;
    const aggregationS = Number(sampler.describe().tunables?.aggrUs ?? 0) / 1e6 || undefined;
    const empty = emptyReason(source, pid, aggregationS);
    try {
      sampler.onError((err) => {
        failure = err;
        stop();
      });
      sampler.onBatch((tNs, samples) => {
        if (done) return;
        table.add(samples, tNs);
        const stats = sampler.stats();
        const rows = table.top(count);
        if (o.json) {
          const top = rows.map((r) => ({ ...r, process: owner }));
          process.stdout.write(`${JSON.stringify({ iteration: table.batches, tNs, source, damonMode: mode ?? null, stats, ranges: table.size, top, ...(rows.length === 0 ? { why: empty } : {}) })}\n`);
        } else {
          const title = `vtier guest top: ${source}${mode ? ` (${mode})` : ''}, refresh ${table.batches}, ${stats.samples} samples, ${stats.pagesSeen} pages seen, ${stats.drops} drops, ${table.size} ranges tracked${keys ? '; q quits' : ''}`;
          process.stdout.write(`${tty ? '\x1b[H\x1b[2J' : table.batches > 1 ? '\n' : ''}${formatTop(title, rows, owner, empty)}\n`);
        }
        if (table.batches >= iterations) stop();
      });
      while (!done) await new Promise<void>((r) => (wake = r));
    } catch (err) {
      failure = err;
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      if (keys) {
        process.stdin.off('data', onKey);
        process.stdin.setRawMode(false);
        process.stdin.pause();
      }
      await sampler.stop();
    }
    if (failure) throw explainError(failure);
  });
}
