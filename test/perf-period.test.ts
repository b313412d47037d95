// The sample period sized to a CPU budget on the real kernel: the software page-faults perf
// event on every CPU, a child that faults continuously, the BPF program's run time read each
// epoch (BPF_ENABLE_STATS) and the new period applied by ioctl(PERF_EVENT_IOC_PERIOD). Under a
// tiny budget the period rises and samples per fault (the child's minflt from /proc) fall to
// match; under a large one it stays at its minimum and every fault is a sample.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openSampler } from '../guest-agent/sampler-object.js';
import { PageSource } from '../guest-agent/sources/pages.js';
import { builtPath, onlineCpus } from '../native/addon.js';

const ready = process.getuid?.() === 0 && existsSync('/sys/kernel/btf/vmlinux') && existsSync(builtPath('Release', 'vtier_native.node')) && existsSync(builtPath('bpf', 'sampler.bpf.o'));
const run = ready || process.env.CI === 'true';
if (!ready) console.warn('perf-period: needs root, BTF and a built sampler (npm run build)');

// Maps 16 MiB without THP, touches every page (one fault each), unmaps, forever.
const FAULTER_C = `
#include <sys/mman.h>
int main(void) {
  for (;;) {
    char *p = mmap(0, 16 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 1;
    madvise(p, 16 << 20, MADV_NOHUGEPAGE);
    for (long i = 0; i < (16 << 20); i += 4096) p[i] = 1;
    munmap(p, 16 << 20);
  }
}`;

let faulterBinary = '';
beforeAll(() => {
  if (!run) return;
  const dir = mkdtempSync(join(tmpdir(), 'vtier-faulter-'));
  writeFileSync(join(dir, 'faulter.c'), FAULTER_C);
  faulterBinary = join(dir, 'faulter');
  const cc = spawnSync('cc', ['-O2', '-o', faulterBinary, join(dir, 'faulter.c')], { encoding: 'utf8' });
  expect(cc.status, cc.stderr).toBe(0);
});

