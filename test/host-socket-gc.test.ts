// Closed native streams are garbage (issue 13 soak: agent RSS grew x1.24 over 10 minutes).
// The native handle held its JS callback with a strong reference after close(); the callback
// closes over the NativeStream, which holds the handle, so every closed connection stayed
// reachable from a GC root for ever. 2000 guest connections go through the host agent's
// real accept path (unix listener, native streams on both ends, hello, welcome or refusal),
// all close, and a forced GC must collect nearly all of them on both sides.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';
import { parseHostConfig } from '../host-agent/config.js';
import { HostServer } from '../host-agent/server.js';
import { connect as transportConnect, listen as transportListen } from '../transport/index.js';
import { encodeMessage, PROTOCOL_VERSION } from '../src/protocol/index.js';
import { runsFrom } from '../src/samples.js';

const CONNECTIONS = 2000;
const AT_ONCE = 8; // more than the 4 connections a VM may have waiting: some are refused "busy"

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

describe('native streams are collected after close (host accept path)', () => {
  let dir: string;
  let target: ChildProcess;
  let server: HostServer;
  const created = { server: 0, client: 0 };
  const collected = { server: 0, client: 0 };
  const registry = new FinalizationRegistry<'server' | 'client'>((side) => collected[side]++);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vtier-gc-'));
    target = spawn('sleep', ['120'], { stdio: 'ignore' });
    server = new HostServer({
      config: parseHostConfig({ vms: [{ name: 'vm1', identity: { listen: `unix:${join(dir, 'vm1.sock')}` }, localPid: target.pid, dramBudget: '16M' }] }),
      listen: async (spec) => {
        const s = await transportListen(spec);
        s.on('connection', (stream: Duplex) => {
          created.server++;
          registry.register(stream, 'server');
        });
        return s;
      },
      reattachMs: 60_000,
    });
    await server.start();
  });

  afterAll(() => {
    server?.stop();
    target?.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** One guest: connect, hello, wait for the agent's first answer (welcome or busy), close. */
  async function oneGuest(): Promise<void> {
    const stream = await transportConnect({ kind: 'unix', path: join(dir, 'vm1.sock') });
    created.client++;
    registry.register(stream, 'client');
    stream.on('error', () => {});
    await new Promise<void>((resolve) => {
      stream.once('data', () => resolve());
      stream.once('close', () => resolve());
      stream.write(encodeMessage({ type: 'hello', protocolVersion: PROTOCOL_VERSION, agentVersion: 'gc', pageSize: 4096, ramRanges: runsFrom([[0, 16]]), source: 'test', epochMs: 500 }));
    });
    await new Promise<void>((resolve) => {
      stream.once('close', () => resolve());
      stream.destroy();
    });
  }

  it(`collects ${CONNECTIONS} closed connections on both ends`, async () => {
    for (let done = 0; done < CONNECTIONS; done += AT_ONCE) await Promise.all(Array.from({ length: AT_ONCE }, () => oneGuest()));
    expect(created.client).toBe(CONNECTIONS);
    expect(created.server).toBe(CONNECTIONS);
    // The agent destroys a closing session 200 ms after ending it.
    await new Promise((r) => setTimeout(r, 400));
    const want = CONNECTIONS - 10; // the last session or two may still be referenced
    for (let i = 0; i < 20 && (collected.server < want || collected.client < want); i++) {
      gc();
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(collected.client).toBeGreaterThanOrEqual(want);
    expect(collected.server).toBeGreaterThanOrEqual(want);
  }, 120_000);
});
