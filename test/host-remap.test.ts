// A compromised QEMU remapping another VM's RAM file (issue 13 item 1, the remap gap): the
// fake QEMU (a real process named qemu-system-fake, its own QMP peer and pidfile pid, its
// command line naming its QMP socket) is attached with its own RAM file, then maps the
// victim's RAM file over it with MAP_FIXED at the same address. The GPA -> HVA table is the
// same; only the file behind it changed. The agent must stop moving for the attacker (before
// each decision, after it, and on the layout poll) while the victim keeps getting reports.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { movePages as nativeMovePages, type MovePagesFn } from '../native/addon.js';
import { parseHostConfig } from '../host-agent/config.js';
import { HostServer } from '../host-agent/server.js';
import type { Message } from '../src/protocol/index.js';
import { runsFrom } from '../src/samples.js';
import { isType, TestGuest } from './helpers/host-guest-client.js';
import { fakeQemuAvailable, startFakeQemu, type FakeQemu } from './helpers/fake-qemu.js';
import { qemuAvailable, startQemu, type QemuVm } from './helpers/qemu.js';

const missing = qemuAvailable() ?? fakeQemuAvailable();
if (missing && process.env.CI === 'true') throw new Error(`CI: ${missing}`);
if (missing) console.warn(`skipping remap tests: ${missing}`);

const FAKE_BYTES = 64 << 20;

async function until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const isReport = (epoch: number) => (m: Message): m is Extract<Message, { type: 'report' }> => m.type === 'report' && m.epoch === epoch;

