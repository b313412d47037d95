// `vtier eval overhead` end to end through the CLI: a tiny command workload, the presets that
// install here, Ctrl-C in the middle, bad input. The agent is a shell loop that watches the
// workload pid (given with --agent-cmd) unless this build has `vtier guest record`.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadResults, repoRoot } from '../eval/results.js';
import { ArmCgroup, cgroup2Mount, probeCgroups, readProcCpu, resolveCommand, withVtierOnPath } from '../eval/children.js';

const base = mkdtempSync(join(tmpdir(), 'vtier-overhead-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

// Burns a little CPU reading the workload's /proc entry, like a sampler polling it.
const AGENT = 'sh -c "while kill -0 {pid} 2>/dev/null; do cat /proc/{pid}/stat >/dev/null; done"';
const WORK = ['sh', '-c', 'i=0; while [ $i -lt 40000 ]; do i=$((i+1)); done'];

function vtier(args: string[], timeout = 180_000) {
  return spawnSync(process.execPath, ['bin/vtier.js', ...args], { encoding: 'utf8', cwd: repoRoot(), timeout });
}

describe('eval overhead', () => {
  it('runs alternating pairs and writes a complete results directory', () => {
    const out = join(base, 'cmd');
    const res = vtier(['eval', 'overhead', '--runs', '2', '--warmup', '100ms', '--agent-cmd', AGENT, '--out', out, '--json', '--', ...WORK]);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    const summary = JSON.parse(res.stdout);
    expect(summary).toMatchObject({ dir: out, pairs: 2, basis: 'wall_time', workload: 'sh', agent: { kind: 'custom' } });
    expect(summary.slowdown.n).toBe(2);
    expect(summary.slowdown.mean).toBeGreaterThan(0.5);
    expect(summary.agentCpuS).toBeGreaterThanOrEqual(0);
    expect(readdirSync(out).sort()).toEqual(['DONE', 'command.json', 'machine.json', 'observations.csv', 'report.html', 'runs', 'summary.json']);
    // Order alternates: run 1 baseline first, run 2 agent first.
    expect(readdirSync(join(out, 'runs')).filter((f) => f.endsWith('.json'))).toEqual(['001-run1-baseline.json', '002-run1-agent.json', '003-run2-agent.json', '004-run2-baseline.json']);
    const loaded = loadResults(out);
    expect(loaded.complete).toBe(true);
    expect(loaded.command?.settings.agent).toMatchObject({ kind: 'custom' });
    expect(loaded.command?.argv.slice(-3)).toEqual(WORK);
    const metrics = (system: string, metric: string) => loaded.observations.filter((o) => o.system === system && o.metric === metric);
    expect(metrics('agent', 'slowdown').map((o) => o.run)).toEqual([1, 2]);
    expect(metrics('baseline', 'wall_time')).toHaveLength(2);
    expect(metrics('agent', 'agent_cpu')).toHaveLength(2);
    // The workload's own CPU time, per arm, and its ratio per pair.
    expect(metrics('baseline', 'workload_cpu').every((o) => o.value > 0 && o.value < 30)).toBe(true);
    for (const o of metrics('agent', 'cpu_slowdown')) {
      const cpu = (system: string) => metrics(system, 'workload_cpu').find((c) => c.run === o.run)?.value ?? NaN;
      expect(o.value).toBeCloseTo(cpu('agent') / cpu('baseline'), 9);
    }
    // The slowdown of each pair is the ratio of the two wall times recorded beside it.
    for (const run of [1, 2]) {
      const wall = (system: string) => metrics(system, 'wall_time').find((o) => o.run === run)?.value ?? NaN;
      expect(metrics('agent', 'slowdown').find((o) => o.run === run)?.value).toBeCloseTo(wall('agent') / wall('baseline'), 9);
    }
    const raw = JSON.parse(readFileSync(join(out, 'runs', '002-run1-agent.json'), 'utf8'));
    expect(raw.agentExit).not.toBeNull();
    expect(raw.workloadExit).toBe(0);
  });

  it('measures the real guest agent (vtier guest record --source faults) on vtier-workload', () => {
    const out = join(base, 'guest-record');
    const workload = join(repoRoot(), 'build', 'Release', 'vtier-workload');
    expect(existsSync(workload), 'npm run build:native builds vtier-workload').toBe(true);
    const res = vtier(['eval', 'overhead', '--runs', '1', '--source', 'faults', '--warmup', '100ms', '--out', out, '--json', '--',
      workload, 'hotspot', '--size-bytes', String(64 * 2 ** 20), '--duration-ms', '1500', '--report-ms', '0']);
    expect(res.status, res.stdout + res.stderr).toBe(0);
    const summary = JSON.parse(res.stdout);
    expect(summary.agent.kind).toBe('vtier-guest-record');
    expect(summary.agent.argv).toContain('faults');
    const raw = JSON.parse(readFileSync(join(out, 'runs', '002-run1-agent.json'), 'utf8'));
    // The agent was stopped with SIGINT and finished cleanly, having seen the workload's faults.
    // Stopped by SIGINT (exit 0), or it saw the workload exit a moment before and said so.
    if (raw.agentExit.code !== 0) expect(raw.agentStderrTail).toMatch(/target process \d+ exited/);
    expect(raw.agentExit.signal).toBeNull();
    expect(statSync(join(out, 'runs', 'agent-run1.trace')).size).toBeGreaterThan(1000);
    expect(summary.agentCpuS).toBeGreaterThan(0);
    // The workload started only once the agent's programs were attached.
    expect(raw.agentAttachS).toBeGreaterThan(0);
    expect(loadResults(out).observations.some((o) => o.metric === 'agent_attach_time')).toBe(true);
  });

  it('uses the sysbench preset and its throughput', () => {
    const out = join(base, 'sysbench');
    const res = vtier(['eval', 'overhead', '--preset', 'sysbench', '--runs', '1', '--warmup', '100ms', '--agent-cmd', AGENT, '--out', out, '--json']);
    expect(res.status, res.stdout + res.stderr).toBe(0);
    const summary = JSON.parse(res.stdout);
    expect(summary).toMatchObject({ workload: 'sysbench-memory', basis: 'throughput', pairs: 1 });
    const throughput = loadResults(out).observations.filter((o) => o.metric === 'throughput');
    expect(throughput).toHaveLength(2);
    expect(throughput[0].unit).toBe('MiB/s');
    expect(throughput[0].value).toBeGreaterThan(10);
    expect(loadResults(out).command?.tools.sysbench).toMatch(/sysbench 1\./);
  });

  it('starts and stops a private redis-server for the redis preset', () => {
    const out = join(base, 'redis');
    const res = vtier(['eval', 'overhead', '--preset', 'redis', '--runs', '1', '--warmup', '100ms', '--agent-cmd', AGENT, '--out', out, '--json']);
    expect(res.status, res.stdout + res.stderr).toBe(0);
    const summary = JSON.parse(res.stdout);
    expect(summary).toMatchObject({ workload: 'redis-ycsb', basis: 'throughput' });
    const command = loadResults(out).command;
    const port = command?.settings.workloadSettings as { port: number };
    // Our server is gone: nothing listens on its port any more.
    const ping = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port.port), 'ping'], { encoding: 'utf8' });
    expect(ping.stdout.trim()).not.toBe('PONG');
    const ops = loadResults(out).observations.filter((o) => o.metric === 'throughput');
    expect(ops.every((o) => o.unit === 'ops/s' && o.value > 100)).toBe(true);
  });

  it('keeps completed runs and writes no DONE on Ctrl-C, leaving no child behind', async () => {
    const out = join(base, 'interrupt');
    const marker = `vtier-overhead-test-${process.pid}`;
    const child = spawn(process.execPath, ['bin/vtier.js', 'eval', 'overhead', '--runs', '20', '--warmup', '50ms', '--agent-cmd', `sleep 60 # ${marker} {pid}`, '--out', out, '--', 'sh', '-c', `sleep 0.3 # ${marker}`], {
      cwd: repoRoot(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    // Wait until at least one pair is on disk, then interrupt.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (existsSync(join(out, 'observations.csv')) && readFileSync(join(out, 'observations.csv'), 'utf8').includes(',slowdown,')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code).toBe(130);
    expect(stderr).toMatch(/interrupted after \d+ complete pair\(s\); results so far kept in/);
    expect(existsSync(join(out, 'DONE'))).toBe(false);
    const loaded = loadResults(out);
    expect(loaded.complete).toBe(false);
    expect(loaded.observations.filter((o) => o.metric === 'slowdown').length).toBeGreaterThanOrEqual(1);
    // No process carrying our marker survives.
    await new Promise((r) => setTimeout(r, 300));
    const survivors = readdirSync('/proc').filter((pid) => {
      if (!/^\d+$/.test(pid)) return false;
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
      } catch {
        return false;
      }
    });
    expect(survivors).toEqual([]);
    // Its per-arm cgroups are gone too (they are named after the campaign's pid).
    const mount = cgroup2Mount();
    if (mount) expect(readdirSync(mount).filter((n) => n.startsWith(`vtier-${child.pid}-`))).toEqual([]);
  });

  it('rejects bad input with one line (or one JSON object) and exit code 2', () => {
    const cases: Array<[string[], RegExp]> = [
      [['--runs', '0', '--', 'true'], /--runs: "0" is not a positive integer/],
      [[], /nothing to run/],
      [['--preset', 'mysql'], /unknown preset "mysql"/],
      [['--preset', 'redis', '--', 'true'], /either --preset or a command/],
      [['--source', 'magic', '--', 'true'], /--source: "magic"/],
      [['--warmup', 'soon', '--', 'true'], /--warmup: "soon" is not a duration/],
    ];
    for (const [args, message] of cases) {
      const res = vtier(['eval', 'overhead', '--json', '--agent-cmd', AGENT, ...args]);
      expect(res.status, args.join(' ')).toBe(2);
      expect(JSON.parse(res.stdout).error.message).toMatch(message);
      const text = vtier(['eval', 'overhead', '--agent-cmd', AGENT, ...args]);
      expect(text.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  it('reads stress-ng\'s real metrics output', async () => {
    const { stressNgPreset } = await import('../eval/presets/stress-ng.js');
    const res = spawnSync('stress-ng', ['--vm', '1', '--vm-bytes', '16M', '--timeout', '1s', '--metrics-brief'], { encoding: 'utf8' });
    expect(res.status).toBe(0);
    const prepared = await stressNgPreset.prepare();
    const figure = prepared.run().parse(res.stdout, res.stderr);
    expect(figure?.unit).toBe('bogo-ops/s');
    expect(figure?.value).toBeGreaterThan(0);
    expect(figure?.work).toBeGreaterThan(0);
    expect(prepared.run().parse('', 'nothing here')).toBeNull();
  });

  it('compares CPU time per unit of work when runs report their work', async () => {
    const { cpuSlowdown } = await import('../eval/overhead.js');
    const arm = (workloadCpuS: number | null, work?: number) =>
      ({ arm: 'baseline', run: 1, wallS: 10, throughput: work ? { value: work / 10, unit: 'ops/s', work } : null, workloadCpuS } as never);
    // Same work: plain CPU ratio. Fixed-time runs: CPU per unit of work.
    expect(cpuSlowdown(arm(2), arm(2.2))).toBeCloseTo(1.1, 12);
    expect(cpuSlowdown(arm(10, 1000), arm(10, 800))).toBeCloseTo(1.25, 12);
    expect(cpuSlowdown(arm(null), arm(1))).toBeNull();
  });

  it('reads process CPU time from /proc', () => {
    const cpu = readProcCpu(process.pid);
    expect(cpu?.selfS).toBeGreaterThan(0);
    expect(readProcCpu(2 ** 30)).toBeNull();
  });

});

// Work done by a grandchild that the workload never waits for (it is reparented to init and
// exits before the workload does): /proc/PID/stat of the workload never sees that CPU time.
const FORKING = ['sh', '-c', [
  'd=$(mktemp -d)',
  '( ( i=0; while [ $i -lt 60000 ]; do i=$((i+1)); done; touch "$d/done" ) & )',
  'while [ ! -e "$d/done" ]; do sleep 0.02; done',
  'rm -r "$d"',
].join('; ')];

function vtierCgroups(): string[] {
  const mount = cgroup2Mount();
  return mount ? readdirSync(mount).filter((n) => n.startsWith('vtier-')) : [];
}

describe('eval overhead: one cgroup v2 per arm', () => {
  const probe = probeCgroups();
  // CI runs as root on a cgroup2 machine: there the accounting must work, not skip.
  const runs = probe.ok || process.env.CI === 'true' ? it : it.skip;

  runs('counts the CPU of children that exit before the workload, in every run, and removes its cgroups', () => {
    expect(probe, 'cgroup v2 must be mounted and writable').toMatchObject({ ok: true });
    const before = vtierCgroups();
    const out = join(base, 'forking');
    const res = vtier(['eval', 'overhead', '--runs', '2', '--warmup', '50ms', '--agent-cmd', 'sleep 600', '--out', out, '--json', '--', ...FORKING]);
    expect(res.status, res.stdout + res.stderr).toBe(0);
    const summary = JSON.parse(res.stdout);
    expect(summary.accounting.method).toBe('cgroup');
    expect(summary.order).toEqual(['baseline', 'agent']);
    const cpu = loadResults(out).observations.filter((o) => o.metric === 'workload_cpu');
    expect(cpu).toHaveLength(4);
    // 60,000 shell iterations take over 0.1 s of CPU; the sleeping parent a tick or two.
    for (const o of cpu) expect(o.value, `run ${o.run} ${o.system}`).toBeGreaterThan(0.06);
    expect(summary.cpuSlowdown.mean).toBeGreaterThan(0);
    expect(summary.cpuSlowdownNote).toBeNull();
    // Every pair's slowdown records which arm ran first.
    const pairs = loadResults(out).observations.filter((o) => o.metric === 'slowdown');
    expect(pairs.map((o) => [o.run, o.param, o.paramValue])).toEqual([[1, 'agent_first', 0], [2, 'agent_first', 1]]);
    expect(vtierCgroups()).toEqual(before);
  });

  runs('the /proc reading this replaces misses that CPU (the test above can fail)', async () => {
    const { spawn: spawnChild } = await import('node:child_process');
    const child = spawnChild(FORKING[0], FORKING.slice(1), { stdio: 'ignore' });
    let last = readProcCpu(child.pid ?? -1);
    const timer = setInterval(() => (last = readProcCpu(child.pid ?? -1) ?? last), 5);
    await new Promise((r) => child.on('exit', r));
    clearInterval(timer);
    expect((last?.selfS ?? 0) + (last?.childrenS ?? 0)).toBeLessThan(0.05);
  });

  runs('removes its cgroups when the workload fails, killing what it left running', () => {
    const before = vtierCgroups();
    const out = join(base, 'failing');
    const marker = `vtier-cg-straggler-${process.pid}`;
    const res = vtier(['eval', 'overhead', '--runs', '1', '--warmup', '50ms', '--agent-cmd', 'sleep 600', '--out', out, '--json', '--',
      'sh', '-c', `( sleep 30 # ${marker}\n) & exit 3`]);
    expect(res.status).toBe(1);
    expect(JSON.parse(res.stdout).error.message).toMatch(/workload exited with code 3/);
    expect(vtierCgroups()).toEqual(before);
    // The straggler was in the arm's cgroup, so removing it killed the straggler too.
    const survivors = readdirSync('/proc').filter((pid) => /^\d+$/.test(pid) && (() => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
      } catch {
        return false;
      }
    })());
    expect(survivors).toEqual([]);
    // Nothing was measured, so no empty results directory stays behind.
    expect(existsSync(out)).toBe(false);
  });

  runs('charges every process in the cgroup and refuses to remove a busy one past its grace', async () => {
    if (!probe.ok) throw new Error(probe.reason);
    const cg = ArmCgroup.create(probe, `vtier-test-${process.pid}`);
    try {
      const res = spawnSync('sh', ['-c', `echo $$ > ${cg.path}/cgroup.procs; (i=0; while [ $i -lt 60000 ]; do i=$((i+1)); done) & wait`]);
      expect(res.status).toBe(0);
      expect(cg.usage().cpuS).toBeGreaterThan(0.01);
    } finally {
      await cg.remove();
    }
    expect(existsSync(cg.path)).toBe(false);
  });
});

describe('eval overhead: children find vtier', () => {
  it('puts a vtier shim first on the child PATH that runs this build', () => {
    const env = withVtierOnPath({ PATH: '/usr/bin:/bin' });
    const shim = resolveCommand('vtier', env);
    expect(shim).not.toBeNull();
    const res = spawnSync('vtier', ['--version'], { env, encoding: 'utf8' });
    expect(res.status, res.stderr).toBe(0);
    expect(resolveCommand('no-such-command-here', env)).toBeNull();
  });

  it('runs the README example `-- vtier workload ...` (exit 127 before)', () => {
    const out = join(base, 'readme-vtier');
    const res = vtier(['eval', 'overhead', '--runs', '1', '--warmup', '50ms', '--agent-cmd', 'sleep 600', '--out', out, '--json', '--', 'vtier', 'workload', 'hotspot', '--size', '32M', '--duration', '1s']);
    expect(res.status, res.stdout + res.stderr).toBe(0);
    expect(JSON.parse(res.stdout).pairs).toBe(1);
  });

  it('refuses a command that is not found before creating a results directory', () => {
    const out = join(base, 'not-found');
    const res = vtier(['eval', 'overhead', '--runs', '1', '--agent-cmd', 'sleep 1', '--out', out, '--json', '--', 'no-such-command-here']);
    expect(res.status).toBe(2);
    expect(JSON.parse(res.stdout).error).toMatchObject({ kind: 'usage' });
    expect(existsSync(out)).toBe(false);
  });
});
