// Status endpoints (unix socket JSON, Prometheus text on loopback) and the serial identity
// (the host dials the VM's virtio-serial chardev socket, as QEMU would expose it).
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchStatus, prometheusText, serveStatus } from '../host-agent/status.js';
import { parseHostConfig } from '../host-agent/config.js';
import { HostServer, type HostStatus } from '../host-agent/server.js';
import { FrameDecoder, encodeMessage, PROTOCOL_VERSION, type Message } from '../src/protocol/index.js';
import { runsFrom } from '../src/samples.js';

const sample: HostStatus = {
  pid: 1,
  version: '0.1.0',
  nodeVersion: '20.0.0',
  startedAt: 't',
  dramNodes: [0],
  cxlNodes: [1],
  nodeSplit: 'config',
  crossNodeMoves: true,
  notes: [],
  unknownPeers: 0,
  vms: [
    {
      name: 'vm"1',
      connected: true,
      target: 'qemu',
      state: 'ready',
      totalPages: 10,
      dramPages: 4,
      cxlPages: 6,
      dramBudgetPages: 5,
      promotedBytesPerSec: 0,
      demotedBytesPerSec: 0,
      promotedPages: 3,
      demotedPages: 2,
      failures: { ENOENT: 1, EBUSY: 0, ENOMEM: 0, EACCES: 0, other: 0, budget: 2, 'rate-limited': 0, 'outside-ram': 0, 'no-target-node': 0, 'vm-gone': 0 },
      decisions: 1,
      throttled: 0,
      protocolErrors: 0,
      refusedConnections: 0,
      retryPending: 0,
      ramMismatchPages: 0,
      moveCalls: 1,
      queryCalls: 1,
      refusedRuns: 0,
      moveLatency: { buckets: [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], sumSeconds: 0.0008, count: 1 },
      crossNodeMoves: true,
    },
  ],
};