describe.skipIf(Boolean(missing))('a QEMU remapping another VM RAM file at the same address', () => {
  let victimVm: QemuVm;
  let dir: string;

  beforeAll(async () => {
    victimVm = await startQemu({ ramMiB: 256, name: 'remap-victim' });
    dir = mkdtempSync(join(tmpdir(), 'vtier-remap-'));
  }, 120_000);

  afterAll(async () => {
    await victimVm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** One agent serving the victim and the fake QEMU; move_pages calls recorded by pid. */
  async function setup(name: string, o: { remapAnswer: 'victim' | 'own'; layoutPollMs: number }) {
    const fake = await startFakeQemu({
      dir,
      qmpPath: join(dir, `${name}-qmp.sock`),
      pidfile: join(dir, `${name}.pid`),
      memPath: join('/dev/shm', `vtier-test-${process.pid}-${name}`),
      sizeBytes: FAKE_BYTES,
      victimMemPath: victimVm.memPath,
      remapAnswer: o.remapAnswer,
    });
    const calls: Array<{ pid: number; remapped: boolean }> = [];
    let remapped = false;
    let duringMove: (() => Promise<void>) | undefined;
    const movePages: MovePagesFn = async (pid, addresses, nodes, flags) => {
      if (pid === fake.pid && duringMove) {
        const f = duringMove;
        duringMove = undefined;
        await f();
      }
      calls.push({ pid, remapped });
      return nativeMovePages(pid, addresses, nodes, flags);
    };
    const logs: string[] = [];
    const server = new HostServer({
      config: parseHostConfig({
        vms: [
          { name: 'victim', identity: { listen: `unix:${join(dir, `${name}-victim.sock`)}` }, qmp: victimVm.qmpPath, pidfile: victimVm.pidfile, dramBudget: '128M' },
          { name: 'evil', identity: { listen: `unix:${join(dir, `${name}-evil.sock`)}` }, qmp: join(dir, `${name}-qmp.sock`), pidfile: join(dir, `${name}.pid`), dramBudget: '32M' },
        ],
      }),
      movePages,
      reattachMs: 100,
      layoutPollMs: o.layoutPollMs,
      log: (l) => logs.push(l),
    });
    await server.start();
    await Promise.all([server.whenReady('victim', 30_000), server.whenReady('evil', 30_000)]);
    const victim = await TestGuest.connect(join(dir, `${name}-victim.sock`));
    victim.hello('victim');
    await victim.waitFor(isType('welcome'));
    const evil = await TestGuest.connect(join(dir, `${name}-evil.sock`));
    evil.hello('evil');
    await evil.waitFor(isType('welcome'));
    let epoch = 0;
    const decide = async (g: TestGuest) => {
      const e = ++epoch;
      g.send({ type: 'decisions', epoch: e, promote: runsFrom([[0x10, 64]]), demote: runsFrom([]) });
      await new Promise((r) => setTimeout(r, 120)); // under the per-VM decision rate
      return g.waitFor(isReport(e));
    };
    const st = (vm: string) => server.status().vms.find((v) => v.name === vm)!;
    return {
      fake,
      server,
      victim,
      evil,
      decide,
      st,
      logs,
      calls,
      remap: async () => {
        await fake.remap();
        remapped = true;
      },
      remapDuringNextMove: () => {
        duringMove = async () => {
          await fake.remap();
          remapped = true;
        };
      },
      async close() {
        victim.close();
        evil.close();
        server.stop();
        await fake.stop();
      },
    };
  }

  /** The victim is served for real: its report has no refusal and counts its pages. */
  async function victimServed(t: Awaited<ReturnType<typeof setup>>): Promise<void> {
    const r = await t.decide(t.victim);
    expect(r.notes.join('\n')).not.toMatch(/not attached/);
    expect(r.promote.failed.other).toBe(0);
    expect(t.st('victim').state).toBe('ready');
  }

  it('refuses before the next decision moves anything (no layout poll), and keeps the RAM file with its first owner', async () => {
    const t = await setup('pre', { remapAnswer: 'victim', layoutPollMs: 0 });
    try {
      // Attached with its own file, the fake QEMU is served like any VM.
      const ok = await t.decide(t.evil);
      expect(ok.notes.join('\n')).not.toMatch(/not attached/);
      expect(t.calls.some((c) => c.pid === t.fake.pid)).toBe(true);
      await victimServed(t);

      await t.remap();
      const r = await t.decide(t.evil);
      expect(r.notes.join('\n')).toMatch(/not attached/);
      expect(r.promoted.count).toBe(0);
      expect(t.calls.filter((c) => c.pid === t.fake.pid && c.remapped)).toEqual([]);
      expect(t.st('evil').state).not.toBe('ready');
      expect(t.st('evil').lastError).toMatch(/RAM mapping changed|belongs to victim/);
      await victimServed(t);
      // Re-attaching reads QMP again, which now names the victim's file: still refused, and
      // the victim (attached with it first) is not refused with it, however often it retries.
      await until(() => /belongs to victim, which was attached with it first/.test(t.st('evil').lastError ?? ''), 'evil refused on re-attach');
      await new Promise((r) => setTimeout(r, 500));
      expect(t.st('evil').state).not.toBe('ready');
      await victimServed(t);
      await victimServed(t);
      expect(t.calls.filter((c) => c.pid === t.fake.pid && c.remapped)).toEqual([]);
    } finally {
      await t.close();
    }
  }, 90_000);

  it('refuses on the layout poll when QMP no longer names the mapped file', async () => {
    const t = await setup('poll', { remapAnswer: 'own', layoutPollMs: 100 });
    try {
      await t.decide(t.evil);
      await t.remap();
      // No decision from the attacker: the poll alone finds it.
      await until(() => t.st('evil').state !== 'ready', 'evil refused by the poll');
      expect(t.st('evil').lastError).toMatch(/layout no longer readable|no guest RAM/);
      const r = await t.decide(t.evil);
      expect(r.notes.join('\n')).toMatch(/not attached/);
      expect(t.calls.filter((c) => c.pid === t.fake.pid && c.remapped)).toEqual([]);
      await victimServed(t);
    } finally {
      await t.close();
    }
  }, 90_000);

  it('withholds the report when the file changes during the moves', async () => {
    const t = await setup('during', { remapAnswer: 'victim', layoutPollMs: 0 });
    try {
      await t.decide(t.evil);
      t.remapDuringNextMove();
      const r = await t.decide(t.evil);
      // The moves raced the remap (the documented window); the report says nothing of where
      // the victim's pages are, and nothing more is moved for the attacker.
      expect(t.calls.some((c) => c.pid === t.fake.pid && c.remapped)).toBe(true);
      expect(r.notes.join('\n')).toMatch(/not attached/);
      expect(r.promoted.count).toBe(0);
      expect(r.alreadyDram).toBeUndefined();
      const after = t.calls.length;
      await t.decide(t.evil);
      expect(t.calls.slice(after).filter((c) => c.pid === t.fake.pid)).toEqual([]);
      await victimServed(t);
    } finally {
      await t.close();
    }
  }, 90_000);
});
