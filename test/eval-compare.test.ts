// `vtier eval compare`: refusal on this one-node machine (for real), and the multi-node path on
// a fake /sys + /proc/sys + /proc tree: settings applied per system through the journal,
// restored afterwards and after a crash, vmstat deltas computed from the files.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readNumaTopology } from '../host-agent/numa.js';
import { checkTieredMachine, readVmstat, REAL_ROOTS, recoverCompareLeftovers, runCompare, vmstatDelta, migrationBytes, type Roots } from '../eval/compare.js';
import { loadResults, repoRoot, ResultsWriter } from '../eval/results.js';

const base = mkdtempSync(join(tmpdir(), 'vtier-compare-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const MACHINE = { basic: { hostname: 'fake' }, doctor: null, doctorError: 'test' };

function write(path: string, text: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
}

/** A two-node machine: node0 with CPUs, node1 CPU-less (a CXL expander), tiering knobs at their defaults. */
function fakeTree(name: string): Roots & { journalDir: string } {
  const root = join(base, name);
  const roots = { sys: join(root, 'sys'), procSys: join(root, 'proc/sys'), proc: join(root, 'proc'), journalDir: join(root, 'run/vtier') };
  write(join(roots.sys, 'devices/system/node/node0/cpulist'), '0-1\n');
  write(join(roots.sys, 'devices/system/node/node0/meminfo'), 'Node 0 MemTotal:       16384000 kB\n');
  write(join(roots.sys, 'devices/system/node/node1/cpulist'), '\n');
  write(join(roots.sys, 'devices/system/node/node1/meminfo'), 'Node 1 MemTotal:       8192000 kB\n');
  write(join(roots.sys, 'kernel/mm/numa/demotion_enabled'), 'false\n');
  write(join(roots.procSys, 'kernel/numa_balancing'), '0\n');
  write(join(roots.procSys, 'kernel/numa_balancing_promote_rate_limit_MBps'), '65536\n');
  write(join(roots.proc, 'vmstat'), 'nr_free_pages 5\npgpromote_success 100\npgdemote_kswapd 50\npgdemote_direct 0\nnuma_hint_faults 1000\npgmigrate_success 150\n');
  return roots;
}

const settingsOf = (r: Roots) => [
  readFileSync(join(r.procSys, 'kernel/numa_balancing'), 'utf8').trim(),
  readFileSync(join(r.sys, 'kernel/mm/numa/demotion_enabled'), 'utf8').trim(),
  readFileSync(join(r.procSys, 'kernel/numa_balancing_promote_rate_limit_MBps'), 'utf8').trim(),
];

/** A workload that logs the settings it runs under and bumps the fake counters like the kernel would. */
function workloadScript(r: Roots, log: string): string[] {
  const script = `
set -e
echo "$VTIER_COMPARE_SYSTEM $(cat ${r.procSys}/kernel/numa_balancing) $(cat ${r.sys}/kernel/mm/numa/demotion_enabled) $(cat ${r.procSys}/kernel/numa_balancing_promote_rate_limit_MBps)" >> ${log}
if [ "$VTIER_COMPARE_SYSTEM" = autonuma ]; then add=1000; else add=0; fi
awk -v add=$add '{ if ($1 ~ /^(pgpromote_success|numa_hint_faults)$/) $2 += add; if ($1 == "pgdemote_kswapd") $2 += add / 2; print }' ${r.proc}/vmstat > ${r.proc}/vmstat.new
mv ${r.proc}/vmstat.new ${r.proc}/vmstat
`;
  return ['sh', '-c', script];
}

describe('eval compare on this machine', () => {
  it('refuses on one NUMA node, pointing to vtier sim, and writes nothing', () => {
    const topology = readNumaTopology();
    const check = checkTieredMachine(REAL_ROOTS);
    if (topology.nodes.length >= 2 && topology.nodes.some((n) => n.cpuless)) {
      console.warn('eval-compare: this machine has a CPU-less node; the refusal path is covered by the fake-tree test');
      return;
    }
    expect(check.ok).toBe(false);
    expect(check.reason).toMatch(/needs >= 2 NUMA nodes with one CPU-less memory node/);
    const results = join(base, 'real-results');
    const res = spawnSync(process.execPath, ['bin/vtier.js', 'eval', 'compare', '--results-dir', results, '--', 'true'], { encoding: 'utf8', cwd: repoRoot() });
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/^vtier: error: eval compare needs >= 2 NUMA nodes.*this machine has \d+ node\(s\): node0 \(with CPUs\).*vtier sim --workload hotspot --size 10G --dram 2G --policy vtier,autonuma,static\n$/);
    const json = spawnSync(process.execPath, ['bin/vtier.js', 'eval', 'compare', '--json', '--', 'true'], { encoding: 'utf8', cwd: repoRoot() });
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { kind: 'single-node' } });
    expect(existsSync(results)).toBe(false);
    const bad = spawnSync(process.execPath, ['bin/vtier.js', 'eval', 'compare', '--systems', 'vtier,numa', '--json', '--', 'true'], { encoding: 'utf8', cwd: repoRoot() });
    expect(bad.status).toBe(2);
    expect(JSON.parse(bad.stdout).error.message).toMatch(/unknown system "numa"/);
  });
});

