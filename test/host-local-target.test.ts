// The bare-metal target: physical frames of a local process (the built-in workload) ->
// its virtual pages via /proc/PID/pagemap -> move_pages on that process, through the
// same migrator and server as a VM.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { builtPath } from '../native/addon.js';
import { Pagemap } from '../guest-agent/pagemap.js';
import { LocalProcessTranslator } from '../host-agent/local-target.js';
import { FixedBudget, SINGLE_NODE_NOTE, VmMigrator } from '../host-agent/migrator.js';
import { parseHostConfig } from '../host-agent/config.js';
import { HostServer } from '../host-agent/server.js';
import { PageBuffer } from '../host-agent/translate.js';
import { runsFrom } from '../src/samples.js';
import { isType, TestGuest } from './helpers/host-guest-client.js';

const workload = builtPath('Release', 'vtier-workload');
const missing = existsSync(workload) ? undefined : `${workload} not built (npm run build:native)`;
if (missing && process.env.CI === 'true') throw new Error(`CI: ${missing}`);
if (missing) console.warn(`skipping local-target tests: ${missing}`);

describe.skipIf(Boolean(missing))('local process target (vtier-workload, real pagemap and move_pages)', () => {
  let child: ChildProcess;
  let translator: LocalProcessTranslator;

  beforeAll(async () => {
    child = spawn(workload, ['uniform', '--size-bytes', String(32 << 20), '--duration-ms', '120000'], { stdio: 'ignore' });
    translator = new LocalProcessTranslator(child.pid!);
    // Wait until the workload has touched its buffer.
    const deadline = Date.now() + 20_000;
    while (translator.rebuild().pages < 8000) {
      if (Date.now() > deadline) throw new Error(`workload never became resident (${translator.lastStats.pages} pages)`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 30_000);

  afterAll(() => {
    child?.kill('SIGKILL');
  });

  it('maps frames back to the virtual pages that hold them', () => {
    const frames = translator.frames();
    const pick = [frames[0], frames[Math.floor(frames.length / 2)], frames[frames.length - 1]];
    const out = new PageBuffer();
    const r = translator.translate(runsFrom(pick.map((f) => [f, 1])), 0, out);
    expect(r.rejected).toEqual([]);
    expect(out.count).toBe(3);
    const pm = Pagemap.open(child.pid!);
    try {
      const back = pm.translate(Array.from(out.hva.subarray(0, 3), (va) => va / 4096));
      expect([...back]).toEqual(pick);
    } finally {
      pm.close();
    }
    // A frame the process does not own is refused, not guessed.
    const foreign = new PageBuffer();
    const r2 = translator.translate(runsFrom([[1, 1]]), 0, foreign);
    expect(r2.rejected).toEqual([{ run: 0, reason: 'outside-ram' }]);
  });

  it('queries placement and moves the pages with move_pages on that process', async () => {
    const m = new VmMigrator({ name: 'local', pid: child.pid!, translator, dramNodes: [0], cxlNodes: [], budget: new FixedBudget(1 << 20) });
    const placement = await m.refreshPlacement();
    expect(placement.dramPages).toBeGreaterThanOrEqual(8000);
    const frames = translator.frames();
    const r = await m.apply(1, runsFrom([[frames[10], 1], [frames[20], 1]]), runsFrom([[frames[30], 1]]));
    expect(r.promote.already).toBe(2);
    expect(r.demote.failed['no-target-node']).toBe(1);
    expect(r.notes).toContain(SINGLE_NODE_NOTE);
    expect(m.stats.queryCalls).toBeGreaterThanOrEqual(1);
  });

  it('serves a guest-side decision stream for a local process through the host server', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtier-local-'));
    const sock = join(dir, 'local.sock');
    const server = new HostServer({
      config: parseHostConfig({ vms: [{ name: 'bare', identity: { listen: `unix:${sock}` }, localPid: child.pid, dramBudget: '1G' }], statusSocket: join(dir, 's.sock') }),
    });
    try {
      await server.start();
      await server.whenReady('bare', 20_000);
      const g = await TestGuest.connect(sock);
      g.hello();
      await g.waitFor(isType('welcome'));
      translator.rebuild();
      const frames = translator.frames();
      g.send({ type: 'decisions', epoch: 1, promote: runsFrom([[frames[5], 1], [frames[6], 1]]), demote: runsFrom([]) });
      const report = await g.waitFor(isType('report'));
      expect(report.crossNodeMoves).toBe(false);
      expect(report.dramPages).toBeGreaterThanOrEqual(8000);
      expect(report.promote.failed.other).toBe(0);
      g.close();
    } finally {
      server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
