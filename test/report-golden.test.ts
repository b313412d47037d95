// The Markdown report of a fixed results directory, compared with test/golden/report/.
// When the output changes on purpose, accept it with:
//   VTIER_UPDATE_GOLDEN=1 npx vitest run test/report-golden.test.ts
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadResults } from '../eval/results.js';
import { buildReport, renderHtml, renderMarkdown } from '../eval/report.js';
import { buildReportFixture } from './helpers/report-fixture.js';

const GOLDEN = join(import.meta.dirname, 'golden', 'report');
const ACCEPT = 'VTIER_UPDATE_GOLDEN=1 npx vitest run test/report-golden.test.ts';
const base = mkdtempSync(join(tmpdir(), 'vtier-golden-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** Replaces what differs between machines and checkouts. */
function normalise(text: string, dir: string): string {
  const command = loadResults(dir).command;
  let out = text.split(process.version).join('<node>').split(release()).join('<kernel>');
  if (command?.gitCommit) out = out.split(command.gitCommit.slice(0, 12)).join('<commit>');
  return out;
}

function compareGolden(name: string, actual: string): void {
  const path = join(GOLDEN, name);
  if (process.env.VTIER_UPDATE_GOLDEN === '1') {
    writeFileSync(path, actual);
    return;
  }
  let expected: string;
  try {
    expected = readFileSync(path, 'utf8');
  } catch {
    throw new Error(`golden file ${path} is missing; create it with: ${ACCEPT}`);
  }
  if (actual !== expected) {
    // The diff shows what changed; the message says how to accept an intended change.
    expect(actual, `report output differs from ${path}. If the change is intended, accept it with:\n  ${ACCEPT}\n`).toBe(expected);
  }
}

describe('report golden', () => {
  it('renders the fixture results as the golden Markdown', async () => {
    const dir = buildReportFixture(join(base, 'complete'));
    const model = await buildReport(loadResults(dir), { plots: false });
    expect(model.sections.map((s) => s.id)).toEqual(['accuracy-shifting', 'slowdown', 'dram-share', 'dram-sensitivity', 'migration', 'all-metrics']);
    compareGolden('fixture.md', normalise(renderMarkdown(model), dir));
  });

  it('says "interrupted" for a directory without DONE', async () => {
    const dir = buildReportFixture(join(base, 'partial'), { complete: false });
    const model = await buildReport(loadResults(dir), { plots: false });
    expect(model.complete).toBe(false);
    expect(renderMarkdown(model)).toMatch(/\*\*Partial \(interrupted\):\*\*/);
    expect(renderHtml(model)).toContain('id="interrupted"');
  });

  it('gives one-line errors from the CLI, also as JSON', () => {
    const run = (args: string[]): { status: number; stdout: string; stderr: string } => {
      try {
        const stdout = execFileSync(process.execPath, ['bin/vtier.js', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        return { status: 0, stdout, stderr: '' };
      } catch (err) {
        const e = err as { status: number; stdout: string; stderr: string };
        return { status: e.status, stdout: e.stdout, stderr: e.stderr };
      }
    };
    const missing = run(['report', join(base, 'nope')]);
    // A path that is no results directory is a usage error (exit 2), as in every command.
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^vtier: error: .*no such results directory\n$/);
    const json = run(['report', join(base, 'nope'), '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { kind: 'usage' } });
    const format = run(['report', base, '--format', 'pdf', '--json']);
    expect(format.status).toBe(2);
    expect(JSON.parse(format.stdout).error.message).toMatch(/--format/);
    const dir = buildReportFixture(join(base, 'cli'));
    const md = run(['report', dir, '--format', 'md', '-o', '-']);
    expect(md.status).toBe(0);
    expect(normalise(md.stdout, dir)).toBe(readFileSync(join(GOLDEN, 'fixture.md'), 'utf8'));
    const html = run(['report', dir, '--json']);
    expect(JSON.parse(html.stdout)).toMatchObject({ format: 'html', complete: true, plots: ['accuracy-shifting', 'slowdown', 'dram-share', 'dram-sensitivity', 'migration'] });
  });
});
