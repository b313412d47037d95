// npm run bench:host — the host agent's costs, measured side by side in one run:
//  1. agent cost per page from frame decode to the move_pages call (decode, validate,
//     translate, filter/sort, status accounting), with move_pages replaced by a no-op at
//     the syscall seam so only the agent is timed; target >= 10 M pages/s;
//  2. move_pages driven by the agent (addon, AsyncWorker, batches) vs a plain C loop on the
//     same pages and batches, as a throughput ratio. On a one-node host pages cannot change
//     node, so this compares placement queries (and no-op moves to the current node);
//  3. decision round trip (1000-page batch, guest send -> report received) over a unix
//     socket against a real paused QEMU, p50/p99.
// Options: --quick (fewer iterations), --json.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FrameDecoder, encodeMessage, PROTOCOL_VERSION, type Message } from '../src/protocol/index.js';
import { emptyRuns, runsFrom, type PageRuns } from '../src/samples.js';
import { movePages, MPOL_MF_MOVE, type MovePagesFn } from '../native/addon.js';
import { FixedBudget, VmMigrator } from '../host-agent/migrator.js';
import { RangeTranslator } from '../host-agent/translate.js';
import { LocalProcessTranslator } from '../host-agent/local-target.js';
import { parseHostConfig } from '../host-agent/config.js';
import { HostServer } from '../host-agent/server.js';
import { readNumaTopology } from '../host-agent/numa.js';

const quick = process.argv.includes('--quick');
const asJson = process.argv.includes('--json');
const PAGE = 4096;
const log = (line: string) => {
  if (!asJson) process.stdout.write(`${line}\n`);
};

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// ---- 1. agent cost per page -----------------------------------------------------------

async function agentCost(runPages: number): Promise<{ runPages: number; pagesPerMessage: number; pagesPerSec: number; nsPerPage: number; cpuPagesPerSec: number }> {
  // A 64 GiB guest: RAM below 2 GiB and from 4 GiB on, as q35 lays it out.
  const GiB = 1024 ** 3;
  const translator = new RangeTranslator([
    { gpaStart: 0x100000, gpaEnd: 2 * GiB, hvaStart: 0x7f0000100000, memdev: 'mem0', backendOffset: 0x100000 },
    { gpaStart: 4 * GiB, gpaEnd: 66 * GiB, hvaStart: 0x7f0080000000, memdev: 'mem0', backendOffset: 2 * GiB },
  ]);
  // The seam does as little as possible, so only the agent is timed: a placement query
  // answers "on the other tier" (CXL before a promotion, DRAM before a demotion), a move
  // succeeds at once. The agent's own per-decision query and move calls are both counted.
  let queryNode = 1;
  const noop: MovePagesFn = async (_pid, addresses, nodes) => {
    const status = nodes ? nodes.slice() : new Int32Array(addresses.length).fill(queryNode);
    return { result: 0, status };
  };
  const m = new VmMigrator({ name: 'bench', pid: 1, translator, dramNodes: [0], cxlNodes: [1], budget: new FixedBudget(Infinity), movePages: noop, flags: MPOL_MF_MOVE, batchPages: 1 << 16 });
  await m.refreshPlacement();
  // One decisions frame per message, as large as the default 1 MiB frame allows.
  const runs = Math.min(65_536, Math.floor(((1 << 20) - 256) / 12), Math.floor((1 << 20) / runPages));
  const pagesPerMessage = runs * runPages;
  const stride = Math.max(runPages * 3, 7);
  const rows: Array<[number, number]> = [];
  for (let i = 0; i < runs; i++) rows.push([(4 * GiB) / PAGE + i * stride, runPages]);
  const set = runsFrom(rows);
  const promote = encodeMessage({ type: 'decisions', epoch: 1, promote: set, demote: emptyRuns(0) });
  const demote = encodeMessage({ type: 'decisions', epoch: 2, promote: emptyRuns(0), demote: set });
  const decoder = new FrameDecoder({ from: 'guest' });
  // Enough messages for ~8 M pages (2 M with --quick), after 10 warm-up messages (JIT).
  const warmup = 10;
  const iterations = Math.max(quick ? 4 : 10, Math.ceil((quick ? 2 : 8) * 2 ** 20 / pagesPerMessage));
  let pages = 0;
  let ns = 0n;
  let cpuUs = 0;
  for (let i = 0; i < iterations + warmup; i++) {
    const c0 = process.cpuUsage();
    const frame = i % 2 === 0 ? promote : demote;
    queryNode = i % 2 === 0 ? 1 : 0;
    const t0 = process.hrtime.bigint();
    const [result] = decoder.push(frame);
    if (!result.ok || result.message.type !== 'decisions') throw new Error('bench: frame did not decode');
    const r = await m.apply(result.message.epoch, result.message.promote, result.message.demote);
    const t1 = process.hrtime.bigint();
    const c1 = process.cpuUsage(c0);
    const moved = r.promote.moved + r.demote.moved;
    if (moved !== pagesPerMessage) throw new Error(`bench: moved ${moved} of ${pagesPerMessage}`);
    if (i >= warmup) {
      ns += t1 - t0;
      cpuUs += c1.user + c1.system;
      pages += moved;
    }
  }
  const seconds = Number(ns) / 1e9;
  // CPU time as well as wall time: on a shared, overloaded machine the wall clock also
  // counts the time other processes held the CPU.
  return { runPages, pagesPerMessage, pagesPerSec: pages / seconds, nsPerPage: Number(ns) / pages, cpuPagesPerSec: pages / (cpuUs / 1e6) };
}

