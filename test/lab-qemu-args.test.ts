// The lab VM's QEMU command line and run script, without booting anything: what each node
// gets, what is never given (vhost-vsock), which paths are refused, and that the run script
// hands the guest's shell exactly the argv typed on the host (checked with a real sh).
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkLabPath, kernelCommandLine, LabSpecError, memFiles, qemuArgs, type LabSpec } from '../lab/qemu-args.js';
import { shellQuote } from '../lab/shell.js';

const MiB = 1 << 20;
const base: LabSpec = {
  mode: 'run',
  accel: 'tcg',
  nodes: 2,
  memBytes: 2048 * MiB,
  cxlBytes: 1024 * MiB,
  smp: 2,
  kernel: '/c/.lab/vmlinuz',
  initrd: '/c/.lab/initrd.gz',
  checkout: '/work/main',
  results: '/work/main/results/lab-1',
  memPrefix: '/dev/shm/vtier-lab-1-x',
  qmpSocket: '/c/.lab/run-1/qmp.sock',
  serialSocket: '/c/.lab/run-1/vtier.sock',
  pidfile: '/c/.lab/run-1/qemu.pid',
  consoleLog: '/work/main/results/lab-1/console.log',
  outputLog: '/work/main/results/lab-1/output.log',
};

/** Values of every `flag` occurrence. */
const values = (args: string[], flag: string) => args.flatMap((a, i) => (args[i - 1] === flag ? [a] : []));

describe('lab QEMU command line', () => {
  it('two nodes: one shared file backend each, node 1 CPU-less with HMAT latency/bandwidth below node 0', () => {
    const args = qemuArgs(base);
    expect(values(args, '-machine')).toEqual(['q35,hmat=on']);
    expect(values(args, '-m')).toEqual(['3072M']);
    const objects = values(args, '-object');
    expect(objects).toEqual([
      'memory-backend-file,id=m0,size=2048M,mem-path=/dev/shm/vtier-lab-1-x-m0,share=on',
      'memory-backend-file,id=m1,size=1024M,mem-path=/dev/shm/vtier-lab-1-x-m1,share=on',
    ]);
    const numa = values(args, '-numa');
    expect(numa).toContain('node,nodeid=0,cpus=0-1,memdev=m0,initiator=0');
    expect(numa).toContain('node,nodeid=1,memdev=m1,initiator=0');
    const latency = (t: number) => Number(/latency=(\d+)/.exec(numa.find((n) => n.includes(`target=${t},`) && n.includes('access-latency'))!)![1]);
    expect(latency(1)).toBeGreaterThan(latency(0));
    expect(numa.filter((n) => n.startsWith('hmat-lb')).length).toBe(4);
  });

  it('one node: no HMAT, one backend, all CPUs on it', () => {
    const args = qemuArgs({ ...base, nodes: 1 });
    expect(values(args, '-machine')).toEqual(['q35']);
    expect(values(args, '-object')).toHaveLength(1);
    expect(values(args, '-numa')).toEqual(['node,nodeid=0,cpus=0-1,memdev=m0']);
    expect(values(args, '-m')).toEqual(['2048M']);
    expect(memFiles({ ...base, nodes: 1 })).toEqual(['/dev/shm/vtier-lab-1-x-m0']);
  });

  it('never a vsock device; root read-only over 9p, results read-write, virtio-serial port "vtier", QMP and pidfile', () => {
    const args = qemuArgs(base);
    expect(args.join(' ')).not.toMatch(/vsock/);
    const fsdev = values(args, '-fsdev');
    expect(fsdev[0]).toMatch(/^local,id=fsroot,path=\/,readonly=on,/);
    expect(fsdev[1]).toMatch(/^local,id=fsres,path=\/work\/main\/results\/lab-1,/);
    expect(fsdev[1]).not.toMatch(/readonly/);
    expect(values(args, '-device')).toContain('virtserialport,chardev=vtier0,name=vtier');
    expect(values(args, '-chardev')).toContain('socket,id=vtier0,path=/c/.lab/run-1/vtier.sock,server=on,wait=off');
    expect(values(args, '-qmp')).toEqual(['unix:/c/.lab/run-1/qmp.sock,server=on,wait=off']);
    expect(values(args, '-pidfile')).toEqual(['/c/.lab/run-1/qemu.pid']);
    expect(values(args, '-serial')).toEqual(['file:/work/main/results/lab-1/console.log', 'file:/work/main/results/lab-1/output.log']);
    expect(args).toContain('-no-reboot');
  });

  it('kvm vs tcg, and a shell gets the console on the terminal (Ctrl-C to the guest) with a log', () => {
    expect(values(qemuArgs({ ...base, accel: 'kvm' }), '-accel')).toEqual(['kvm']);
    expect(values(qemuArgs(base), '-accel')).toEqual(['tcg,thread=multi']);
    const shell = qemuArgs({ ...base, mode: 'shell' });
    expect(values(shell, '-chardev')).toContain('stdio,id=con,signal=off,logfile=/work/main/results/lab-1/console.log');
    expect(values(shell, '-serial')[0]).toBe('chardev:con');
  });

  it('the kernel command line carries mode, checkout and results, panics end QEMU, NUMA balancing starts off', () => {
    const line = kernelCommandLine(base);
    expect(line).toContain('vtier.mode=run');
    expect(line).toContain('vtier.checkout=/work/main');
    expect(line).toContain('vtier.results=/work/main/results/lab-1');
    expect(line).toContain('panic=-1');
    expect(line).toContain('numa_balancing=disable');
    // TCG's software TLB hides accessed bits from DAMON unless PTI flushes it on kernel entry.
    expect(line.split(' ')).toContain('pti=on');
    expect(kernelCommandLine({ ...base, accel: 'kvm' }).split(' ')).not.toContain('pti=on');
  });

  it('refuses sizes, CPU counts and paths QEMU or the command line cannot carry', () => {
    expect(() => qemuArgs({ ...base, nodes: 3 as 1 })).toThrow(LabSpecError);
    expect(() => qemuArgs({ ...base, smp: 0 })).toThrow(/smp/);
    expect(() => qemuArgs({ ...base, memBytes: 100 * MiB })).toThrow(/mem: at least 256M/);
    expect(() => qemuArgs({ ...base, cxlBytes: 300 * MiB + 4096 })).toThrow(/cxl: a multiple of 2M/);
    // One node ignores the CXL size.
    expect(() => qemuArgs({ ...base, nodes: 1, cxlBytes: 0 })).not.toThrow();
    for (const bad of ['/a,b', '/a b', 'relative', '/a;rm', "/a'b", '/a\nb', '']) {
      expect(() => checkLabPath(bad, 'results dir')).toThrow(LabSpecError);
      expect(() => qemuArgs({ ...base, results: bad })).toThrow(/results dir/);
    }
  });
});

describe('lab run script quoting', () => {
  it('any argv reaches the guest shell unchanged (property, with a real sh)', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'grapheme', maxLength: 12 }).filter((s) => !s.includes('\0')), { minLength: 1, maxLength: 6 }), (argv) => {
        const script = `printf '%s\\0' ${argv.map(shellQuote).join(' ')}`;
        const r = spawnSync('sh', ['-c', script], { encoding: 'utf8' });
        expect(r.status).toBe(0);
        expect(r.stdout.split('\0').slice(0, -1)).toEqual(argv);
      }),
      { numRuns: 150 },
    );
  });

  it('refuses NUL bytes', () => {
    expect(() => shellQuote('a\0b')).toThrow(/NUL/);
  });
});
