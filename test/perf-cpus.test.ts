// Per-CPU perf attach: a perf group (leader + sampling member) really opened with software
// events, CPUs the kernel refuses reported instead of failing the attach, and page sources
// following CPU hotplug through an injected online list (the attach to each CPU is real).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { onlineCpus } from '../native/addon.js';
import { openSampler, type SamplerObject } from '../guest-agent/sampler-object.js';
import { detectPmu, perfEventsFor } from '../guest-agent/perf-attr.js';
import { PageSource } from '../guest-agent/sources/pages.js';
import { lossLines } from '../cli/commands/guest-record.js';
import { bpfTestGuard } from './helpers/bpf-guard.js';

const { skip } = bpfTestGuard('perf-cpus', 'bpf() and perf events');

const PERF_TYPE_SOFTWARE = 1;
const PERF_COUNT_SW_DUMMY = 9;
const PERF_COUNT_SW_PAGE_FAULTS = 2;
const PERF_FORMAT_GROUP = 1 << 3;
const faultsAttr = { type: PERF_TYPE_SOFTWARE, config: PERF_COUNT_SW_PAGE_FAULTS, samplePeriod: 1 };
/** No machine has this CPU: perf_event_open really fails for it. */
const NO_SUCH_CPU = 4095;

/** The perf event fds this process holds. */
function perfFds(): number[] {
  const fds: number[] = [];
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) === 'anon_inode:[perf_event]') fds.push(Number(name));
    } catch {
      /* closed meanwhile (the directory's own fd) */
    }
  }
  return fds;
}

/** read(2) on a perf fd: with PERF_FORMAT_GROUP the first u64 is the group's size. */
function readPerf(fd: number): BigUint64Array {
  const buf = Buffer.alloc(64);
  const n = readSync(fd, buf, 0, 64, null);
  return new BigUint64Array(buf.buffer, buf.byteOffset, n / 8);
}

function faultHere(): void {
  const b = Buffer.alloc(8 << 20);
  for (let i = 0; i < b.length; i += 4096) b[i] = 1;
}

function drainedWeight(s: SamplerObject): number {
  const d = s.drainPages();
  let w = 0;
  for (let i = 0; i < d.count; i++) w += d.reads[i] + d.writes[i];
  return w;
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));
const opened: SamplerObject[] = [];
afterEach(() => {
  for (const s of opened.splice(0)) s.close();
});

async function perfSampler(): Promise<SamplerObject> {
  const s = await openSampler({ kind: 'perf', mode: 'aggregate' });
  opened.push(s);
  return s;
}

describe.skipIf(skip)('perf groups and per-CPU attach (real kernel)', () => {
  it('a group per CPU: a counting leader opened first, the sampling member joins it; samples arrive; detach and close free both fds', async () => {
    const cpus = onlineCpus();
    const base = perfFds().length;
    const s = await perfSampler();
    // The leader is on the member's PMU, as mem-loads-aux is on the 'cpu' PMU (the kernel
    // schedules a group per PMU context: with a cpu-clock leader, a page-faults member
    // never counts).
    const leader = { type: PERF_TYPE_SOFTWARE, config: PERF_COUNT_SW_DUMMY, readFormat: PERF_FORMAT_GROUP };
    const r = s.attachPerf(faultsAttr, { cpus }, { leader });
    expect(r).toEqual({ cpus, failed: [] });
    const fds = perfFds();
    expect(fds.length).toBe(base + 2 * cpus.length);
    // Each leader reads as a group of two (itself and the page-faults member).
    const leaders = fds.filter((fd) => readPerf(fd).length > 1);
    expect(leaders.length).toBe(cpus.length);
    for (const fd of leaders) expect(readPerf(fd)[0]).toBe(2n);
    faultHere();
    expect(drainedWeight(s)).toBeGreaterThan(0); // the member samples: its leader is on
    // {nr, leader count, member count}: the member counted inside the group
    expect(leaders.map((fd) => readPerf(fd)[2]).reduce((a, b) => a + b, 0n)).toBeGreaterThan(0n);
    s.detach();
    expect(perfFds().length).toBe(base);
    s.attachPerf(faultsAttr, { cpus }, { leader });
    expect(perfFds().length).toBe(base + 2 * cpus.length);
    s.close();
    expect(perfFds().length).toBe(base);
  });

  it('a leader the kernel refuses fails each CPU at the leader, and leaks nothing', async () => {
    const base = perfFds().length;
    const s = await perfSampler();
    const r = s.attachPerfPerCpu(faultsAttr, { cpus: onlineCpus() }, { leader: { type: 0x7ffffff0 } });
    expect(r.cpus).toEqual([]);
    expect(r.failed.map((f) => f.cpu)).toEqual(onlineCpus());
    for (const f of r.failed) expect(f.error).toMatchObject({ syscall: 'perf_event_open', message: expect.stringMatching(/group leader, cpu \d+/) });
    expect(() => s.attachPerf(faultsAttr, { cpus: onlineCpus() }, { leader: { type: 0x7ffffff0 } })).toThrow(/perf_event_open/);
    expect(perfFds().length).toBe(base);
  });

  it('a CPU the kernel refuses is reported; the real CPUs attach and sample', async () => {
    const cpus = onlineCpus();
    const s = await perfSampler();
    const r = s.attachPerf(faultsAttr, { cpus: [...cpus, NO_SUCH_CPU] });
    expect(r.cpus).toEqual(cpus);
    expect(r.failed).toHaveLength(1);
    expect(r.failed[0].cpu).toBe(NO_SUCH_CPU);
    expect(r.failed[0].error).toMatchObject({ syscall: 'perf_event_open', code: expect.stringMatching(/^E[A-Z]+$/) });
    expect(s.attachments).toBe(cpus.length);
    faultHere();
    expect(drainedWeight(s)).toBeGreaterThan(0);
    // only when no CPU attaches is the attach an error
    expect(() => s.attachPerf(faultsAttr, { cpus: [NO_SUCH_CPU] })).toThrow(/perf_event_open/);
  });

  it('the real PEBS group (mem-loads-aux leader) on this machine', (ctx) => {
    const events = detectPmu().kind === 'intel' ? perfEventsFor('pebs').filter((e) => e.leader) : [];
    if (!events.length) {
      console.warn('perf-cpus: no Intel PMU with mem-loads-aux here (no PMU in this VM): the hardware group open is covered by the sysfs fixtures only');
      ctx.skip();
    }
  });
});

