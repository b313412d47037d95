// The sampler object loads into the running kernel, each source available here attaches,
// close detaches, and the aggregation map / ring buffer see a child's page faults.
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { btfFuncProtoArgs, builtPath, onlineCpus, openBpfObject, packageRoot } from '../native/addon.js';
import { openSampler, type SamplerObject } from '../guest-agent/sampler-object.js';
import { damonAggregatedProgram, funcProtoParams, readKernelBtf } from '../guest-agent/btf-proto.js';
import { FLAG_PHYS, FLAG_WRITE, KIND_PHYS, KIND_VIRT, PAGE_GROUP_PAGES, SRC_FAULT_TP, SRC_MASK, SRC_PERF } from '../guest-agent/record-layout.js';
import { bpfTestGuard } from './helpers/bpf-guard.js';

const { skip } = bpfTestGuard('bpf-load');

const PAGE = 4096;
const PERF_TYPE_SOFTWARE = 1;
const PERF_COUNT_SW_PAGE_FAULTS = 2;
const faultsAttr = { type: PERF_TYPE_SOFTWARE, config: PERF_COUNT_SW_PAGE_FAULTS, samplePeriod: 1 };

// A child that maps N fresh 4 KiB pages (no THP), says where, waits, writes one byte per
// page, says done, and exits at EOF on stdin.
const TOUCHER_C = `
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
int main(int argc, char **argv) {
  long n = atol(argv[1]);
  char line[64];
  volatile char *p = mmap(0, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 1;
  madvise((void *)p, n * 4096, MADV_NOHUGEPAGE);
  printf("ready %lx\\n", (unsigned long)p); fflush(stdout);
  if (!fgets(line, sizeof line, stdin)) return 2;
  for (long i = 0; i < n; i++) p[i * 4096] = 1;
  printf("done\\n"); fflush(stdout);
  while (fgets(line, sizeof line, stdin)) {}
  return 0;
}`;

// A child that maps a file privately and reads every page (page cache pages mapped), then
// on "go" writes each page: copy-on-write faults on pages that ARE mapped at fault time,
// so perf can report their physical address (PERF_SAMPLE_PHYS_ADDR).
const COW_C = `
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
int main(int argc, char **argv) {
  long n = atol(argv[2]);
  char line[64];
  int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || ftruncate(fd, n * 4096)) return 1;
  volatile char *p = mmap(0, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) return 1;
  long sink = 0;
  for (long i = 0; i < n; i++) sink += p[i * 4096];
  printf("ready %lx\\n", (unsigned long)p); fflush(stdout);
  if (!fgets(line, sizeof line, stdin)) return 2;
  for (long i = 0; i < n; i++) p[i * 4096] = 1;
  printf("done\\n"); fflush(stdout);
  while (fgets(line, sizeof line, stdin)) {}
  return sink == 0 ? 0 : 3;
}`;

const dir = mkdtempSync(join(tmpdir(), 'vtier-bpf-load-'));
let toucherPath: string | undefined;
function toucher(): string {
  if (!toucherPath) {
    writeFileSync(join(dir, 'toucher.c'), TOUCHER_C);
    toucherPath = join(dir, 'toucher');
    execFileSync('cc', ['-O2', '-o', toucherPath, join(dir, 'toucher.c')]);
  }
  return toucherPath;
}

let cowPath: string | undefined;
function cowToucher(): string {
  if (!cowPath) {
    writeFileSync(join(dir, 'cow.c'), COW_C);
    cowPath = join(dir, 'cow');
    execFileSync('cc', ['-O2', '-o', cowPath, join(dir, 'cow.c')]);
  }
  return cowPath;
}

interface Toucher {
  pid: number;
  base: number;
  touch(): Promise<void>;
  end(): Promise<void>;
}

async function startToucher(pages: number, cow = false): Promise<Toucher> {
  const child: ChildProcessWithoutNullStreams = cow
    ? spawn(cowToucher(), [join(dir, `cow-data-${pages}`), String(pages)])
    : spawn(toucher(), [String(pages)]);
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const r = await lines.next();
    if (r.done) throw new Error('toucher exited early');
    return r.value;
  };
  const ready = await next();
  const m = /^ready ([0-9a-f]+)$/.exec(ready);
  if (!m) throw new Error(`toucher said ${ready}`);
  return {
    pid: child.pid!,
    base: Number.parseInt(m[1], 16),
    touch: async () => {
      child.stdin.write('go\n');
      expect(await next()).toBe('done');
    },
    end: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.stdin.end();
      }),
  };
}