// ---- 2. agent move_pages vs a C loop ------------------------------------------------

const C_LOOP = String.raw`
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
  if (argc != 6) { fprintf(stderr, "usage: loop PID ADDRFILE BATCH REPEAT MODE(query|move)\n"); return 2; }
  int pid = atoi(argv[1]); long batch = atol(argv[3]); int repeat = atoi(argv[4]); int move = argv[5][0] == 'm';
  FILE *f = fopen(argv[2], "rb"); if (!f) { perror("addrfile"); return 1; }
  fseek(f, 0, SEEK_END); long n = ftell(f) / 8; fseek(f, 0, SEEK_SET);
  uint64_t *a = malloc(n * 8); if (fread(a, 8, n, f) != (size_t)n) return 1; fclose(f);
  void **pages = malloc(n * sizeof(void *)); int *nodes = calloc(n, sizeof(int)); int *status = malloc(n * sizeof(int));
  for (long i = 0; i < n; i++) { pages[i] = (void *)(uintptr_t)a[i]; status[i] = 0; nodes[i] = 0; }
  syscall(SYS_move_pages, pid, n < batch ? n : batch, pages, NULL, status, 0); /* warm up */
  long long best = -1, bestCpu = -1;
  for (int r = 0; r < repeat; r++) {
    struct timespec t0, t1, c0, c1; clock_gettime(CLOCK_MONOTONIC, &t0); clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    for (long s = 0; s < n; s += batch) {
      long c = n - s < batch ? n - s : batch;
      if (syscall(SYS_move_pages, pid, c, pages + s, move ? nodes + s : NULL, status + s, move ? 2 : 0) < 0) { perror("move_pages"); return 1; }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1); clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    long long ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    long long cpu = (long long)(c1.tv_sec - c0.tv_sec) * 1000000000LL + (c1.tv_nsec - c0.tv_nsec);
    if (best < 0 || ns < best) best = ns;
    if (bestCpu < 0 || cpu < bestCpu) bestCpu = cpu;
  }
  printf("%lld %lld\n", best, bestCpu); /* best pass over all pages: wall, CPU */
  return 0;
}
`;