describe.skipIf(skip)('page sources follow CPUs (real attach, injected online list)', () => {
  let child: ChildProcess | undefined;
  const sources: PageSource[] = [];
  afterEach(async () => {
    for (const src of sources.splice(0)) await src.stop();
    child?.kill('SIGKILL');
    child = undefined;
  });

  /** A process pinned to one CPU that keeps faulting fresh pages in. */
  function faulterOn(cpu: number): ChildProcess {
    const script = 'setInterval(() => { const b = Buffer.alloc(4 << 20); for (let i = 0; i < b.length; i += 4096) b[i] = 1; }, 10)';
    child = spawn('taskset', ['-c', String(cpu), process.execPath, '-e', script], { stdio: 'ignore' });
    return child;
  }

  async function start(online: () => number[], pid?: number): Promise<PageSource> {
    const src = await PageSource.start({ source: 'faults', faultsVia: 'perf', samplePeriod: 1, epochMs: 100, pid, readOnlineCpus: online });
    sources.push(src);
    return src;
  }

  it('a nonexistent CPU in the online list: the start succeeds on the real CPUs and reports the failed one', async () => {
    const cpus = onlineCpus();
    const src = await start(() => [...cpus, NO_SUCH_CPU]);
    const st = src.stats().perfCpus!;
    expect(st.attached).toEqual(cpus);
    expect(st.failed).toEqual([{ cpu: NO_SUCH_CPU, code: expect.stringMatching(/^E[A-Z]+$/), message: expect.stringMatching(/perf_event_open/) }]);
    expect(lossLines(src.stats(), src.tunables)).toContainEqual(expect.stringMatching(new RegExp(`^  NOT SAMPLED cpu ${NO_SUCH_CPU}: perf_event_open: `)));
    faultHere();
    await settle(350);
    expect(src.stats().samples).toBeGreaterThan(0);
    // the failed CPU is not retried while listed, and dropped from the report once it leaves
    expect(src.stats().perfCpus!.failed).toHaveLength(1);
  });

  it.skipIf(onlineCpus().length < 2)('a CPU coming online gets the event, one going offline loses it', async () => {
    const [cpuA, cpuB] = onlineCpus();
    const child = faulterOn(cpuB);
    await settle(300); // node is up and faulting on cpuB
    let online = [cpuA];
    const base = perfFds().length;
    const src = await start(() => online, child.pid);
    expect(src.stats().perfCpus).toMatchObject({ attached: [cpuA], onlined: 0, offlined: 0 });
    expect(perfFds().length).toBe(base + 1);
    await settle(400);
    expect(src.stats().samples).toBe(0); // the faulter runs on cpuB, not sampled yet

    online = [cpuA, cpuB]; // cpuB hot-plugged
    await settle(500);
    expect(src.stats().perfCpus).toMatchObject({ attached: [cpuA, cpuB], onlined: 1, offlined: 0 });
    expect(perfFds().length).toBe(base + 2);
    const sampled = src.stats().samples;
    expect(sampled).toBeGreaterThan(0);

    online = [cpuA]; // cpuB unplugged
    await settle(400);
    expect(src.stats().perfCpus).toMatchObject({ attached: [cpuA], onlined: 1, offlined: 1 });
    expect(lossLines(src.stats(), {})).toContainEqual(expect.stringMatching(/CPU hotplug: 1 CPU\(s\) attached as they came online, 1 dropped going offline/));
    expect(perfFds().length).toBe(base + 1);
    const after = src.stats().samples;
    await settle(500);
    expect(src.stats().samples).toBe(after); // nothing counted on cpuB any more
    expect(after).toBeGreaterThanOrEqual(sampled);
  });
});
