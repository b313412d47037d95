// `vtier guest top`: the hottest guest pages / ranges, refreshed with every sample batch.
// Weights decay by half each batch so the view follows a moving hot set.
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
}

/** Keeps decayed per-run weights; runs are keyed by (first frame, length). */
export class HotTable {
  private readonly runs = new Map<string, HotRange>();
  batches = 0;

  add(samples: PageSamples): void {
    this.batches++;
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
        run = { gpaPfn: samples.gpaPfn[i], pages: samples.pages[i], weight: 0, reads: 0, writes: 0 };
        this.runs.set(key, run);
      }
      run.reads += samples.reads[i];
      run.writes += samples.writes[i];
      run.weight += samples.reads[i] + samples.writes[i];
    }
  }

  /** The `count` hottest runs by per-page weight, and each one's share of all weight. */
  top(count: number): Array<HotRange & { share: number }> {
    let total = 0;
    for (const run of this.runs.values()) total += run.weight * run.pages;
    return [...this.runs.values()]
      .sort((a, b) => b.weight - a.weight || a.gpaPfn - b.gpaPfn)
      .slice(0, count)
      .map((run) => ({ ...run, share: total > 0 ? (run.weight * run.pages) / total : 0 }));
  }

  get size(): number {
    return this.runs.size;
  }
}

function hex(pfn: number): string {
  return `0x${(pfn * 4096).toString(16).padStart(9, '0')}`;
}

export function formatTop(title: string, rows: ReturnType<HotTable['top']>): string {
  const lines = [title, `${'#'.padStart(3)}  ${'GPA range'.padEnd(25)}  ${'size'.padStart(9)}  ${'weight/pg'.padStart(10)}  ${'reads'.padStart(8)}  ${'writes'.padStart(8)}  share`];
  rows.forEach((r, i) => {
    const range = `${hex(r.gpaPfn)}-${hex(r.gpaPfn + r.pages)}`;
    lines.push(
      `${String(i + 1).padStart(3)}  ${range.padEnd(25)}  ${formatBytes(r.pages * 4096).padStart(9)}  ${r.weight.toFixed(2).padStart(10)}  ${String(r.reads).padStart(8)}  ${String(r.writes).padStart(8)}  ${(r.share * 100).toFixed(1).padStart(5)}%`,
    );
  });
  if (rows.length === 0) lines.push('  (no samples yet)');
  return lines.join('\n');
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
    const mode = sampler.describe().damonMode;
    try {
      sampler.onError((err) => {
        failure = err;
        stop();
      });
      sampler.onBatch((tNs, samples) => {
        if (done) return;
        table.add(samples);
        const stats = sampler.stats();
        const rows = table.top(count);
        if (o.json) {
          process.stdout.write(`${JSON.stringify({ iteration: table.batches, tNs, source, damonMode: mode ?? null, stats, ranges: table.size, top: rows })}\n`);
        } else {
          const title = `vtier guest top: ${source}${mode ? ` (${mode})` : ''}, refresh ${table.batches}, ${stats.samples} samples, ${stats.pagesSeen} pages seen, ${stats.drops} drops, ${table.size} ranges tracked`;
          process.stdout.write(`${tty ? '\x1b[H\x1b[2J' : table.batches > 1 ? '\n' : ''}${formatTop(title, rows)}\n`);
        }
        if (table.batches >= iterations) stop();
      });
      while (!done) await new Promise<void>((r) => (wake = r));
    } catch (err) {
      failure = err;
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await sampler.stop();
    }
    if (failure) throw explainError(failure);
  });
}
