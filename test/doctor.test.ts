import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { promisify } from 'node:util';
import { bpfFact } from '../guest-agent/facts.js';

const run = promisify(execFile);

// Expectations come from this machine's /sys and /proc, not from constants.
function expectedPmuKind(): string {
  const dir = '/sys/bus/event_source/devices';
  const devices = existsSync(dir) ? readdirSync(dir) : [];
  if (devices.includes('ibs_op')) return 'amd-ibs';
  if (['cpu', 'cpu_core'].some((d) => existsSync(`${dir}/${d}/events/mem-loads`))) return 'intel';
  return 'none';
}

describe('bpfFact', () => {
  it('reports a refused bpf() with the errno and the fix, and a missing addon as unknown', () => {
    const eperm = bpfFact(() => {
      throw Object.assign(new Error('bpf: Operation not permitted'), { code: 'EPERM', syscall: 'bpf' });
    });
    expect(eperm.ok).toBe(false);
    expect(eperm.detail).toMatch(/Operation not permitted.*CAP_BPF/);
    const unbuilt = bpfFact(() => {
      throw Object.assign(new Error('native addon not built (x); run "npm run build"'), { code: 'ENOADDON' });
    });
    expect(unbuilt.ok).toBeNull();
    expect(bpfFact(() => {}).ok).toBe(true);
  });
});

describe('vtier doctor', () => {
  it('--json reports every field and reflects this machine', async () => {
    const { stdout } = await run('node', ['bin/vtier.js', 'doctor', '--json']);
    const report = JSON.parse(stdout);
    for (const key of ['kernel', 'btf', 'bpf', 'pmu', 'damon', 'numa', 'numaBalancing', 'vsock', 'qemu', 'thp', 'host', 'recommendation', 'checks']) {
      expect(report).toHaveProperty(key);
    }
    expect(report.kernel.release).toBe(release());
    expect(report.btf.present).toBe(existsSync('/sys/kernel/btf/vmlinux'));
    expect(report.pmu.kind).toBe(expectedPmuKind());
    const nodes = readdirSync('/sys/devices/system/node').filter((n) => /^node\d+$/.test(n));
    expect(report.numa.nodes).toHaveLength(nodes.length);
    const cpuless = nodes.filter((n) => readFileSync(`/sys/devices/system/node/${n}/cpulist`, 'utf8').trim() === '').map((n) => Number(n.slice(4)));
    expect(report.numa.cpulessNodes).toEqual(cpuless.sort((a, b) => a - b));
    const nb = existsSync('/proc/sys/kernel/numa_balancing') ? Number(readFileSync('/proc/sys/kernel/numa_balancing', 'utf8')) : null;
    expect(report.numaBalancing.value).toBe(nb);
    expect(report.vsock.vsock).toBe(existsSync('/dev/vsock'));
    expect(report.vsock.vhostVsock).toBe(existsSync('/dev/vhost-vsock'));
    const thp = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8');
    expect(thp).toContain(`[${report.thp.enabled}]`);
    expect(report.damon.available).toBe(existsSync('/sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds'));
    if (report.damon.available) {
      const running = readdirSync('/sys/kernel/mm/damon/admin/kdamonds').filter(
        (k) => /^\d+$/.test(k) && readFileSync(`/sys/kernel/mm/damon/admin/kdamonds/${k}/state`, 'utf8').trim() === 'on',
      );
      expect(report.damon.busy).toBe(running.length > 0);
    }
    // A real BPF_MAP_CREATE (no bpffs needed): root may, others depend on the sysctl.
    if (process.getuid?.() === 0) expect(report.bpf).toMatchObject({ ok: true, detail: 'BPF_MAP_CREATE allowed' });
    expect(report.checks.map((c: { name: string }) => c.name)).toEqual([
      'kernel', 'BTF', 'bpf()', 'PMU', 'DAMON', 'NUMA', 'numa_balancing', 'vsock', 'QEMU', 'lab', 'THP', 'recommended',
    ]);
    // Lab readiness as `vtier lab status` reports it; on a host (not inside a lab VM).
    expect(typeof report.lab.ready).toBe('boolean');
    if (report.lab.ready) expect(report.lab.accel).toMatch(/^(KVM|TCG): /);
    else expect(report.lab.missing.length).toBeGreaterThan(0);
  });

  it('prints an aligned table and exits 0 even when features are missing', async () => {
    const { stdout } = await run('node', ['bin/vtier.js', 'doctor']);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(12);
    // Name column starts at the same offset on every row.
    const starts = lines.map((l) => l.search(/\s{2}\S/));
    expect(new Set(starts).size).toBe(1);
    expect(stdout).toMatch(/^(ok|warn|MISSING|ERROR)\s+PMU\s+/m);
  });
});
