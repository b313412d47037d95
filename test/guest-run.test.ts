import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { promisify } from 'node:util';
import { GuestAgent, classifierDefaultsFor, formatStatusLine } from '../guest-agent/run.js';
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
function writeTrace(path: string, batches: number, epochMs = 100, shiftEvery = 0): void {
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
    const shift = shiftEvery > 0 ? Math.floor(b / shiftEvery) * 0x400 : 0;
    for (let i = 0; i < 100; i++) add(HOT_LOW + shift + i, 40);
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

/** Merges sorted-or-not single pages into runs of consecutive frames. */
function runsOfPfns(pfns: number[]): PageRuns {
  const sorted = [...pfns].sort((a, b) => a - b);
  const rows: Array<[number, number]> = [];
  for (const p of sorted) {
    const last = rows[rows.length - 1];
    if (last && last[0] + last[1] === p) last[1]++;
    else rows.push([p, 1]);
  }
  return runsFrom(rows);
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
  /** How to answer the next decisions (then back to 'report'), and how late. */
  answers: Array<'report' | 'error' | 'silent'> = [];
  reportDelayMs = 0;
  private outstanding = 0;

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
        if (this.outstanding > 0) this.violations.push(`epoch ${m.epoch}: sent while a report was outstanding`);
        const answer = this.answers.shift() ?? 'report';
        if (answer === 'error') conn.send({ type: 'error', code: 'throttled', message: 'decisions dropped' });
        if (answer !== 'report') return;
        const report = this.apply(m);
        this.outstanding++;
        setTimeout(() => {
          this.outstanding--;
          conn.send(report);
        }, this.reportDelayMs);
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
      promoted: runsOfPfns(promoted),
      demoted: runsOfPfns(demoted),
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

const until = async (cond: () => boolean, timeoutMs = 10_000, explain: () => unknown = () => ''): Promise<void> => {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for a condition ${JSON.stringify(explain())}`);
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

describe('classifier settings per source', () => {
  it('a damon source halves counts once per batch (aggregation), a page source every 2 M page samples', async () => {
    const tracePath = join(dir, 'cooling.trace');
    writeTrace(tracePath, 5, 10);
    const coolings: Record<string, number> = {};
    for (const sourceName of ['damon', 'faults']) {
      const source = ReplaySource.open(tracePath, { speed: Infinity });
      const agent = new GuestAgent({ connect: `unix:${join(dir, 'nobody.sock')}`, source, sourceName, ramRanges: source.ramRanges, epochMs: 20 });
      agent.start();
      source.start();
      await until(() => source.done);
      coolings[sourceName] = agent.classifier.stats().coolings;
      await agent.stop();
    }
    // writeTrace(…, 5 batches, …): five snapshots for damon; far below 2 M samples for faults.
    expect(coolings).toEqual({ damon: 5, faults: 0 });
    expect(classifierDefaultsFor('pebs')).toEqual({});
  });
});

describe('guest run flow control', () => {
  async function runAgainst(
    host: TinyHost,
    sock: string,
    extra: Partial<ConstructorParameters<typeof GuestAgent>[0]>,
    until_: (a: GuestAgent) => boolean,
    shiftEvery = 0,
  ) {
    const tracePath = join(dir, `flow-${Math.random().toString(36).slice(2)}.trace`);
    writeTrace(tracePath, 400, 20, shiftEvery);
    const source = ReplaySource.open(tracePath, { speed: 1 });
    const agent = new GuestAgent({ connect: `unix:${sock}`, source, sourceName: 'replay', ramRanges: source.ramRanges, epochMs: 20, ...extra });
    agent.start();
    source.start();
    await until(() => until_(agent), 10_000, () => ({ status: agent.status(), decisions: host.decisions.map((d) => [d.promote.count, d.demote.count]) }));
    return agent;
  }

  it('keeps one decision in flight while the host is slow to report', async () => {
    const sock = join(dir, 'slow.sock');
    const host = await TinyHost.start(sock, 150);
    host.reportDelayMs = 150;
    host.setBudget(150);
    // The very hot set moves every 5 batches, so there is always something new to move.
    const agent = await runAgainst(host, sock, {}, (a) => a.status().reports >= 3 && a.status().decisionsDeferred > 0, 5);
    const status = await agent.stop();
    expect(status.decisionsDeferred).toBeGreaterThan(0);
    expect(host.violations).toEqual([]);
    host.close();
  });

  it('cuts decisions to the run limit and proposes the rest later', async () => {
    const sock = join(dir, 'cut.sock');
    const host = await TinyHost.start(sock, 150);
    const allHot = () => {
      const promoted = new Set(host.decisions.flatMap((d) => pfnsOf(d.promote)));
      return Array.from({ length: 100 }, (_, i) => HOT_LOW + i).every((p) => promoted.has(p));
    };
    const agent = await runAgainst(host, sock, { limits: { maxRunsPerList: 1 } }, (a) => a.status().runsCut > 0 && allHot());
    const status = await agent.stop();
    expect(status.runsCut).toBeGreaterThan(0);
    for (const d of host.decisions) {
      expect(d.promote.count).toBeLessThanOrEqual(1);
      expect(d.demote.count).toBeLessThanOrEqual(1);
    }
    // The very hot pages (one run each after merging, or more) all got there across epochs.
    const promoted = new Set(host.decisions.flatMap((d) => pfnsOf(d.promote)));
    for (let i = 0; i < 100; i++) expect(promoted.has(HOT_LOW + i)).toBe(true);
    expect(host.violations).toEqual([]);
    host.close();
  });

  it('treats a host error or a missing report as "nothing moved" and proposes the pages again', async () => {
    const sock = join(dir, 'lossy.sock');
    const host = await TinyHost.start(sock, 150);
    host.answers = ['error', 'silent'];
    const agent = await runAgainst(host, sock, { reportTimeoutMs: 100 }, (a) => a.status().reports >= 1);
    const status = agent.status();
    await agent.stop();
    expect(status.decisionsLost).toBe(2);
    expect(status.hostErrors).toBe(1);
    expect(status.lastHostError).toMatch(/throttled/);
    // The first (refused) promotion list comes back in the third message, which was answered.
    const first = pfnsOf(host.decisions[0].promote);
    const third = pfnsOf(host.decisions[2].promote);
    expect(first.length).toBeGreaterThan(0);
    expect(third.filter((p) => first.includes(p)).length).toBeGreaterThan(first.length / 2);
    host.close();
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

  it('keeps running without a host, and stops cleanly on SIGTERM with a summary', async () => {
    const tracePath = join(dir, 'sigterm.trace');
    writeTrace(tracePath, 200, 100);
    const child = spawn(
      'node',
      [cli, 'guest', 'run', '--connect', `unix:${join(dir, 'nobody-listens.sock')}`, '--source', `replay:${tracePath}`, '--dram-budget', '600K', '--epoch', '50ms', '--json', '--status-every', '200ms'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    await until(() => /epoch [1-9]\d* .*host (connecting|reconnecting)/.test(stderr), 15_000, () => stderr);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    const summary = JSON.parse(stdout);
    expect(summary).toMatchObject({ stopReason: 'SIGTERM', budgetFrom: 'local', budgetPages: 150, decisionsSent: 0, connects: 0 });
    expect(summary.epoch).toBeGreaterThan(0);
    expect(summary.decisionsUnsent).toBeGreaterThan(0);
    expect(summary.samples).toBeGreaterThan(0);
  });

  it.skipIf(process.getuid?.() !== 0 && process.env.CI !== 'true')('a small aggregation map: refused samples are counted and reported', async () => {
    // system-wide faults into a 16-page map; this process keeps faulting fresh pages
    const faulting = setInterval(() => {
      const b = Buffer.allocUnsafeSlow(1 << 20);
      for (let i = 0; i < b.length; i += 4096) b[i] = 1;
    }, 50);
    try {
      const args = [cli, 'guest', 'run', '--connect', `unix:${join(dir, 'nobody-small.sock')}`, '--source', 'faults', '--max-pages', '16', '--epoch', '10s', '--duration', '1500ms', '-q'];
      const { stdout } = await run('node', [...args, '--json'], { timeout: 30_000 });
      const summary = JSON.parse(stdout);
      expect(summary.sourceStats.mapFull).toBeGreaterThan(0);
      expect(summary.sourceStats.drops).toBeGreaterThanOrEqual(summary.sourceStats.mapFull);
      expect(summary.source.tunables.maxPages).toBe(16);
      const text = await run('node', args, { timeout: 30_000 });
      expect(text.stdout).toMatch(/LOST \d+ samples .*aggregation map \(16 pages\) was full/);
      const bad = await run('node', [...args.slice(0, 7), '--max-pages', '1'], { timeout: 20_000 }).catch((e) => e);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/--max-pages: must be between 16/);
    } finally {
      clearInterval(faulting);
    }
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

// guest run --pid against the bare-metal host target: the guest samples the frames of the
// process the host moves (before --pid, every page of a system-wide source was refused
// outside-ram), and its summary text, its JSON and the host's status count the same pages.
describe.skipIf(process.getuid?.() !== 0 && process.env.CI !== 'true')('vtier guest run --pid against a local-process host target', () => {
  const cli = join(packageRoot(), 'bin', 'vtier.js');
  const workloadBin = join(packageRoot(), 'build', 'Release', 'vtier-workload');

  /** Outside-ram pages a correct run may still have: faults sees every fault of the pid, also on
   *  its code (file-backed pages the local target does not move) and on pages faulted after the
   *  host's last index rebuild; a handful, never the bulk (before --pid: every page). */
  const strayPages = (requested: number) => 16 + Math.floor(requested * 0.01);

  /** One run: a paused workload, a host agent serving it, the guest following its pid. */
  async function runOnce(json: boolean) {
    const { HostServer } = await import('../host-agent/server.js');
    const { parseHostConfig } = await import('../host-agent/config.js');
    const workload = spawn(workloadBin, ['hotspot', '--size-bytes', String(32 << 20), '--duration-ms', '60000', '--wait-start'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    workload.stdout!.on('data', (d: Buffer) => (out += d));
    const sub = mkdtempSync(join(dir, 'local-'));
    const sock = join(sub, 'local.sock');
    // A budget below the workload's 8192 pages: the guest demotes too (single node: refused).
    const server = new HostServer({
      config: parseHostConfig({ vms: [{ name: 'bare', identity: { listen: `unix:${sock}` }, localPid: workload.pid, dramBudget: '16M' }], statusSocket: join(sub, 's.sock') }),
    });
    try {
      await until(() => /"waiting"/.test(out), 10_000, () => out);
      await server.start();
      await server.whenReady('bare', 20_000);
      const args = [cli, 'guest', 'run', '--connect', `unix:${sock}`, '--source', 'faults', '--pid', String(workload.pid), '--epoch', '200ms', '--duration', '4s', '-q', ...(json ? ['--json'] : [])];
      const guest = spawn('node', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      guest.stdout.on('data', (d: Buffer) => (stdout += d));
      guest.stderr.on('data', (d: Buffer) => (stderr += d));
      // The guest says hello once its sampler is attached: then the workload may touch its pages.
      await until(() => server.status().vms[0].connected || guest.exitCode !== null, 20_000, () => stderr);
      workload.kill('SIGUSR1');
      const code = await new Promise<number | null>((resolve) => guest.on('exit', resolve));
      expect(code, stderr).toBe(0);
      return { stdout, host: server.status().vms[0] };
    } finally {
      server.stop();
      workload.kill('SIGKILL');
    }
  }

  it('JSON: at most a handful of pages refused outside-ram, and the guest counts what the host counts', async () => {
    const { stdout, host } = await runOnce(true);
    const s = JSON.parse(stdout);
    expect(s.target.pid).toBeGreaterThan(0);
    expect(s.pagesRequested.promote + s.pagesRequested.demote).toBeGreaterThan(0);
    expect(s.failed['outside-ram']).toBeLessThanOrEqual(strayPages(s.pagesRequested.promote + s.pagesRequested.demote));
    expect(s.failed).toEqual(host.failures);
    // Every requested page is accounted for: moved, already in place, or not moved by reason.
    const notMoved = Object.values(s.failed as Record<string, number>).reduce((a, b) => a + b, 0);
    expect(s.moved.promote + s.moved.demote + s.alreadyInPlace.promote + s.alreadyInPlace.demote + notMoved).toBe(s.pagesRequested.promote + s.pagesRequested.demote);
    // The per-report count notes are replaced by the cumulative counters.
    expect(s.hostNotes.join('\n')).not.toMatch(/not moved \(host\)|already on target tier/);
  }, 60_000);

  it('text: the summary lines give the host\'s numbers', async () => {
    const { stdout, host } = await runOnce(false);
    const notMoved = /pages not moved: (.*)/.exec(stdout)?.[1];
    expect(notMoved, stdout).toBeDefined();
    const text: Record<string, number> = {};
    if (notMoved !== 'none') for (const part of notMoved!.split(', ')) text[part.split(' ')[0]] = Number(part.split(' ')[1]);
    const hostNonZero = Object.fromEntries(Object.entries(host.failures).filter(([, n]) => n > 0));
    expect(text).toEqual(hostNonZero);
    const requested = /pages requested: promote (\d+), demote (\d+)/.exec(stdout);
    expect(requested, stdout).not.toBeNull();
    expect(text['outside-ram'] ?? 0).toBeLessThanOrEqual(strayPages(Number(requested![1]) + Number(requested![2])));
    expect(stdout).toMatch(/pages requested: promote [1-9]\d*/);
    expect(stdout).toMatch(/pages already in place: promote \d+, demote \d+/);
  }, 60_000);
});
