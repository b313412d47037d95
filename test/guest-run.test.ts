import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { promisify } from 'node:util';
import { GuestAgent, formatStatusLine } from '../guest-agent/run.js';
import { ReplaySource } from '../guest-agent/replay-source.js';
import { packageRoot } from '../native/addon.js';
import type { DecisionsMessage, HelloMessage, Message } from '../src/protocol/index.js';
import { emptySamples, runsFrom, type PageRuns } from '../src/samples.js';
import { encodeTraceBatch, encodeTraceEnd, encodeTraceHeader } from '../src/trace/index.js';
import { ProtocolConnection } from '../transport/connection.js';
import { listen, type TransportServer } from '../transport/index.js';

const run = promisify(execFile);
const RAM: Array<[number, number]> = [
  [0x100, 0x7ff00],
  [0x100000, 0x40000],
];
const HOT_LOW = 0x2000; // 100 hot pages in the low range
const HOT_HIGH = 0x120000; // 100 hot pages above 4 GiB

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vtier-guest-run-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A synthetic trace: every batch samples 100 very hot pages, 100 hot pages and 300 cold pages once. */
function writeTrace(path: string, batches: number, epochMs = 100): void {
  const startNs = 1_000_000_000;
  const parts: Uint8Array[] = [
    encodeTraceHeader({
      source: 'faults',
      pageSize: 4096,
      epochMs,
      tunables: {},
      ramRanges: runsFrom(RAM),
      facts: { test: 'guest-run' },
      startTimeMs: Date.now(),
      startNs,
    }),
  ];
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  let samples = 0;
  for (let b = 0; b < batches; b++) {
    const s = emptySamples(500);
    const add = (pfn: number, reads: number) => {
      const i = s.count++;
      s.gpaPfn[i] = pfn;
      s.pages[i] = 1;
      s.reads[i] = reads;
      s.writes[i] = 0;
      samples += reads;
    };
    for (let i = 0; i < 100; i++) add(HOT_LOW + i, 40);
    for (let i = 0; i < 100; i++) add(HOT_HIGH + i, 20);
    for (let i = 0; i < 300; i++) add(0x10000 + Math.floor(rand() * 0x60000), 1);
    parts.push(encodeTraceBatch(startNs + (b + 1) * epochMs * 1e6, s));
  }
  parts.push(encodeTraceEnd({ samples, pagesSeen: 0, drops: 0, untranslated: 0, batches, endNs: startNs + (batches + 1) * epochMs * 1e6 }));
  writeFileSync(path, Buffer.concat(parts));
}

function inRam(pfn: number, pages: number): boolean {
  return RAM.some(([start, n]) => pfn >= start && pfn + pages <= start + n);
}

function pfnsOf(runs: PageRuns): number[] {
  const out: number[] = [];
  for (let i = 0; i < runs.count; i++) for (let p = 0; p < runs.pages[i]; p++) out.push(runs.gpaPfn[i] + p);
  return out;
}

/** A tiny host agent: grants a budget, "moves" pages in a set, fails one page per
 *  decision with EBUSY, reports back, and checks the guest stays inside RAM and budget. */
class TinyHost {
  readonly server: TransportServer;
  readonly dram = new Set<number>();
  readonly hellos: HelloMessage[] = [];
  readonly decisions: DecisionsMessage[] = [];
  readonly violations: string[] = [];
  readonly busyFailed: number[] = [];
  connections: ProtocolConnection[] = [];
  budget: number;

  private constructor(server: TransportServer, budget: number) {
    this.server = server;
    this.budget = budget;
    server.on('connection', (stream: Duplex) => this.accept(stream));
  }

  static async start(path: string, budget: number): Promise<TinyHost> {
    return new TinyHost(await listen(`unix:${path}`), budget);
  }

  private accept(stream: Duplex): void {
    const conn = new ProtocolConnection(stream, { peerSide: 'guest' });
    this.connections.push(conn);
    conn.on('message', (m: Message) => {
      if (m.type === 'hello') {
        this.hellos.push(m);
        conn.send({ type: 'welcome', protocolVersion: 1, agentVersion: 'tiny', vmName: 'vm-test' });
        conn.send({ type: 'budget', dramBudgetPages: this.budget });
      } else if (m.type === 'decisions') {
        this.decisions.push(m);
        conn.send(this.apply(m));
      }
    });
  }

