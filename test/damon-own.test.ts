// Own-mode DAMON on the real kernel: only where no kdamond runs (the kernel cannot add
// one while another runs; on the dev machines the infrastructure's kdamond always does,
// so this file skips there with the reason printed, and damon-restore.test.ts covers the
// same sequence on a fake sysfs tree).
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { adminDir, damonStatus } from '../guest-agent/damon.js';
import { recoverLeftover } from '../guest-agent/kernel-state.js';
import { Sampler } from '../guest-agent/sampler.js';
import { builtPath } from '../native/addon.js';

const status = damonStatus();
const free = status.available && status.paddr && !status.busy && status.configured === 0;
const built = existsSync(builtPath('bpf', 'sampler.bpf.o')) && existsSync(builtPath('Release', 'vtier_native.node'));
const canRun = free && built && process.getuid?.() === 0;
if (!canRun) {
  console.log(
    `[damon-own] skipped: ${!free ? `DAMON is not free for an own kdamond here (${status.detail})` : 'needs root and a build'}`,
  );
}

function snapshot(): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const st = statSync(path);
      if (st.isDirectory()) walk(path);
      else if (st.mode & 0o444) {
        try {
          out[path] = readFileSync(path, 'utf8').trim();
        } catch {
          out[path] = '<unreadable>';
        }
      }
    }
  };
  walk(adminDir());
  return out;
}

const dist = (p: string) => JSON.stringify(resolve('dist', p));

describe.skipIf(!canRun)('DAMON own mode (real kernel, DAMON free)', () => {
  it('an own session delivers aggregations and leaves DAMON as it was on stop', { timeout: 60_000 }, async () => {
    const before = snapshot();
    const sampler = await Sampler.start({ source: 'damon', damon: { mode: 'own', sampleUs: 5000, aggrUs: 100_000 } });
    try {
      expect(sampler.describe().damonMode).toBe('own');
      expect(damonStatus().busy).toBe(true);
      let batches = 0;
      sampler.onBatch((_t, samples) => {
        if (samples.count > 0) batches++;
      });
      const deadline = Date.now() + 20_000;
      while (batches < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(batches).toBeGreaterThanOrEqual(3);
    } finally {
      await sampler.stop();
    }
    expect(damonStatus().busy).toBe(false);
    expect(snapshot()).toEqual(before);
  });

  it('a process that fails on purpose mid-session restores DAMON on its way out', { timeout: 60_000 }, () => {
    const before = snapshot();
    const result = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { Sampler } from ${dist('guest-agent/sampler.js')};
         const s = await Sampler.start({ source: 'damon', damon: { mode: 'own' } });
         s.onBatch(() => { throw new Error('failing on purpose'); });`,
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(result.stderr).toContain('failing on purpose');
    expect(result.status).not.toBe(0);
    expect(damonStatus().busy).toBe(false);
    expect(snapshot()).toEqual(before);
  });

  it('a SIGKILLed own session is restored by recoverLeftover()', { timeout: 60_000 }, async () => {
    const before = snapshot();
    const dir = mkdtempSync(join(tmpdir(), 'vtier-j-'));
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { KernelStateJournal } from ${dist('guest-agent/kernel-state.js')};
         import { startOwnKdamond } from ${dist('guest-agent/damon.js')};
         import { readSystemRam } from ${dist('guest-agent/iomem.js')};
         const j = KernelStateJournal.openSync(${JSON.stringify(join(dir, 'journal-kill.json'))});
         startOwnKdamond(j, readSystemRam());
         process.stdout.write('on\\n');
         setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((done) => child.stdout.once('data', () => done()));
    expect(damonStatus().busy).toBe(true);
    child.kill('SIGKILL');
    await new Promise((done) => child.once('exit', done));
    expect(damonStatus().busy).toBe(true); // the kdamond outlives its owner
    const reports = recoverLeftover(dir);
    expect(reports[0]?.cleared).toBe(true);
    expect(damonStatus().busy).toBe(false);
    expect(snapshot()).toEqual(before);
  });
});
