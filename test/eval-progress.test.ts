// cli/progress.ts: sparse plain lines without a terminal, silence under --json, a bar on a TTY.
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createProgress, formatEta } from '../cli/progress.js';

function sink(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  const stream = new PassThrough() as unknown as NodeJS.WriteStream & PassThrough;
  (stream as { isTTY?: boolean }).isTTY = isTTY;
  (stream as { columns?: number }).columns = 100;
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString()));
  return { stream, text: () => text };
}

describe('progress', () => {
  it('prints plain lines only every quarter (or every interval) with an ETA', () => {
    let now = 0;
    const out = sink(false);
    const p = createProgress({ label: 'overhead', total: 100, stream: out.stream, now: () => now, plainIntervalS: 10 });
    for (let done = 0; done <= 100; done++) {
      now = done * 100; // 0.1 s per step
      p.update(done, `step ${done}`);
    }
    p.stop();
    const lines = out.text().trim().split('\n');
    expect(lines).toEqual([
      'overhead: 0/100 (0%), ETA ?, step 0',
      'overhead: 25/100 (25%), ETA 8s, step 25',
      'overhead: 50/100 (50%), ETA 5s, step 50',
      'overhead: 75/100 (75%), ETA 3s, step 75',
      'overhead: 100/100 (100%), ETA 0s, step 100',
    ]);
  });

  it('is silent under --json', () => {
    const out = sink(true);
    const p = createProgress({ label: 'x', total: 3, json: true, stream: out.stream });
    p.update(1);
    p.log('hello');
    p.stop();
    expect(out.text()).toBe('');
  });

  it('draws a bar with ETA on a terminal', async () => {
    const out = sink(true);
    const p = createProgress({ label: 'compare', total: 4, stream: out.stream });
    p.update(2, 'run 2');
    await new Promise((r) => setTimeout(r, 250));
    p.stop();
    expect(out.text()).toMatch(/compare \[.*\] 50% \| ETA .* \| 2\/4 run 2/);
  });

  it('formats ETAs', () => {
    expect(formatEta(5.4)).toBe('5s');
    expect(formatEta(125)).toBe('2m05s');
    expect(formatEta(7260)).toBe('2h01m');
    expect(formatEta(NaN)).toBe('?');
  });
});

describe('eval sim relays the simulator progress', () => {
  it('shows sim\'s progress lines on stderr, and none under --json', async () => {
    const { spawnSync } = await import('node:child_process');
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'vtier-evalsim-'));
    try {
      const args = ['--size', '64M', '--dram', '25%', '--duration', '4s', '--epoch', '1s', '--accesses-per-epoch', '20K', '--policy', 'static,oracle'];
      const bin = join(import.meta.dirname, '..', 'bin', 'vtier.js');
      const text = spawnSync(process.execPath, [bin, 'eval', 'sim', '--out', join(dir, 'a'), '--', ...args], { encoding: 'utf8' });
      expect(text.status, text.stderr).toBe(0);
      expect(text.stderr).toMatch(/simulating: 4\/4 \(100%\)/);
      const json = spawnSync(process.execPath, [bin, 'eval', 'sim', '--out', join(dir, 'b'), '--json', '--', ...args], { encoding: 'utf8' });
      expect(json.status).toBe(0);
      expect(json.stderr).toBe('');
      expect(JSON.parse(json.stdout).observations).toBeGreaterThan(0);
      // A sim that fails on its arguments is a usage error and leaves no results directory.
      const bad = spawnSync(process.execPath, [bin, 'eval', 'sim', '--out', join(dir, 'c'), '--json', '--', '--epoch', 'soon'], { encoding: 'utf8' });
      expect(bad.status).toBe(2);
      expect(JSON.parse(bad.stdout).error.kind).toBe('usage');
      expect(spawnSync('test', ['-e', join(dir, 'c')]).status).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