async function versusC(dir: string, pid: number, addresses: Float64Array, batch: number, mode: 'query' | 'move'): Promise<{ mode: string; batch: number; pages: number; cPagesPerSec: number; agentPagesPerSec: number; ratio: number; cpuRatio: number }> {
  const repeat = quick ? 3 : 10;
  const addrFile = join(dir, 'addrs.bin');
  writeFileSync(addrFile, Buffer.from(BigUint64Array.from(addresses, (a) => BigInt(a)).buffer));
  const bin = join(dir, 'move-loop');
  const run = (): [number, number] => execFileSync(bin, [String(pid), addrFile, String(batch), String(repeat), mode], { encoding: 'utf8' }).trim().split(' ').map(Number) as [number, number];
  const agent = async (): Promise<[number, number]> => {
    const nodes = mode === 'move' ? new Int32Array(addresses.length) : null;
    let best = Infinity;
    let bestCpu = Infinity;
    for (let r = 0; r < repeat; r++) {
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      for (let s = 0; s < addresses.length; s += batch) {
        const e = Math.min(addresses.length, s + batch);
        await movePages(pid, addresses.subarray(s, e), nodes ? nodes.subarray(s, e) : null, mode === 'move' ? MPOL_MF_MOVE : 0);
      }
      const c1 = process.cpuUsage(c0);
      best = Math.min(best, Number(process.hrtime.bigint() - t0));
      bestCpu = Math.min(bestCpu, (c1.user + c1.system) * 1000);
    }
    return [best, bestCpu];
  };
  // Interleave C and agent runs (3 processes each, `repeat` passes each) and keep each
  // side's best pass over all pages, so background noise hits both alike.
  let cBest = Infinity;
  let aBest = Infinity;
  let cCpu = Infinity;
  let aCpu = Infinity;
  for (let k = 0; k < 3; k++) {
    const [cw, cc] = run();
    const [aw, ac] = await agent();
    cBest = Math.min(cBest, cw);
    cCpu = Math.min(cCpu, cc);
    aBest = Math.min(aBest, aw);
    aCpu = Math.min(aCpu, ac);
  }
  const cRate = addresses.length / (cBest / 1e9);
  const aRate = addresses.length / (aBest / 1e9);
  return {
    mode,
    batch,
    pages: addresses.length,
    cPagesPerSec: cRate,
    agentPagesPerSec: aRate,
    ratio: aRate / cRate,
    // Per CPU second (process CPU time; the agent's includes its event loop and worker thread).
    cpuRatio: (addresses.length / aCpu) / (addresses.length / cCpu),
  };
}

// ---- 3. decision round trip over a unix socket, real QEMU ---------------------------