describe('status endpoints', () => {
  it('serves JSON on a unix socket and Prometheus text on loopback', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtier-status-'));
    const ep = await serveStatus(() => sample, join(dir, 's.sock'), { host: '127.0.0.1', port: 0 });
    try {
      expect(await fetchStatus(join(dir, 's.sock'))).toEqual(sample);
      const text = await new Promise<string>((resolve, reject) => {
        request({ host: '127.0.0.1', port: ep.prometheusPort, path: '/metrics' }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve(body));
        })
          .on('error', reject)
          .end();
      });
      expect(text).toBe(prometheusText(sample));
      expect(text).toContain('vtier_vm_dram_bytes{vm="vm\\"1"} 16384');
      expect(text).toContain('vtier_vm_move_failures_total{vm="vm\\"1",reason="budget"} 2');
      await expect(fetchStatus(join(dir, 'nope.sock'))).rejects.toThrow(/host run/);
    } finally {
      ep.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('serial identity', () => {
  it('dials the VM chardev socket, serves it, and redials after it drops', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtier-serial-'));
    const chardev = join(dir, 'vm-serial.sock');
    const holder = spawn('sleep', ['60']);
    const accepted: Socket[] = [];
    const chardevServer = createServer((s) => accepted.push(s));
    await new Promise<void>((r) => chardevServer.listen(chardev, r));
    const server = new HostServer({
      config: parseHostConfig({ vms: [{ name: 'ser', identity: { serial: chardev }, localPid: holder.pid, dramBudget: '64M' }], statusSocket: join(dir, 'st.sock') }),
    });
    try {
      await server.start();
      await server.whenReady('ser', 20_000);
      const waitAccepted = async (n: number) => {
        const deadline = Date.now() + 10_000;
        while (accepted.length < n) {
          if (Date.now() > deadline) throw new Error('host did not dial the chardev');
          await new Promise((r) => setTimeout(r, 20));
        }
        return accepted[n - 1];
      };
      const talk = async (sock: Socket, vmName: string): Promise<Message[]> => {
        const dec = new FrameDecoder({ from: 'host' });
        const got: Message[] = [];
        sock.on('data', (c) => {
          for (const r of dec.push(c)) if (r.ok) got.push(r.message);
        });
        sock.write(encodeMessage({ type: 'hello', protocolVersion: PROTOCOL_VERSION, agentVersion: 't', pageSize: 4096, ramRanges: runsFrom([[0, 16]]), source: 'test', epochMs: 100, vmName }));
        const deadline = Date.now() + 10_000;
        while (!got.some((m) => m.type === 'welcome' || m.type === 'error')) {
          if (Date.now() > deadline) throw new Error('no answer');
          await new Promise((r) => setTimeout(r, 20));
        }
        return got;
      };
      const first = await waitAccepted(1);
      expect((await talk(first, 'ser')).map((m) => m.type)).toContain('welcome');
      expect(server.status().vms[0].connected).toBe(true);
      first.destroy();
      const second = await waitAccepted(2);
      const answer = await talk(second, 'other-vm');
      expect(answer.find((m) => m.type === 'error')).toMatchObject({ code: 'identity-mismatch' });
    } finally {
      server.stop();
      chardevServer.close();
      for (const s of accepted) s.destroy();
      holder.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('vsock identity (listener stood in: AF_VSOCK is never opened here)', () => {
  it('maps the peer CID to its VM and drops unknown CIDs', async () => {
    const { EventEmitter } = await import('node:events');
    const { PassThrough, Duplex } = await import('node:stream');
    const dir = mkdtempSync(join(tmpdir(), 'vtier-vsock-'));
    const holder = spawn('sleep', ['60']);
    const fake = Object.assign(new EventEmitter(), { spec: 'vsock:any:7070', close() {} });
    const specs: string[] = [];
    const server = new HostServer({
      config: parseHostConfig({ vms: [{ name: 'cid3', identity: { vsockCid: 3 }, localPid: holder.pid, dramBudget: '64M' }], vsockListen: 'vsock:any:7070', statusSocket: join(dir, 'st.sock') }),
      listen: (async (spec: unknown) => {
        specs.push(JSON.stringify(spec));
        return fake;
      }) as never,
    });
    // A connected pair of byte streams: the guest writes to one end, the host reads the other.
    const pair = () => {
      const toHost = new PassThrough();
      const toGuest = new PassThrough();
      const hostSide = Duplex.from({ readable: toHost, writable: toGuest });
      return { hostSide, toHost, toGuest };
    };
    try {
      await server.start();
      await server.whenReady('cid3', 20_000);
      expect(specs).toEqual([JSON.stringify({ kind: 'vsock', cid: 0xffffffff, port: 7070 })]);
      const stranger = pair();
      fake.emit('connection', stranger.hostSide, { via: 'vsock:any:7070', kind: 'vsock', cid: 99 });
      await new Promise((r) => setTimeout(r, 50));
      expect(stranger.hostSide.destroyed).toBe(true);
      expect(server.status().unknownPeers).toBe(1);
      const known = pair();
      const dec = new FrameDecoder({ from: 'host' });
      const got: Message[] = [];
      known.toGuest.on('data', (c: Buffer) => {
        for (const r of dec.push(c)) if (r.ok) got.push(r.message);
      });
      fake.emit('connection', known.hostSide, { via: 'vsock:any:7070', kind: 'vsock', cid: 3 });
      known.toHost.write(encodeMessage({ type: 'hello', protocolVersion: PROTOCOL_VERSION, agentVersion: 't', pageSize: 4096, ramRanges: runsFrom([[0, 16]]), source: 'test', epochMs: 100 }));
      const deadline = Date.now() + 5000;
      while (!got.some((m) => m.type === 'welcome')) {
        if (Date.now() > deadline) throw new Error('no welcome');
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(got.find((m) => m.type === 'welcome')).toMatchObject({ vmName: 'cid3' });
      expect(server.status().vms[0]).toMatchObject({ connected: true, peer: 'vsock cid 3' });
    } finally {
      server.stop();
      holder.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('docs/grafana-host.json', () => {
  it('queries only metrics the agent exports, and the histogram is a valid Prometheus histogram', async () => {
    const { readFileSync } = await import('node:fs');
    const dash = JSON.parse(readFileSync(join(process.cwd(), 'docs/grafana-host.json'), 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
    const text = prometheusText(sample);
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, name, type]) => (type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name])));
    const used = dash.panels.flatMap((p) => p.targets.flatMap((t) => [...t.expr.matchAll(/\b(vtier_[a-z_]+)/g)].map((m) => m[1])));
    expect(used.length).toBeGreaterThan(10);
    for (const name of used) expect(exported, name).toContain(name);
    // Buckets are cumulative and end at +Inf = count.
    const buckets = [...text.matchAll(/^vtier_vm_move_seconds_bucket\{vm="vm\\"1",le="([^"]+)"\} (\d+)$/gm)].map((m) => Number(m[2]));
    expect(buckets).toHaveLength(13);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]).toBeGreaterThanOrEqual(buckets[i - 1]);
    expect(text).toContain('vtier_vm_move_seconds_count{vm="vm\\"1"} 1');
    expect(buckets[buckets.length - 1]).toBe(1);
    expect(text).toContain('vtier_build_info{version="0.1.0",node="20.0.0"} 1');
    expect(text).toContain('vtier_vm_move_pages_calls_total{vm="vm\\"1",mode="query"} 1');
  });
});