  private apply(m: DecisionsMessage): Message {
    for (const list of [m.promote, m.demote]) {
      for (let i = 0; i < list.count; i++) if (!inRam(list.gpaPfn[i], list.pages[i])) this.violations.push(`run outside RAM: ${list.gpaPfn[i]}+${list.pages[i]}`);
    }
    const demoted = pfnsOf(m.demote).filter((p) => this.dram.delete(p) || true);
    const wanted = pfnsOf(m.promote);
    const busy = wanted.length > 1 ? wanted[0] : -1;
    const promoted = wanted.filter((p) => p !== busy);
    if (busy >= 0) this.busyFailed.push(busy);
    for (const p of promoted) this.dram.add(p);
    if (this.dram.size > this.budget) this.violations.push(`epoch ${m.epoch}: ${this.dram.size} DRAM pages > budget ${this.budget}`);
    const none = { ENOENT: 0, EBUSY: 0, ENOMEM: 0, EACCES: 0, other: 0 };
    return {
      type: 'report',
      epoch: m.epoch,
      promote: { tried: wanted.length, moved: promoted.length, failed: { ...none, EBUSY: busy >= 0 ? 1 : 0 } },
      demote: { tried: demoted.length, moved: demoted.length, failed: none },
      dramPages: this.dram.size,
      cxlPages: 0,
      promoted: runsFrom(promoted.map((p) => [p, 1] as [number, number])),
      demoted: runsFrom(demoted.map((p) => [p, 1] as [number, number])),
      crossNodeMoves: true,
      notes: ['tiny test host'],
    };
  }

  setBudget(pages: number): void {
    this.budget = pages;
    for (const c of this.connections) if (c.isOpen) c.send({ type: 'budget', dramBudgetPages: pages });
  }

  close(): void {
    this.server.close();
    for (const c of this.connections) c.destroy();
  }
}

