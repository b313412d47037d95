// The mission's shape, for real: a one-node lab VM runs the workload, DAMON in our own kdamond
// and the guest agent; its decisions go over virtio-serial to `vtier host run` on this host,
// which translates each GPA run through QEMU's RAM mapping (QMP + /proc/PID/maps) and queries
// or moves the backing pages with move_pages on QEMU's pid. (This host has one NUMA node, so
// the host reports "no target node" instead of moving: said, not pretended.)
//
// Floors below come from measured runs (docs/RESULTS.md): recall 1.00, precision 0.85 of the
// classified hot set inside the workload's frames, 60-65 decisions in 40 s, all answered.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHECKOUT, labMemFiles, labTestFile, processesMentioning, runCli } from './helpers/lab.js';

const { skip, resultsDir } = labTestFile('lab-mission');

const VM_RAM_BYTES = 1 << 30;
// Measured in four runs with PTI on under TCG (lab/qemu-args.ts says why): steady recall 1.00
// in every scored epoch, steady precision 0.82-0.91. Without PTI the set emptied for seconds
// (steady recall 0.11-0.49): the worst-epoch floor is what catches that.
const MISSION_BEST_RECALL_FLOOR = 0.9;
const MISSION_RECALL_FLOOR = 0.9;
const MISSION_WORST_RECALL_FLOOR = 0.5;
const MISSION_PRECISION_FLOOR = 0.7;


describe.skipIf(skip)('mission in a lab VM: guest agent inside -> virtio-serial -> vtier host run (QEMU target)', () => {
  it('connects, every decision gets a report, every page is inside the VM RAM mapping, the hot set matches the truth in GPA space', async () => {
    const out = resultsDir('mission');
    const guest = `node ${CHECKOUT}/dist/lab/mission-guest.js --connect serial:/dev/virtio-ports/vtier --size 256M --duration 40s --out $VTIER_RESULTS/mission.json`;
    const r = await runCli(['lab', 'run', '--nodes', '1', '--mem', '1G', '--host-agent', '--host-dram-budget', '128M', '--timeout', '4m', '--out', out, '--json', '--', 'sh', '-c', guest], 300_000);
    const output = readFileSync(join(out, 'output.log'), 'utf8');
    expect(r.status, `${r.stdout.slice(0, 2000)}\n${r.stderr}\n${output}`).toBe(0);
    const lab = JSON.parse(r.stdout);
    const mission = JSON.parse(readFileSync(join(out, 'mission.json'), 'utf8'));

    // The guest side: DAMON in its own kdamond, connected, every decision answered.
    expect(mission.source.source).toBe('damon');
    expect(mission.source.damonMode).toBe('own');
    const g = mission.status;
    expect(g.connects).toBeGreaterThanOrEqual(1);
    expect(g.hostVmName).toBe('lab');
    expect(g.decisionsSent).toBeGreaterThan(5);
    expect(g.reports).toBe(g.decisionsSent);
    expect(g.decisionsLost).toBe(0);
    expect(g.hostErrors, `host error: ${g.lastHostError}`).toBe(0);

    // The host side, from its own final status: the same decisions, the QEMU target, every
    // run inside the VM's RAM (no outside-ram refusal, no RAM the guest declared that QEMU
    // lacks), and move_pages on QEMU's pid failing only for pages QEMU never backed.
    const vm = lab.hostAgent.vms.find((v: { name: string }) => v.name === 'lab');
    expect(vm.target).toBe('qemu');
    expect(vm.decisions).toBe(g.decisionsSent);
    expect(vm.protocolErrors).toBe(0);
    expect(vm.ramMismatchPages).toBe(0);
    expect(vm.failures['outside-ram']).toBe(0);
    // ENOENT: guest pages QEMU never backed (untouched guest RAM, no prealloc); nothing else.
    expect(vm.failures.other).toBe(0);
    expect(vm.failures.EACCES).toBe(0);
    expect(vm.queryCalls + vm.moveCalls).toBeGreaterThan(0);
    expect(vm.totalPages * 4096).toBeLessThanOrEqual(VM_RAM_BYTES);
    expect(vm.totalPages * 4096).toBeGreaterThan(VM_RAM_BYTES * 0.99);
    expect(vm.dramPages + vm.cxlPages).toBeGreaterThan(0);
    expect(vm.dramPages + vm.cxlPages).toBeLessThanOrEqual(vm.totalPages);
    const log = readFileSync(join(out, 'host-agent.log'), 'utf8');
    expect(log).toMatch(/lab: attached \(pid \d+/);

    // The classified hot set against the workload's truth, in guest-physical frames.
    expect(mission.truthHotPages).toBeGreaterThan(6000);
    // Over the second half of the run (the classified set flickers from one epoch to the next,
    // so the last epoch alone is not the figure: see docs/RESULTS.md).
    expect(mission.steady.epochs).toBeGreaterThan(3);
    expect(mission.steady.bestRecall).toBeGreaterThanOrEqual(MISSION_BEST_RECALL_FLOOR);
    expect(mission.steady.recall).toBeGreaterThanOrEqual(MISSION_RECALL_FLOOR);
    expect(mission.steady.precision).toBeGreaterThanOrEqual(MISSION_PRECISION_FLOOR);
    // No epoch of the second half loses the hot set (series rows: [ms, pages, recall, precision, all]).
    const tail = (mission.series as number[][]).slice(Math.floor(mission.series.length / 2));
    expect(Math.min(...tail.map((row) => row[2]))).toBeGreaterThanOrEqual(MISSION_WORST_RECALL_FLOOR);
    console.log(
      `lab-mission: ${g.decisionsSent} decisions, ${g.reports} reports; steady precision ${mission.steady.precision.toFixed(3)}, recall ${mission.steady.recall.toFixed(3)} over ${mission.steady.epochs} epochs; ` +
        `at the end ${mission.score.precision.toFixed(3)} / ${mission.score.recall.toFixed(3)}; boot ${lab.bootMs} ms, wall ${lab.wallMs} ms`,
    );

    expect(processesMentioning(out)).toEqual([]);
    expect(labMemFiles().filter((f) => f.startsWith(`vtier-lab-${r.pid}-`))).toEqual([]);
  }, 320_000);
});
