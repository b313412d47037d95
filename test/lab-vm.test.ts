// `vtier lab run` for real: boots the fetched guest kernel under QEMU (TCG here) and checks,
// from inside, what the lab promises: the guest's own kernel, BTF and a free DAMON, a CPU-less
// node 1 in a lower memory tier, the virtio-serial port, the results dir writable and the
// checkout not; and from outside that exit status, timeout and Ctrl-C end the run with
// nothing left behind (no QEMU process, no memory file). Boots take ~10 s each; the file runs
// alone (vitest runs files one at a time).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VTIER, labMemFiles, labTestFile, processesMentioning } from './helpers/lab.js';

const lab = labTestFile('lab-vm');
const skip = lab.skip;
const resultsDir = () => lab.resultsDir('lab');


function expectNothingLeft(dir: string): void {
  // The QEMU of this run names the results dir as its 9p export.
  expect(processesMentioning(`fsres,path=${dir},`)).toEqual([]);
  expect(labMemFiles().filter((f) => f.startsWith(`vtier-lab-`) && !processesAlive(f))).toEqual([]);
}

/** A memory file belongs to a live lab run when the pid in its name is alive (another test's VM). */
function processesAlive(file: string): boolean {
  const pid = Number(/^vtier-lab-(\d+)-/.exec(file)?.[1]);
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(skip)('vtier lab run (real QEMU guest)', () => {
  it('a two-node guest of our own: 6.12 kernel, BTF, free DAMON, CPU-less node 1 in a lower tier; exit status comes back', () => {
    const out = resultsDir();
    const script = [
      'echo "kernel $(uname -r)"',
      'echo "btf $(test -r /sys/kernel/btf/vmlinux && echo yes)"',
      'echo "kdamonds $(cat /sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds)"',
      'echo "node1-cpus [$(cat /sys/devices/system/node/node1/cpulist)]"',
      'for t in /sys/devices/virtual/memory_tiering/memory_tier*; do echo "tier ${t##*memory_tier} $(cat $t/nodelist)"; done',
      'echo "numa_balancing $(cat /proc/sys/kernel/numa_balancing)"',
      'echo "port $(readlink /dev/virtio-ports/vtier)"',
      'echo "vtier $(command -v vtier)"',
      'echo inside > "$VTIER_RESULTS/written-inside"',
      'touch "$VTIER_CHECKOUT/package.json" 2>/dev/null && echo "checkout writable" || echo "checkout read-only"',
      'exit 7',
    ].join('; ');
    const r = spawnSync(process.execPath, [VTIER, 'lab', 'run', '--nodes', '2', '--mem', '1G', '--cxl', '512M', '--timeout', '3m', '--out', out, '--json', '--', 'sh', '-c', script], {
      encoding: 'utf8',
      timeout: 200_000,
    });
    expect(r.status, r.stderr).toBe(7);
    const result = JSON.parse(r.stdout);
    expect(result.end).toBe('exited');
    expect(result.exitStatus).toBe(7);
    expect(result.accel).toMatch(/^(kvm|tcg)$/);
    expect(result.bootMs).toBeGreaterThan(0);
    const output = readFileSync(join(out, 'output.log'), 'utf8');
    expect(output).toMatch(/^kernel 6\.(1[2-9]|[2-9]\d)\./m);
    expect(output).toContain('btf yes');
    expect(output).toContain('kdamonds 0');
    expect(output).toContain('node1-cpus []');
    // Node 0 in the top tier (4), node 1 alone in a lower one (HMAT).
    const tiers = [...output.matchAll(/^tier (\d+) (\S+)$/gm)].map((m) => [Number(m[1]), m[2]] as const);
    expect(tiers.find(([, nodes]) => nodes === '0')?.[0]).toBe(4);
    const cxlTier = tiers.find(([, nodes]) => nodes === '1')?.[0];
    expect(cxlTier).toBeGreaterThan(4);
    expect(output).toContain('numa_balancing 0');
    expect(output).toMatch(/^port \.\.\/vport\d+p\d+$/m);
    expect(output).toContain('vtier /tmp/vtier-bin/vtier');
    expect(output).toContain('checkout read-only');
    expect(readFileSync(join(out, 'written-inside'), 'utf8')).toBe('inside\n');
    expect(readFileSync(join(out, 'console.log'), 'utf8')).toContain('vtier-lab: exit status 7');
    expectNothingLeft(out);
  });

  it('--timeout stops QEMU (exit 124) and removes its memory files', () => {
    const out = resultsDir();
    const r = spawnSync(process.execPath, [VTIER, 'lab', 'run', '--nodes', '1', '--mem', '512M', '--timeout', '20s', '--out', out, '--json', '--', 'sleep', '600'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(124);
    const result = JSON.parse(r.stdout);
    expect(result.end).toBe('timeout');
    expect(result.wallMs).toBeLessThan(40_000);
    expectNothingLeft(out);
  });

  it('a guest kernel panic ends the run (exit 3) with the panic named, nothing left behind', () => {
    const out = resultsDir();
    // sysrq-c crashes the guest kernel on purpose; panic=-1 and -no-reboot turn that into QEMU
    // exiting, which the run must report as a panic, not as a timeout or a missing status.
    const r = spawnSync(process.execPath, [VTIER, 'lab', 'run', '--nodes', '1', '--mem', '512M', '--timeout', '3m', '--out', out, '--json', '--', 'sh', '-c', 'echo c > /proc/sysrq-trigger; sleep 600'], {
      encoding: 'utf8',
      timeout: 200_000,
    });
    expect(r.status, r.stderr).toBe(3);
    const result = JSON.parse(r.stdout);
    expect(result.end).toBe('panic');
    expect(result.detail).toMatch(/the guest kernel panicked \(Kernel panic/);
    expect(result.exitStatus).toBeNull();
    expect(readFileSync(join(out, 'console.log'), 'utf8')).toMatch(/sysrq: Trigger a crash/);
    expectNothingLeft(out);
  });

  it('Ctrl-C while the command runs stops QEMU (exit 130), nothing left behind', async () => {
    const out = resultsDir();
    const child = spawn(process.execPath, [VTIER, 'lab', 'run', '--nodes', '1', '--mem', '512M', '--timeout', '3m', '--out', out, '--', 'sleep', '600'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d) => (stderr += d));
    const consoleLog = join(out, 'console.log');
    const deadline = Date.now() + 120_000;
    while (!(existsSync(consoleLog) && readFileSync(consoleLog, 'utf8').includes('vtier-lab: running'))) {
      if (Date.now() > deadline) throw new Error('the guest did not start the command within 120 s');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(processesMentioning(out).length).toBeGreaterThan(0);
    const signalledAt = Date.now();
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code, stderr).toBe(130);
    expect(Date.now() - signalledAt).toBeLessThan(15_000);
    expect(stderr).toMatch(/interrupted/);
    expectNothingLeft(out);
  });

  it('bad input is a usage error (exit 2, kind usage under --json) before anything boots', () => {
    for (const args of [
      ['--nodes', '3'],
      ['--timeout', '1s'],
      ['--mem', 'lots'],
      ['--accel', 'xen'],
      ['--host-dram-budget', '1G'],
    ]) {
      const r = spawnSync(process.execPath, [VTIER, 'lab', 'run', ...args, '--json', '--', 'true'], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(2);
      const err = JSON.parse(r.stdout || r.stderr);
      expect(err.error.kind).toBe('usage');
    }
    const results = spawnSync(process.execPath, [VTIER, 'lab', 'run', '--out', '/tmp/a,b', '--json', '--', 'true'], { encoding: 'utf8', timeout: 60_000 });
    expect(results.status).toBe(2);
    expect(results.stdout + results.stderr).toMatch(/only letters, digits/);
  });

  it('lab status says ready and which accelerator', () => {
    const r = spawnSync(process.execPath, [VTIER, 'lab', 'status', '--json'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.ready).toBe(true);
    expect(s.accel).toMatch(/^(KVM|TCG): /);
  });
});

describe.skipIf(skip)('vtier lab shell (real QEMU guest, in tmux)', () => {
  it('gives an interactive shell on the guest console; exiting it powers the VM off', async () => {
    const out = resultsDir();
    const session = `vtier-lab-shell-${process.pid}`;
    const tmux = (...args: string[]) => spawnSync('tmux', args, { encoding: 'utf8' });
    tmux('new-session', '-d', '-s', session, '-x', '120', '-y', '30', `${process.execPath} ${VTIER} lab shell --nodes 1 --mem 512M --out ${out}; echo SHELL-EXIT=$?; sleep 60`);
    try {
      const consoleLog = join(out, 'console.log');
      const deadline = Date.now() + 120_000;
      while (!(existsSync(consoleLog) && readFileSync(consoleLog, 'utf8').includes('vtier-lab: shell'))) {
        if (Date.now() > deadline) throw new Error('no shell within 120 s');
        await new Promise((r) => setTimeout(r, 500));
      }
      await new Promise((r) => setTimeout(r, 2000));
      tmux('send-keys', '-t', session, 'echo answer=$((6*7)) on $(hostname)', 'Enter');
      await new Promise((r) => setTimeout(r, 3000));
      tmux('send-keys', '-t', session, 'exit', 'Enter');
      const exitBy = Date.now() + 60_000;
      let pane = '';
      while (!/SHELL-EXIT=\d+/.test(pane)) {
        if (Date.now() > exitBy) throw new Error(`the shell did not end: ${pane}`);
        await new Promise((r) => setTimeout(r, 500));
        pane = tmux('capture-pane', '-p', '-t', session).stdout;
      }
      expect(pane).toContain('SHELL-EXIT=0');
      const log = readFileSync(consoleLog, 'utf8');
      expect(log).toContain('answer=42 on vtier-lab');
      expect(log).toContain('vtier-lab: exit status 0');
      expectNothingLeft(out);
    } finally {
      tmux('kill-session', '-t', session);
    }
  }, 240_000);
});