/** Faults in this (the test) process, which a pid filter for the child must reject. */
function faultHere(): void {
  const b = Buffer.alloc(8 << 20);
  for (let i = 0; i < b.length; i += PAGE) b[i] = 1;
}

function progExists(id: number): boolean {
  try {
    execFileSync('bpftool', ['prog', 'show', 'id', String(id)], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** Links to tracepoints free their program after an RCU grace period, not at close(). */
async function progGone(id: number): Promise<boolean> {
  const deadline = Date.now() + 5000;
  while (progExists(id)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

const open: SamplerObject[] = [];
async function sampler(...args: Parameters<typeof openSampler>): Promise<SamplerObject> {
  const s = await openSampler(...args);
  open.push(s);
  return s;
}
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Samples counted in drained entries (reads + writes). */
function sampleWeight(d: { count: number; reads: Uint32Array; writes: Uint32Array }): number {
  let w = 0;
  for (let i = 0; i < d.count; i++) w += d.reads[i] + d.writes[i];
  return w;
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(skip)('sampler.bpf.o in the running kernel', () => {
  it('perf: attaches to the software page-faults event on every online CPU; close detaches', async () => {
    const s = await sampler({ kind: 'perf', mode: 'aggregate' });
    s.attachPerf(faultsAttr, { cpus: onlineCpus() });
    expect(s.attachments).toBe(onlineCpus().length);
    const { progId } = s.bpfStats();
    expect(progExists(progId)).toBe(true);
    faultHere();
    expect(s.counters().inserts).toBeGreaterThan(0n); // pages entered the map
    expect(s.drainPages().count).toBeGreaterThan(0);
    expect(s.counters().samples).toBeGreaterThan(0n);
    s.close();
    expect(await progGone(progId)).toBe(true);
  });

  it('fault-tracepoint: tp_btf/page_fault_user attaches and sees faults; close detaches', async () => {
    const s = await sampler({ kind: 'fault-tracepoint', mode: 'aggregate' });
    s.attachTracepoints();
    const { progId } = s.bpfStats();
    faultHere();
    expect(s.counters().inserts).toBeGreaterThan(0n); // pages entered the map
    expect(s.drainPages().count).toBeGreaterThan(0);
    expect(s.counters().samples).toBeGreaterThan(0n);
    s.close();
    expect(await progGone(progId)).toBe(true);
  });

  it('damon: damon_aggregated attaches (without starting DAMON); close detaches', async () => {
    const s = await sampler({ kind: 'damon' });
    // the program matching this kernel's tracepoint prototype by parameter types
    // (bpf/core_fixes.bpf.h; test/btf-proto.test.ts covers the other prototypes)
    const choice = damonAggregatedProgram(funcProtoParams(readKernelBtf()!, 'btf_trace_damon_aggregated')!);
    expect(choice).toEqual({ program: s.program });
    expect(btfFuncProtoArgs('btf_trace_no_such_tracepoint')).toBe(-1);
    s.attachTracepoints();
    const { progId } = s.bpfStats();
    expect(progExists(progId)).toBe(true);
    s.close();
    expect(await progGone(progId)).toBe(true);
  });

  it("damon: 5.15's program (damon_target *, damon_region *, nr) passes the verifier here too (damon_target.id read behind a CO-RE guard)", () => {
    const obj = openBpfObject(builtPath('bpf', 'sampler.bpf.o'));
    try {
      for (const p of obj.programs()) obj.setAutoload(p.name, p.name === 'on_damon_aggregated_target_ptr');
      expect(() => obj.load()).not.toThrow();
      expect(obj.progInfo('on_damon_aggregated_target_ptr').id).toBeGreaterThan(0);
    } finally {
      obj.close();
    }
  });

  for (const kind of ['perf', 'fault-tracepoint'] as const) {
    it(`${kind}: the aggregation map holds every page a child touched, and only that child's`, async () => {
      const pages = 2000;
      const child = await startToucher(pages);
      try {
        const s = await sampler({ kind, mode: 'aggregate', pid: child.pid });
        if (kind === 'perf') s.attachPerf(faultsAttr, { cpus: onlineCpus() });
        else s.attachTracepoints();
        await child.touch();
        faultHere();
        const drained = s.drainPages();
        const firstPage = child.base / PAGE;
        const seen = new Map<number, number>();
        for (let i = 0; i < drained.count; i++) {
          expect(drained.tgid[i]).toBe(child.pid);
          expect(drained.kind[i]).toBe(KIND_VIRT); // fault time: not mapped yet, no phys addr
          seen.set(drained.page[i], drained.writes[i]);
        }
        let found = 0;
        let writes = 0;
        for (let p = 0; p < pages; p++) {
          if (seen.has(firstPage + p)) found++;
          writes += seen.get(firstPage + p) ?? 0;
        }
        expect(found).toBe(pages);
        // Only the tracepoint knows the access type (error_code bit 1).
        if (kind === 'fault-tracepoint') expect(writes).toBeGreaterThanOrEqual(pages);
        const c = s.counters();
        expect(c.filtered).toBeGreaterThan(0n); // this process faulted too, and was filtered
        expect(c.drops).toBe(0n);
        expect(s.drainPages().count).toBe(0); // drained means deleted
      } finally {
        await child.end();
      }
    });
  }

  it('perf: a per-process event (target pid, any CPU) sees that process only', async () => {
    const pages = 1000;
    const child = await startToucher(pages);
    try {
      const s = await sampler({ kind: 'perf', mode: 'aggregate' }); // no BPF-side pid filter
      s.attachPerf(faultsAttr, { pid: child.pid });
      expect(s.attachments).toBe(1);
      await child.touch();
      faultHere();
      const drained = s.drainPages();
      const firstPage = child.base / PAGE;
      const seen = new Set<number>();
      for (let i = 0; i < drained.count; i++) {
        expect(drained.tgid[i]).toBe(child.pid);
        seen.add(drained.page[i]);
      }
      for (let p = 0; p < pages; p++) expect(seen.has(firstPage + p)).toBe(true);
    } finally {
      await child.end();
    }
  });

  // The object as built reads perf_sample_data with plain loads (bpf_cast_to_kern_ctx, 6.2+);
  // a second build exercises the probe-read path older kernels take.
  const probeReadObject = (): string => {
    const out = join(dir, 'sampler-probe-read.bpf.o');
    if (!existsSync(out)) {
      const root = packageRoot();
      execFileSync('clang', [
        '-g', '-O2', '-target', 'bpf', '-D__TARGET_ARCH_x86', '-DVT_TEST_PROBE_READ_PATH',
        '-I', join(root, 'build', 'bpf'), '-I', join(root, 'bpf'),
        '-c', join(root, 'bpf', 'sampler.bpf.c'), '-o', out,
      ]);
    }
    return out;
  };

  for (const path of ['kern-ctx', 'probe-read'] as const) {
  it(`perf: PERF_SAMPLE_PHYS_ADDR gives physical pages through the CO-RE read, ${path} path (copy-on-write faults)`, async () => {
    const objectPath = path === 'probe-read' ? probeReadObject() : undefined;
    const pages = 500;
    const PERF_SAMPLE_ADDR = 1 << 3;
    const PERF_SAMPLE_PHYS_ADDR = 1 << 19;
    for (const withPhys of [false, true]) {
      const child = await startToucher(pages, true);
      try {
        const s = await sampler({ kind: 'perf', mode: 'both', pid: child.pid, objectPath });
        const sampleType = PERF_SAMPLE_ADDR | (withPhys ? PERF_SAMPLE_PHYS_ADDR : 0);
        s.attachPerf({ ...faultsAttr, sampleType }, { cpus: onlineCpus() });
        const physPages = new Set<number>();
        let records = 0;
        let flagged = 0;
        s.onRecords((b) => {
          for (let i = 0; i < b.count; i++) {
            if (b.addr[i] < child.base || b.addr[i] >= child.base + pages * PAGE) continue;
            records++;
            if (b.physAddr[i]) physPages.add(Math.floor(b.physAddr[i] / PAGE));
            if (b.flags[i] & FLAG_PHYS) flagged++;
          }
        });
        await child.touch();
        const deadline = Date.now() + 3000;
        while (records < pages && Date.now() < deadline) await settle(20);
        expect(records).toBe(pages);
        const drained = s.drainPages();
        let physKind = 0;
        for (let i = 0; i < drained.count; i++) if (drained.kind[i] === KIND_PHYS) physKind++;
        if (withPhys) {
          // every CoW fault had its (distinct, page-cache) physical page reported
          expect(physPages.size).toBe(pages);
          expect(flagged).toBe(pages);
          expect(physKind).toBeGreaterThanOrEqual(pages);
        } else {
          // not requested: sample_flags says phys_addr is stale, the program must not use it
          expect(physPages.size).toBe(0);
          expect(flagged).toBe(0);
          expect(physKind).toBe(0);
        }
      } finally {
        await child.end();
        for (const s of open.splice(0)) s.close();
      }
    }
  });
  }

  it('drainPagesAsync drains on the thread pool, and survives close() while in flight', async () => {
    const pages = 3000;
    const child = await startToucher(pages);
    try {
      const s = await sampler({ kind: 'fault-tracepoint', mode: 'aggregate', pid: child.pid });
      s.attachTracepoints();
      await child.touch();
      const drained = await s.drainPagesAsync();
      const firstPage = child.base / PAGE;
      const seen = new Set(Array.from(drained.page));
      for (let p = 0; p < pages; p++) expect(seen.has(firstPage + p)).toBe(true);
      expect((await s.drainPagesAsync()).count).toBe(0);
      const inFlight = s.drainPagesAsync();
      s.close();
      await expect(inFlight).resolves.toMatchObject({ count: 0 });
    } finally {
      await child.end();
    }
  });

  it('a full aggregation map refuses and counts: drained + mapFull = sampled, nothing evicted', async () => {
    const pages = 2000;
    const capacity = 32; // entries of PAGE_GROUP_PAGES adjacent pages each
    const child = await startToucher(pages);
    try {
      // mode 'both': the kernel counts every sample, so the loss accounting can be checked
      const s = await sampler({ kind: 'fault-tracepoint', mode: 'both', pid: child.pid, maxPages: capacity, ringBytes: 1 << 20 });
      s.attachTracepoints();
      await child.touch();
      s.detach();
      expect(s.mapFill()).toBe(capacity);
      const drained = s.drainPages();
      const c = s.counters();
      const weight = sampleWeight(drained);
      // an LRU map would hold `capacity` entries too, but with mapFull 0 and the rest lost
      expect(c.inserts).toBe(BigInt(capacity));
      // each entry holds a group of adjacent pages: the child's sequential touches fill them
      // (the first group may start before the mapping, so up to one group short)
      expect(drained.count).toBeLessThanOrEqual(capacity * PAGE_GROUP_PAGES);
      expect(drained.count).toBeGreaterThan((capacity - 1) * PAGE_GROUP_PAGES);
      expect(c.mapFull).toBeGreaterThanOrEqual(BigInt(pages - capacity * PAGE_GROUP_PAGES));
      expect(BigInt(weight) + c.mapFull).toBe(c.samples);
      // the first pages touched are the ones kept: nothing was evicted for later ones
      const firstPage = child.base / PAGE;
      const kept = new Set(Array.from(drained.page));
      for (let p = 0; p < (capacity - 1) * PAGE_GROUP_PAGES; p++) expect(kept.has(firstPage + p)).toBe(true);
      expect(s.mapFill()).toBe(0);
    } finally {
      await child.end();
    }
  });

  it('mode aggregate derives samples from the drained counts and the refusals', async () => {
    const pages = 600;
    const child = await startToucher(pages);
    try {
      const s = await sampler({ kind: 'fault-tracepoint', mode: 'aggregate', pid: child.pid, maxPages: 40 }); // 320 pages at most
      s.attachTracepoints();
      await child.touch();
      s.detach();
      const before = s.counters();
      expect(before.samples).toBe(before.mapFull); // nothing drained yet
      const drained = await s.drainPagesAsync();
      const weight = sampleWeight(drained);
      const after = s.counters();
      expect(after.mapFull).toBeGreaterThan(0n);
      expect(after.samples).toBe(BigInt(weight) + after.mapFull);
      expect(after.samples).toBeGreaterThanOrEqual(BigInt(pages));
    } finally {
      await child.end();
    }
  });

  it('a full ring buffer counts drops, and delivered + dropped = sampled', async () => {
    const pages = 2000;
    const child = await startToucher(pages);
    try {
      // 4 KiB ring: ~100 records fit; nobody consumes during the burst
      const s = await sampler({ kind: 'fault-tracepoint', mode: 'ring', pid: child.pid, ringBytes: 4096 });
      s.attachTracepoints();
      await child.touch();
      s.detach();
      const c = s.counters();
      expect(c.drops).toBeGreaterThan(0n);
      let delivered = 0;
      s.onRawBatch((bytes) => (delivered += bytes.byteLength / 32));
      const deadline = Date.now() + 3000;
      while (BigInt(delivered) + c.drops < c.samples && Date.now() < deadline) await settle(20);
      expect(BigInt(delivered) + c.drops).toBe(c.samples);
    } finally {
      await child.end();
    }
  });

  it('SIGINT handled by close() detaches while the process lives on (checked from outside with bpftool)', async () => {
    // The kernel frees everything when a process dies anyway; what can fail is close()
    // leaving a link or program behind in a process that keeps running (the agents do).
    const moduleUrl = pathToFileURL(join(packageRoot(), 'dist', 'guest-agent', 'sampler-object.js')).href;
    const code = `import(${JSON.stringify(moduleUrl)}).then(async ({ openSampler }) => {
        const s = await openSampler({ kind: 'fault-tracepoint', mode: 'both' });
        s.attachTracepoints();
        s.onRecords(() => {});
        process.on('SIGINT', () => { s.close(); console.log('closed'); });
        setInterval(() => {}, 1000);
        console.log(s.bpfStats().progId);
      });`;
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
      const progId = Number((await lines.next()).value);
      expect(progExists(progId)).toBe(true);
      const links = () => execFileSync('bpftool', ['link', 'show', '--json'], { encoding: 'utf8' });
      expect((JSON.parse(links()) as Array<{ prog_id: number }>).some((l) => l.prog_id === progId)).toBe(true);
      child.kill('SIGINT');
      expect((await lines.next()).value).toBe('closed');
      expect(child.exitCode).toBe(null); // still running
      expect(await progGone(progId)).toBe(true);
      expect((JSON.parse(links()) as Array<{ prog_id: number }>).some((l) => l.prog_id === progId)).toBe(false);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
  });

  it('the fallback drain (get_next_key + lookup + delete) returns the same entries', async () => {
    const pages = 500;
    const child = await startToucher(pages);
    try {
      const s = await sampler({ kind: 'fault-tracepoint', mode: 'aggregate', pid: child.pid });
      s.attachTracepoints();
      await child.touch();
      s.detach();
      const drained = s.drainPages({ useBatch: false });
      const firstPage = child.base / PAGE;
      const pagesSeen = new Set(Array.from(drained.page));
      for (let p = 0; p < pages; p++) expect(pagesSeen.has(firstPage + p)).toBe(true);
      expect(s.drainPages().count).toBe(0);
    } finally {
      await child.end();
    }
  });

  for (const kind of ['perf', 'fault-tracepoint'] as const) {
    it(`${kind}: the ring buffer delivers a burst of faults in batches of many records`, async () => {
      const pages = 20000;
      const child = await startToucher(pages);
      try {
        const s = await sampler({ kind, mode: 'ring', pid: child.pid });
        if (kind === 'perf') s.attachPerf(faultsAttr, { cpus: onlineCpus() });
        else s.attachTracepoints();
        const batchSizes: number[] = [];
        const addrs = new Set<number>();
        let badSource = 0;
        s.onRecords((batch) => {
          batchSizes.push(batch.count);
          for (let i = 0; i < batch.count; i++) {
            addrs.add(Math.floor(batch.addr[i] / PAGE));
            if (batch.tgid[i] !== child.pid) badSource++;
            const src = batch.flags[i] & SRC_MASK;
            if (src !== (kind === 'perf' ? SRC_PERF : SRC_FAULT_TP)) badSource++;
            // The child writes its buffer; its other faults (stack, libc) may be reads.
            const inBuffer = batch.addr[i] >= child.base && batch.addr[i] < child.base + pages * PAGE;
            if (kind === 'fault-tracepoint' && inBuffer && !(batch.flags[i] & FLAG_WRITE)) badSource++;
          }
        });
        await child.touch();
        const deadline = Date.now() + 5000;
        const firstPage = child.base / PAGE;
        const allSeen = () => {
          for (let p = 0; p < pages; p++) if (!addrs.has(firstPage + p)) return false;
          return true;
        };
        while (!allSeen() && Date.now() < deadline) await settle(20);
        expect(allSeen()).toBe(true);
        expect(badSource).toBe(0);
        expect(Math.max(...batchSizes)).toBeGreaterThan(1);
        expect(batchSizes.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(pages);
        expect(s.ringStats().batches).toBe(batchSizes.length);
        expect(s.counters().drops).toBe(0n);
      } finally {
        await child.end();
      }
    });
  }

  it('an environment that ends without close() detaches everything (env cleanup hook)', async () => {
    // A worker thread has its own Node environment but shares the process's fds: only the
    // addon's cleanup hook can release the links and the object when the worker ends.
    const moduleUrl = pathToFileURL(join(packageRoot(), 'dist', 'guest-agent', 'sampler-object.js')).href;
    const code = `
      const { parentPort } = require('node:worker_threads');
      import(${JSON.stringify(moduleUrl)}).then(async ({ openSampler }) => {
        const s = await openSampler({ kind: 'fault-tracepoint', mode: 'both' });
        s.attachTracepoints();
        s.onRecords(() => {});
        parentPort.postMessage(s.bpfStats().progId);
      });`;
    const worker = new Worker(code, { eval: true });
    const progId = await new Promise<number>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    expect(progExists(progId)).toBe(true);
    await worker.terminate();
    expect(await progGone(progId)).toBe(true);
  });
});