describe('eval compare on a fake two-node tree', () => {
  it('detects the CPU-less node and the tiering knobs', () => {
    const r = fakeTree('detect');
    expect(checkTieredMachine(r)).toEqual({ ok: true, reason: '', dramNodes: [0], cxlNodes: [1] });
    rmSync(join(r.sys, 'kernel/mm/numa/demotion_enabled'));
    expect(checkTieredMachine(r).reason).toMatch(/lacks memory-tiering controls/);
  });

  it('computes vmstat deltas and migrated bytes from the files', () => {
    const r = fakeTree('vmstat');
    const before = readVmstat(r);
    expect(before.has('nr_free_pages')).toBe(false);
    writeFileSync(join(r.proc, 'vmstat'), 'pgpromote_success 140\npgdemote_kswapd 60\npgdemote_direct 5\nnuma_hint_faults 900\npgmigrate_success 155\npgpromote_candidate 7\n');
    const delta = vmstatDelta(before, readVmstat(r));
    // A counter that went down (reset) reads as 0; one missing before is left out.
    expect(delta).toEqual({ numa_hint_faults: 0, pgdemote_direct: 5, pgdemote_kswapd: 10, pgmigrate_success: 5, pgpromote_success: 40 });
    expect(migrationBytes(delta)).toEqual({ promotedBytes: 40 * 4096, demotedBytes: 15 * 4096 });
  });

  it('sets each system\'s knobs through the journal, restores them, and records vmstat deltas', async () => {
    const r = fakeTree('run');
    const log = join(base, 'run', 'settings.log');
    const agentLog = join(base, 'run', 'agent.log');
    const results = ResultsWriter.create({ campaign: 'compare', dir: join(base, 'run', 'results'), machine: MACHINE });
    const summary = await runCompare({
      systems: ['vtier', 'autonuma', 'static'],
      workloadArgv: workloadScript(r, log),
      workloadName: 'fake',
      runs: 2,
      roots: r,
      journalDir: r.journalDir,
      promoteRateLimitMBps: 1024,
      vtierAgentArgv: ['/bin/sh', '-c', `echo {pid} >> ${agentLog}; exec sleep 30`],
      warmupMs: 50,
      results,
      handleSignals: false,
    });
    results.finish(summary);
    const lines = readFileSync(log, 'utf8').trim().split('\n').sort();
    expect(lines).toEqual(['autonuma 2 true 1024', 'autonuma 2 true 1024', 'static 0 false 65536', 'static 0 false 65536', 'vtier 0 false 65536', 'vtier 0 false 65536']);
    // Everything back as it was, and the journal gone.
    expect(settingsOf(r)).toEqual(['0', 'false', '65536']);
    expect(readdirSync(r.journalDir)).toEqual([]);
    expect(summary.restore?.cleared).toBe(true);
    // The vtier agent was started with a workload pid for each vtier run.
    expect(readFileSync(agentLog, 'utf8').trim().split('\n')).toHaveLength(2);
    const obs = loadResults(results.dir).observations;
    const value = (system: string, metric: string, run: number) => obs.find((o) => o.system === system && o.metric === metric && o.run === run)?.value;
    expect(value('autonuma', 'vmstat:pgpromote_success', 1)).toBe(1000);
    expect(value('autonuma', 'promoted_bytes', 2)).toBe(1000 * 4096);
    expect(value('autonuma', 'demoted_bytes', 2)).toBe(500 * 4096);
    expect(value('static', 'vmstat:numa_hint_faults', 1)).toBe(0);
    expect(value('vtier', 'promoted_bytes', 1)).toBe(0);
    expect(value('autonuma', 'slowdown', 1)).toBeGreaterThan(0);
    expect(obs.filter((o) => o.metric === 'wall_time')).toHaveLength(6);
  });

  it('uses a prepared workload\'s throughput for the slowdown', async () => {
    const r = fakeTree('throughput');
    const results = ResultsWriter.create({ campaign: 'compare', dir: join(base, 'throughput', 'results'), machine: MACHINE });
    const argv = ['sh', '-c', 'if [ "$VTIER_COMPARE_SYSTEM" = autonuma ]; then echo "rate 200"; else echo "rate 100"; fi'];
    let stopped = false;
    await runCompare({
      systems: ['autonuma', 'static'], runs: 1, roots: r, journalDir: r.journalDir, promoteRateLimitMBps: 10, warmupMs: 10, results, handleSignals: false,
      workloadName: 'rated',
      workload: {
        name: 'rated', tools: {}, settings: {},
        run: () => ({ argv, parse: (stdout) => ({ value: Number(/rate (\d+)/.exec(stdout)?.[1]), unit: 'ops/s' }) }),
        async stop() { stopped = true; },
      },
    });
    const obs = loadResults(results.dir).observations;
    expect(obs.filter((o) => o.metric === 'throughput').map((o) => [o.system, o.value])).toEqual([['autonuma', 200], ['static', 100]]);
    // autonuma served twice the operations of static: half the time per operation.
    expect(obs.find((o) => o.metric === 'slowdown')).toMatchObject({ system: 'autonuma', value: 0.5 });
    expect(stopped).toBe(false); // the caller owns the workload's lifetime
  });

  it('restores the settings when the workload fails', async () => {
    const r = fakeTree('fail');
    const results = ResultsWriter.create({ campaign: 'compare', dir: join(base, 'fail', 'results'), machine: MACHINE });
    await expect(
      runCompare({
        systems: ['autonuma'], workloadArgv: ['sh', '-c', 'echo boom >&2; exit 3'], workloadName: 'fail', runs: 1, roots: r,
        journalDir: r.journalDir, promoteRateLimitMBps: 10, warmupMs: 10, results, handleSignals: false,
      }),
    ).rejects.toThrow(/workload exited with code 3 under autonuma: boom/);
    expect(settingsOf(r)).toEqual(['0', 'false', '65536']);
  });

  it('restores the settings of a crashed run on the next start', async () => {
    const r = fakeTree('crash');
    const dist = join(repoRoot(), 'dist', 'eval');
    const child = join(base, 'crash', 'child.mjs');
    // The workload SIGKILLs the campaign process while AutoNUMA settings are applied.
    writeFileSync(
      child,
      `import { runCompare } from ${JSON.stringify(join(dist, 'compare.js'))};
import { ResultsWriter } from ${JSON.stringify(join(dist, 'results.js'))};
const roots = ${JSON.stringify(r)};
const results = ResultsWriter.create({ campaign: 'compare', dir: ${JSON.stringify(join(base, 'crash', 'results'))}, machine: {} });
await runCompare({ systems: ['autonuma'], workloadArgv: ['sh', '-c', 'kill -9 $PPID; sleep 5'], workloadName: 'crash', runs: 1, roots,
  journalDir: roots.journalDir, promoteRateLimitMBps: 77, warmupMs: 10, results });
`,
    );
    const res = spawnSync(process.execPath, [child], { encoding: 'utf8', timeout: 60_000 });
    expect(res.signal).toBe('SIGKILL');
    expect(settingsOf(r)).toEqual(['2', 'true', '77']);
    expect(readdirSync(r.journalDir)).toHaveLength(1);
    expect(existsSync(join(base, 'crash', 'results', 'DONE'))).toBe(false);
    // The next compare start restores what the dead one left, before doing anything else.
    const results = ResultsWriter.create({ campaign: 'compare', dir: join(base, 'crash', 'results2'), machine: MACHINE });
    const summary = await runCompare({
      systems: ['static'], workloadArgv: ['true'], workloadName: 'ok', runs: 1, roots: r, journalDir: r.journalDir,
      promoteRateLimitMBps: 10, warmupMs: 10, results, handleSignals: false,
    });
    expect(summary.recovered.join('\n')).toMatch(/restored kernel state left by pid \d+.*numa_balancing=0/);
    expect(settingsOf(r)).toEqual(['0', 'false', '65536']);
    expect(readdirSync(r.journalDir)).toEqual([]);
    expect(recoverCompareLeftovers(r.journalDir)).toEqual([]);
    void execFileSync;
  });
});