async function startQemu(dir: string): Promise<{ child: ChildProcess; qmp: string; pidfile: string; mem: string }> {
  const qmp = join(dir, 'qmp.sock');
  const pidfile = join(dir, 'qemu.pid');
  const mem = `/dev/shm/vtier-bench-${process.pid}`;
  const child = spawn(
    'qemu-system-x86_64',
    ['-machine', 'q35', '-accel', 'tcg', '-S', '-nographic', '-nodefaults', '-display', 'none', '-m', '1024M',
      '-object', `memory-backend-file,id=mem0,size=1024M,mem-path=${mem},share=on,prealloc=off`, '-numa', 'node,memdev=mem0',
      '-qmp', `unix:${qmp},server=on,wait=off`, '-pidfile', pidfile],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + 60_000;
  while (!(existsSync(pidfile) && existsSync(qmp) && readFileSync(pidfile, 'utf8').trim())) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('bench: QEMU did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, qmp, pidfile, mem };
}

async function roundTrip(dir: string): Promise<{ batchPages: number; samples: number; p50Ms: number; p99Ms: number; meanMs: number; moveCalls: number }> {
  const q = await startQemu(dir);
  const sock = join(dir, 'vm.sock');
  const server = new HostServer({
    config: parseHostConfig({
      vms: [{ name: 'bench', identity: { listen: `unix:${sock}` }, qmp: q.qmp, pidfile: q.pidfile, dramBudget: '1G' }],
      statusSocket: join(dir, 'status.sock'),
      limits: { maxDecisionsPerSec: 100_000 },
    }),
  });
  try {
    await server.start();
    await server.whenReady('bench', 60_000);
    const socket = connect(sock);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const decoder = new FrameDecoder({ from: 'host' });
    let waiting: ((m: Message) => void) | undefined;
    socket.on('data', (chunk) => {
      for (const r of decoder.push(chunk)) if (r.ok && waiting) waiting(r.message);
    });
    const next = (type: Message['type']) =>
      new Promise<Message>((resolve) => {
        waiting = (m) => {
          if (m.type === type) resolve(m);
        };
      });
    const welcome = next('welcome');
    socket.write(encodeMessage({ type: 'hello', protocolVersion: PROTOCOL_VERSION, agentVersion: 'bench', pageSize: PAGE, ramRanges: runsFrom([[0, 262144]]), source: 'bench', epochMs: 100 }));
    await welcome;
    // 1000 pages in 10 runs of 100, in RAM below 1 GiB. The VM is paused and its memory
    // not preallocated, so these pages are not resident: every batch reaches move_pages
    // on the QEMU process (status -ENOENT) and the report goes back.
    const batches: PageRuns[] = [];
    for (let b = 0; b < 64; b++) batches.push(runsFrom(Array.from({ length: 10 }, (_, i) => [0x1000 + (b * 10 + i) * 256, 100] as [number, number])));
    const samples = quick ? 200 : 1000;
    const times: number[] = [];
    for (let i = 0; i < samples + 20; i++) {
      const report = next('report');
      const t0 = process.hrtime.bigint();
      socket.write(encodeMessage({ type: 'decisions', epoch: i, promote: batches[i % batches.length], demote: emptyRuns(0) }));
      const r = await report;
      const t1 = process.hrtime.bigint();
      if (r.type !== 'report' || r.promote.failed.ENOENT + r.promote.tried < 1000) throw new Error('bench: unexpected report');
      if (i >= 20) times.push(Number(t1 - t0) / 1e6);
    }
    socket.destroy();
    times.sort((a, b) => a - b);
    const st = server.status().vms[0];
    return { batchPages: 1000, samples, p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), meanMs: times.reduce((a, b) => a + b, 0) / times.length, moveCalls: st.moveCalls };
  } finally {
    server.stop();
    q.child.kill('SIGKILL');
    rmSync(q.mem, { force: true });
  }
}

// ---- main ----------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), 'vtier-bench-host-'));
let holder: ChildProcess | undefined;
try {
  const topo = readNumaTopology();
  const nodes = topo.nodes.filter((n) => n.memTotalBytes > 0).length;
  log(`load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')} on ${(await import('node:os')).cpus().length} CPUs`);
  log(`vtier bench:host — ${nodes} NUMA node(s)${nodes < 2 ? ' (single NUMA node: cross-node moves not possible here; move_pages is measured as placement queries and no-op moves)' : ''}`);

  const cost = [await agentCost(1), await agentCost(16), await agentCost(256)];
  log('\n1. agent cost per page, frame decode -> move_pages call (syscall seam = no-op)');
  for (const c of cost) log(`   runs of ${String(c.runPages).padStart(3)} page(s), ${c.pagesPerMessage} pages/message: ${(c.pagesPerSec / 1e6).toFixed(1)} M pages/s wall (${c.nsPerPage.toFixed(1)} ns/page), ${(c.cpuPagesPerSec / 1e6).toFixed(1)} M pages/s of CPU time`);

  // The pages: a quiet process holding 256 MiB, every page touched.
  writeFileSync(join(dir, 'move-loop.c'), C_LOOP);
  execFileSync('cc', ['-O2', '-o', join(dir, 'move-loop'), join(dir, 'move-loop.c')]);
  const size = (quick ? 64 : 256) << 20;
  holder = spawn('python3', ['-c', `import mmap,sys,time\nm=mmap.mmap(-1,${size})\nm.write(b'\\1'*${size})\nsys.stdout.write('ready\\n');sys.stdout.flush()\ntime.sleep(3600)`], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((resolve) => holder!.stdout!.once('data', () => resolve()));
  const t = new LocalProcessTranslator(holder.pid!);
  t.rebuild();
  const addresses = Float64Array.from(t.allPages()).sort();
  log(`\n2. move_pages on ${addresses.length} pages of pid ${holder.pid}: agent (addon AsyncWorker, awaited per batch) vs plain C loop`);
  const vs = [];
  for (const mode of ['query', 'move'] as const) {
    for (const batch of [1024, 16384]) {
      const r = await versusC(dir, holder.pid!, addresses, batch, mode);
      vs.push(r);
      log(`   ${mode.padEnd(5)} batch ${String(batch).padStart(5)}: C ${(r.cPagesPerSec / 1e6).toFixed(2)} M pages/s, agent ${(r.agentPagesPerSec / 1e6).toFixed(2)} M pages/s, ratio ${r.ratio.toFixed(3)} wall, ${r.cpuRatio.toFixed(3)} per CPU second`);
    }
  }
  holder.kill('SIGKILL');

  const rt = await roundTrip(dir);
  log(`\n3. decision round trip, ${rt.batchPages}-page batch, unix socket, real QEMU (move_pages per batch): p50 ${rt.p50Ms.toFixed(3)} ms, p99 ${rt.p99Ms.toFixed(3)} ms, mean ${rt.meanMs.toFixed(3)} ms over ${rt.samples}`);
  if (asJson) process.stdout.write(`${JSON.stringify({ numaNodes: nodes, agentCost: cost, moveVsC: vs, roundTrip: rt }, null, 2)}\n`);
} finally {
  holder?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
