// A guest within its rate limit is never closed as a flooder because the agent is slow
// (issue 13 soak: well-behaved guests at their rate limit were closed for "flood" when the
// agent was busy, losing the decisions they had in flight). Decisions dropped because the
// VM's previous ones still run are throttled (and counted) but do not count towards closing;
// a real flood still closes the connection. Local target, real move_pages, made slow at the
// move_pages seam (the agent is slow; no fault is injected).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { movePages as nativeMovePages, type MovePagesFn } from '../native/addon.js';
import { parseHostConfig } from '../host-agent/config.js';
import { HostServer } from '../host-agent/server.js';
import { encodeMessage, type Message } from '../src/protocol/index.js';
import { runsFrom } from '../src/samples.js';
import { isError, isType, TestGuest } from './helpers/host-guest-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('throttling a guest within its rate limit while the agent is busy', () => {
  let dir: string;
  let target: ChildProcess;
  let server: HostServer;
  const slowMovePages: MovePagesFn = async (pid, addresses, nodes, flags) => {
    await sleep(400);
    return nativeMovePages(pid, addresses, nodes, flags);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vtier-throttle-'));
    target = spawn('sleep', ['120'], { stdio: 'ignore' });
    server = new HostServer({
      config: parseHostConfig({
        vms: [{ name: 'vm1', identity: { listen: `unix:${join(dir, 'vm1.sock')}` }, localPid: target.pid, dramBudget: '16M' }],
        limits: { maxDecisionsPerSec: 10, maxThrottledBeforeClose: 5 },
      }),
      movePages: slowMovePages,
      reattachMs: 60_000,
    });
    await server.start();
    await server.whenReady('vm1', 20_000);
  });

  afterAll(() => {
    server?.stop();
    target?.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the connection and accounts every decision as answered or throttled', async () => {
    const g = await TestGuest.connect(join(dir, 'vm1.sock'));
    g.hello('vm1');
    await g.waitFor(isType('welcome'));
    const throttled0 = server.status().vms[0].throttled;
    const sent: number[] = [];
    for (let e = 1; e <= 24; e++) {
      g.send({ type: 'decisions', epoch: e, promote: runsFrom([[0x100, 1]]), demote: runsFrom([]) });
      sent.push(e);
      await sleep(125); // 8/s, under the 10/s limit
    }
    await sleep(2500);
    expect(g.closed).toBe(false);
    expect(g.messages.some((m) => m.type === 'error' && m.code === 'flood')).toBe(false);
    const answered = new Set(g.messages.filter((m): m is Extract<Message, { type: 'report' }> => m.type === 'report').map((m) => m.epoch));
    const throttled = server.status().vms[0].throttled - throttled0;
    expect(throttled).toBeGreaterThan(5); // more than maxThrottledBeforeClose were dropped
    expect(answered.size + throttled).toBe(sent.length); // none lost
    g.close();
  });

  it('still closes a guest that floods past its rate limit', async () => {
    const g = await TestGuest.connect(join(dir, 'vm1.sock'));
    g.hello('vm1');
    await g.waitFor(isType('welcome'));
    await sleep(1100); // a full bucket
    const frames = [];
    for (let e = 0; e < 40; e++) frames.push(encodeMessage({ type: 'decisions', epoch: 100 + e, promote: runsFrom([[0x100, 1]]), demote: runsFrom([]) }));
    g.socket.write(Buffer.concat(frames));
    await g.waitFor(isError('flood'));
    await g.waitClosed();
  });
});