const until = async (cond: () => boolean, timeoutMs = 10_000): Promise<void> => {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('guest run loop against a tiny host', () => {
  it('sends hello, stays within the budget, and applies reports (a busy page is proposed again)', async () => {
    const tracePath = join(dir, 'loop.trace');
    writeTrace(tracePath, 40, 100);
    const sock = join(dir, 'host1.sock');
    const host = await TinyHost.start(sock, 150);
    const source = ReplaySource.open(tracePath, { speed: 4 });
    const agent = new GuestAgent({ connect: `unix:${sock}`, source, sourceName: 'replay', ramRanges: source.ramRanges, epochMs: 50 });
    const budgets: number[] = [];
    agent.on('budget', (b) => budgets.push(b));
    agent.start();
    source.start();
    await until(() => host.decisions.length >= 2 && agent.status().reports >= 2);

    expect(host.hellos).toHaveLength(1);
    expect(host.hellos[0]).toMatchObject({ protocolVersion: 1, pageSize: 4096, source: 'replay', epochMs: 50 });
    expect(host.hellos[0].ramRanges.count).toBe(2);
    expect(budgets).toEqual([150]);
    expect(agent.status()).toMatchObject({ host: 'connected', hostVmName: 'vm-test', budgetPages: 150, budgetFrom: 'host' });

    // Only hot pages are promoted, and the first epoch's busy page comes back later.
    const first = host.decisions[0];
    for (const p of pfnsOf(first.promote)) expect(p >= HOT_LOW && p < HOT_LOW + 100 || p >= HOT_HIGH && p < HOT_HIGH + 100).toBe(true);
    const busy = host.busyFailed[0];
    const later = host.decisions.slice(1).flatMap((d) => pfnsOf(d.promote));
    expect(later).toContain(busy);
    // What moved is not proposed again.
    const moved = pfnsOf(first.promote).filter((p) => p !== busy);
    expect(later.filter((p) => moved.includes(p))).toEqual([]);

    // A smaller grant: the guest demotes down to it.
    host.setBudget(60);
    await until(() => agent.status().budgetPages === 60);
    await until(() => host.dram.size <= 60 && agent.status().reports === host.decisions.length);
    const status = agent.status();
    expect(status.reports).toBeGreaterThanOrEqual(3);
    expect(status.reports).toBe(host.decisions.length);
    expect(status.failed.EBUSY).toBeGreaterThanOrEqual(1);
    expect(status.moved.promote).toBeGreaterThan(0);
    expect(status.moved.demote).toBeGreaterThan(0);
    expect(status.hostNotes).toEqual(['tiny test host']);
    expect(formatStatusLine(status)).toMatch(/epoch \d+ \| .* samples\/s \| hot .* \| budget 60 pages \(host\) \| sent \d+ .*host connected as vm-test/);
    expect(host.violations).toEqual([]);
    await agent.stop();
    host.close();
  });

  it('keeps classifying while the host is away and reconnects', async () => {
    const tracePath = join(dir, 'away.trace');
    writeTrace(tracePath, 100, 50);
    const sock = join(dir, 'host2.sock');
    const host = await TinyHost.start(sock, 100);
    const source = ReplaySource.open(tracePath, { speed: 1 });
    const agent = new GuestAgent({
      connect: `unix:${sock}`,
      source,
      sourceName: 'replay',
      ramRanges: source.ramRanges,
      epochMs: 40,
      dramBudgetPages: 100,
      backoff: { initialDelayMs: 20, maxDelayMs: 100 },
    });
    agent.start();
    source.start();
    await until(() => agent.status().reports >= 1);

    // The host goes away (server closed, connections dropped).
    host.close();
    await until(() => agent.status().host === 'reconnecting');
    const epochAtDrop = agent.status().epoch;
    const samplesAtDrop = agent.status().samples;
    await new Promise((r) => setTimeout(r, 400));
    const away = agent.status();
    expect(away.epoch).toBeGreaterThan(epochAtDrop + 3);
    expect(away.samples).toBeGreaterThan(samplesAtDrop);
    expect(away.host).toBe('reconnecting');
    expect(formatStatusLine(away)).toMatch(/host reconnecting/);

    // It comes back on the same path: the guest reconnects, says hello again, resumes.
    const back = await TinyHost.start(sock, 100);
    await until(() => agent.status().host === 'connected' && back.hellos.length === 1);
    await until(() => back.decisions.length >= 1 || agent.status().reports > away.reports, 5000).catch(() => {});
    const final = await agent.stop();
    expect(final.connects).toBe(2);
    expect(back.violations).toEqual([]);
    back.close();
  });

  it('does not decide before any budget is known, but still ingests', async () => {
    const tracePath = join(dir, 'nobudget.trace');
    writeTrace(tracePath, 5, 10);
    const source = ReplaySource.open(tracePath, { speed: Infinity });
    const agent = new GuestAgent({ connect: `unix:${join(dir, 'nobody.sock')}`, source, sourceName: 'replay', ramRanges: source.ramRanges, epochMs: 20 });
    agent.start();
    source.start();
    await until(() => source.done);
    expect(agent.runEpoch()).toBeNull();
    const status = await agent.stop();
    expect(status).toMatchObject({ epoch: 0, budgetFrom: 'none', decisionsSent: 0, sampleRuns: 2500 });
  });
});

describe('vtier guest run (CLI, replay mode)', () => {
  const cli = join(packageRoot(), 'bin', 'vtier.js');

  it('replays a trace to a host and prints a JSON summary', async () => {
    const tracePath = join(dir, 'cli.trace');
    writeTrace(tracePath, 20, 100);
    const sock = join(dir, 'host-cli.sock');
    const host = await TinyHost.start(sock, 150);
    const { stdout } = await run('node', [cli, 'guest', 'run', '--connect', `unix:${sock}`, '--source', `replay:${tracePath}`, '--speed', '10', '--epoch', '30ms', '--json', '-q'], {
      timeout: 30_000,
    });
    const summary = JSON.parse(stdout);
    expect(summary).toMatchObject({ stopReason: 'trace-end', budgetFrom: 'host', budgetPages: 150, source: { source: 'replay', batches: 20 } });
    expect(summary.decisionsSent).toBeGreaterThan(0);
    expect(summary.reports).toBe(host.decisions.length);
    expect(summary.moved.promote).toBeGreaterThan(0);
    expect(host.violations).toEqual([]);
    host.close();
  });

  it('fails with one line and exit code 2 on bad input', async () => {
    const bad = await run('node', [cli, 'guest', 'run', '--connect', 'vsock:2:notaport', '--source', 'replay:/nonexistent'], { timeout: 20_000 }).catch((e) => e);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/vsock port/);
    const missing = await run('node', [cli, 'guest', 'run', '--connect', 'unix:/tmp/x.sock', '--source', 'replay:/nonexistent', '--json']).catch((e) => e);
    expect(missing.code).toBe(2);
    expect(JSON.parse(missing.stdout)).toMatchObject({ error: { message: expect.stringMatching(/no such trace file/) } });
  });
});