/** minflt of a process (/proc/PID/stat field 10). */
function minorFaults(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!run)('CPU-budget sample period (real perf events, real ioctl)', () => {
  let child: ChildProcess | undefined;
  let source: PageSource | undefined;
  afterEach(async () => {
    await source?.stop();
    source = undefined;
    child?.kill('SIGKILL');
    child = undefined;
  });

  /** Runs the faulter under a budget for `ms`; returns the period history and the samples per
   *  fault over the last `windowMs` (the child's faults from /proc, samples from the counters). */
  async function measure(cpuBudget: number, ms: number, windowMs: number) {
    child = spawn(faulterBinary, [], { stdio: 'ignore' });
    const pid = child.pid!;
    source = await PageSource.start({ source: 'faults', faultsVia: 'perf', samplePeriod: 1, epochMs: 200, pid, cpuBudget });
    await sleep(ms - windowMs);
    // the window starts with the child stopped and its samples drained (two epochs), so the
    // samples counted in it are the window's own
    child.kill('SIGSTOP');
    await sleep(450);
    const f0 = minorFaults(pid);
    const s0 = source.stats().samples;
    const p0 = source.periodStats()!.current;
    child.kill('SIGCONT');
    await sleep(windowMs);
    child.kill('SIGSTOP');
    const f1 = minorFaults(pid);
    const p1 = source.periodStats()!.current;
    await source.stop(); // drains what is left
    const s1 = source.stats().samples;
    child.kill('SIGKILL');
    const period = source.stats().period!;
    return { period, faults: f1 - f0, samples: s1 - s0, windowPeriods: [p0, p1] };
  }

  it('a tiny budget raises the period and samples per fault fall to match; the period stays in its clamp', async () => {
    const r = await measure(0.0002, 3000, 1000);
    console.log(`perf-period tiny budget 0.02%: periods ${r.period.history.join(' ')} (last share ${r.period.lastShare}); window: ${r.samples} samples / ${r.faults} faults`);
    expect(r.faults).toBeGreaterThan(1000);
    expect(r.period.changes).toBeGreaterThan(0);
    expect(r.period.current).toBeGreaterThan(1);
    expect(r.period.maxSeen).toBeLessThanOrEqual(r.period.max);
    expect(r.period.minSeen).toBe(1);
    // samples per fault follow 1/period (the kernel really took the ioctl): between the
    // period at the window's start and at its end, with slack for the window's edges
    const perFault = r.samples / r.faults;
    const [lo, hi] = [Math.min(...r.windowPeriods), Math.max(...r.windowPeriods)];
    expect(perFault).toBeLessThan(2 / lo);
    expect(perFault).toBeGreaterThan(1 / (2 * hi));
    expect(perFault).toBeLessThan(0.5);
  }, 20_000);

  it('a large budget keeps the minimum period: every fault is a sample', async () => {
    const r = await measure(1, 2000, 1000);
    console.log(`perf-period large budget 100%: periods ${r.period.history.join(' ')} (last share ${r.period.lastShare}); window: ${r.samples} samples / ${r.faults} faults`);
    expect(r.faults).toBeGreaterThan(1000);
    expect(r.period).toMatchObject({ current: 1, minSeen: 1, maxSeen: 1, changes: 0 });
    expect(r.samples / r.faults).toBeGreaterThan(0.9);
  }, 20_000);

  it('guest record --cpu-budget: the period in force in the summary line and the JSON', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'vtier-period-')), 't.vtt');
    const vtier = (extra: string[]) =>
      spawnSync(process.execPath, [join(import.meta.dirname, '..', 'bin', 'vtier.js'), 'guest', 'record', '--source', 'faults', '--sample-period', '2', '--duration', '2s', '--epoch', '250ms', '-o', out, ...extra, '--', faulterBinary], { encoding: 'utf8', timeout: 60_000 });
    const text = vtier(['--cpu-budget', '0.02%']);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^ {2}sample period \d+ in force \(2-\d+ seen, \d+ changes?; budget 0\.02% of one core, last epoch [\d.]+%; bounds 2-131072\)$/m);
    const json = vtier(['--cpu-budget', '100%', '--json']);
    expect(json.status, json.stderr).toBe(0);
    const data = JSON.parse(json.stdout.slice(json.stdout.indexOf('{')));
    expect(data.cpuBudget).toBe(1);
    expect(data.period).toMatchObject({ current: 2, minSeen: 2, maxSeen: 2, changes: 0, budget: 1, min: 2 });
    const tracepoint = spawnSync(process.execPath, [join(import.meta.dirname, '..', 'bin', 'vtier.js'), 'guest', 'record', '--source', 'faults', '--duration', '1s', '-o', out, '--json', '--', faulterBinary], { encoding: 'utf8', timeout: 60_000 });
    const tp = JSON.parse(tracepoint.stdout.slice(tracepoint.stdout.indexOf('{')));
    expect(tp.period).toBeNull();
    expect(tp.cpuBudget).toMatch(/^n\/a: .*no sample period/);
  }, 60_000);

  it('setPerfPeriod checks its arguments and reports syscall errors with .code and .syscall', async () => {
    const perf = await openSampler({ kind: 'perf' });
    const tp = await openSampler({ kind: 'fault-tracepoint' });
    try {
      perf.attachPerf({ type: 1, config: 2, samplePeriod: 1 }, { cpus: onlineCpus() });
      expect(perf.setPerfPeriod(64)).toEqual({ applied: onlineCpus().length, failed: [] });
      expect(() => perf.setPerfPeriod(0)).toThrow(TypeError);
      expect(() => perf.setPerfPeriod(2 ** 32 + 1)).toThrow(TypeError);
      expect(() => perf.setPerfPeriod(1.5)).toThrow(TypeError);
      expect(() => tp.setPerfPeriod(8)).toThrow(/not 'perf'/);
      // a link that is not a perf event, and no link at all: the native call's errors
      tp.attachTracepoints();
      const { openBpfObject } = await import('../native/addon.js');
      const obj = openBpfObject(builtPath('bpf', 'sampler.bpf.o'));
      try {
        expect(() => obj.setPerfPeriod(12345, 8)).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'ioctl(PERF_EVENT_IOC_PERIOD)' }));
      } finally {
        obj.close();
      }
    } finally {
      perf.close();
      tp.close();
    }
  });
});
