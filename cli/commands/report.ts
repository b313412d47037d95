// `vtier report RESULTS_DIR [-o FILE] [--format html|md]`: one self-contained page per campaign.
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { action, examples } from '../command.js';
import { outOption } from '../options.js';
import { printResult, UserError, type OutputOptions } from '../output.js';
import { loadResults } from '../../eval/results.js';
import { buildReport, buildTraceReport, renderHtml, renderMarkdown } from '../../eval/report.js';
import { readTraceFile, traceLine } from '../trace-file.js';
import { summarizeTrace } from '../../src/trace/index.js';
import '../../eval/sim-import.js';

interface ReportOptions extends OutputOptions {
  out?: string;
  format?: string;
}

/** Writes the page to `output` ("-" = stdout). Returns false when the page itself went to stdout
 *  (nothing more to print), true when the caller should print its result line or JSON. */
function writeOut(text: string, output: string, options: ReportOptions): boolean {
  if (output === '-' && !options.json) {
    process.stdout.write(text);
    return false;
  }
  try {
    if (output !== '-') writeFileSync(output, text);
  } catch (err) {
    throw new UserError(`cannot write ${output}: ${(err as Error).message}`, 'io');
  }
  return true;
}

export function registerReport(program: Command): void {
  const cmd = program
    .command('report')
    .description('render a results directory, or a trace, as one self-contained HTML page (inline SVG plots) or Markdown tables')
    .argument('<results-dir|trace>', 'a directory written by a vtier eval campaign (or holding saved `vtier sim --json` output), or a trace file (heat map and working-set size)')
    .addOption(outOption('where to write the report ("-" = stdout; default <results-dir>/report.html or .md)', 'file'))
    .option('--format <format>', 'html or md', 'html');
  action<ReportOptions>(cmd, async (args, options) => {
    const dir = String(args[0]);
    const format = options.format ?? 'html';
    if (format !== 'html' && format !== 'md') throw new UserError(`--format: "${format}" is not html or md`, 'bad-input', 2);
    if (existsSync(dir) && statSync(dir).isFile()) {
      // A trace: heat map and working-set size, next to the trace unless -o says otherwise.
      const trace = readTraceFile(dir);
      const summary = summarizeTrace(trace);
      const model = await buildTraceReport(trace, dir, { plots: format === 'html' });
      const output = options.out ?? `${dir.replace(/\.trace$/, '')}.report.${format}`;
      if (!writeOut(format === 'html' ? renderHtml(model) : renderMarkdown(model), output, options)) return;
      printResult(options, { output: output === '-' ? null : output, format, trace: dir, summary, sections: model.sections.map((s) => s.id), warnings: model.warnings }, () =>
        [traceLine(dir, summary), ...model.warnings.map((w) => `warning: ${w}`), `wrote ${output} (${model.sections.map((s) => s.id).join(', ')})`].join('\n'),
      );
      return;
    }
    let results;
    try {
      results = loadResults(dir);
    } catch (err) {
      const message = (err as Error).message;
      // A path that is no results directory at all is a usage error; a damaged one is not.
      const usage = /no such results directory|not a directory|not a vtier results directory/.test(message);
      throw new UserError(message, usage ? 'usage' : 'bad-results', usage ? 2 : 1);
    }
    const model = await buildReport(results, { plots: format === 'html' });
    const output = options.out ?? join(results.dir, `report.${format}`);
    if (!writeOut(format === 'html' ? renderHtml(model) : renderMarkdown(model), output, options)) return;
    printResult(
      options,
      {
        output: output === '-' ? null : output,
        format,
        complete: model.complete,
        plots: model.sections.filter((s) => s.svg).map((s) => s.id),
        sections: model.sections.map((s) => s.id),
        observations: results.observations.length,
        warnings: model.warnings,
      },
      () =>
        `${model.complete ? '' : 'note: interrupted run (no DONE marker); the report covers the completed runs\n'}` +
        `wrote ${output} (${model.sections.length} section(s): ${model.sections.map((s) => s.id).join(', ') || 'summary only'})`,
    );
  });
  examples(cmd, [
    'vtier report results/overhead-20261122T043100Z -o report.html',
    'vtier report results/overhead-20261122T043100Z --format md -o -',
    'vtier report run.trace -o run.html',
    'mkdir sim1 && vtier sim --workload hotspot --size 10G --dram 2G --policy vtier,autonuma,static --json > sim1/sim.json && vtier report sim1',
  ]);
}
