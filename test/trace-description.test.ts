// One trace, one description: record, classify, sim --trace and report print the same line
// (cli/trace-file.ts traceLine over src/trace summarizeTrace) for the same file.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../native/addon.js';

const run = promisify(execFile);
const cli = join(packageRoot(), 'bin', 'vtier.js');
const vtier = async (...args: string[]) => (await run('node', [cli, ...args], { timeout: 120_000 })).stdout;
const workloadBuilt = existsSync(join(packageRoot(), 'build', 'Release', 'vtier-workload'));

describe.skipIf((process.getuid?.() !== 0 && process.env.CI !== 'true') || !workloadBuilt)('one description of a trace', () => {
  it('record, classify, sim --trace and report print the identical "trace PATH: ..." line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtier-describe-'));
    try {
      const trace = join(dir, 'run.trace');
      const outputs = {
        record: await vtier('guest', 'record', '--source', 'faults', '--duration', '2s', '--size', '32M', '--out', trace),
        classify: await vtier('classify', trace, '--dram', '4M'),
        sim: await vtier('sim', '--trace', trace, '--dram', '4M', '--policy', 'static'),
        report: await vtier('report', trace, '-o', join(dir, 'run.html')),
      };
      const lines = Object.fromEntries(
        Object.entries(outputs).map(([name, out]) => {
          const found = out.split('\n').map((l) => l.trim()).filter((l) => l.startsWith(`trace ${trace}: `));
          expect(found, `${name}:\n${out}`).toHaveLength(1);
          return [name, found[0]];
        }),
      );
      expect(lines.record).toMatch(/^trace .*: faults trace: [\d,]+ samples in [\d.]+ s, \d+ batches/);
      expect(new Set(Object.values(lines)).size, JSON.stringify(lines, null, 1)).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
