// What eval overhead reads from an arm's cgroup v2: cpu.stat usage_usec and memory.peak, on a
// fake cgroup directory (plain files in a temp dir), so the parse is checked on any machine.
// The real cgroup accounting (a workload that forks) is in eval-overhead.test.ts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ArmCgroup, probeCgroups, type CgroupProbe } from '../eval/children.js';

const base = mkdtempSync(join(tmpdir(), 'vtier-fake-cgroup-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const CPU_STAT = 'usage_usec 4890123\nuser_usec 4000000\nsystem_usec 890123\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n';

/** A fake cgroup2 mount with one arm directory holding the given files. */
function fakeArm(name: string, memory: boolean, files: Record<string, string>): ArmCgroup {
  const mount = mkdtempSync(join(base, 'mount-'));
  const probe: Extract<CgroupProbe, { ok: true }> = { ok: true, mount, memory, memoryNote: null };
  const arm = ArmCgroup.create(probe, name);
  for (const [file, text] of Object.entries(files)) writeFileSync(join(arm.path, file), text);
  return arm;
}

describe('arm cgroup usage (fake cgroup dir)', () => {
  it('reads the CPU of everything inside from cpu.stat and the memory peak from memory.peak', () => {
    const arm = fakeArm('vtier-overhead-1-agent', true, { 'cpu.stat': CPU_STAT, 'memory.peak': '157286400\n' });
    expect(arm.usage()).toEqual({ cpuS: 4.890123, memoryPeakBytes: 157286400 });
  });

  it('has no memory peak when the memory controller is off, even if a file is there', () => {
    const arm = fakeArm('arm', false, { 'cpu.stat': CPU_STAT, 'memory.peak': '157286400\n' });
    expect(arm.usage()).toEqual({ cpuS: 4.890123, memoryPeakBytes: null });
  });

  it('has no memory peak when memory.peak is missing (kernel before 5.19) or not a number', () => {
    expect(fakeArm('arm', true, { 'cpu.stat': CPU_STAT }).usage().memoryPeakBytes).toBeNull();
    expect(fakeArm('arm', true, { 'cpu.stat': CPU_STAT, 'memory.peak': 'max\n' }).usage().memoryPeakBytes).toBeNull();
  });

  it('makes the arm directory under the mount, with a safe name', () => {
    const arm = fakeArm('vtier overhead/1 ../agent', true, { 'cpu.stat': CPU_STAT });
    expect(arm.path.startsWith(base)).toBe(true);
    expect(arm.path.split('/').pop()).toBe('vtier_overhead_1_.._agent');
  });

  it('probes a fake mount: writable, memory only when subtree_control lists it', () => {
    const mount = mkdtempSync(join(base, 'probe-'));
    writeFileSync(join(mount, 'cgroup.procs'), '');
    writeFileSync(join(mount, 'cgroup.subtree_control'), 'cpuset cpu io pids\n');
    const without = probeCgroups(mount);
    expect(without).toMatchObject({ ok: true, memory: false });
    expect((without as { memoryNote: string }).memoryNote).toMatch(/memory controller is not enabled/);
    writeFileSync(join(mount, 'cgroup.subtree_control'), 'cpuset cpu io memory pids\n');
    expect(probeCgroups(mount)).toEqual({ ok: true, mount, memory: true, memoryNote: null });
    expect(probeCgroups(null)).toMatchObject({ ok: false, reason: expect.stringMatching(/not mounted/) });
  });
});
