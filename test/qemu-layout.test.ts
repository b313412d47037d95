// Layout discovery against a real (paused, TCG) QEMU: GPA -> HVA for every RAM range,
// checked byte by byte through QEMU's own view of guest memory (HMP `xp`).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { MPOL_MF_MOVE_ALL, movePages } from '../native/addon.js';
import { discoverLayout, type GuestLayout } from '../host-agent/layout.js';
import { QmpClient } from '../host-agent/qmp.js';
import { buildTable, findRange, PageBuffer, translateRuns } from '../host-agent/translate.js';
import { runsFrom } from '../src/samples.js';
import { qemuAvailable, startQemu, type QemuVm } from './helpers/qemu.js';

const missing = qemuAvailable();
if (missing && process.env.CI === 'true') throw new Error(`CI: ${missing}`);
if (missing) console.warn(`skipping QEMU tests: ${missing}`);

const GiB = 1024 ** 3;

describe.skipIf(Boolean(missing))('QEMU layout discovery (real QEMU, q35, 3 GiB file backend)', () => {
  let vm: QemuVm;
  let qmp: QmpClient;
  let layout: GuestLayout;

  beforeAll(async () => {
    vm = await startQemu({ ramMiB: 3072, name: 'layout' });
    qmp = await QmpClient.connect(vm.qmpPath, { timeoutMs: 60_000 });
    layout = await discoverLayout(qmp, vm.pid);
  }, 120_000);

  afterAll(async () => {
    qmp?.close();
    await vm?.stop();
  });

  it('finds RAM below 2 GiB and above 4 GiB, minus the ROM hole', () => {
    const ranges = layout.ranges.map((r) => [r.gpaStart, r.gpaEnd, r.backendOffset, r.memdev]);
    expect(ranges).toEqual([
      [0, 0xc0000, 0, 'mem0'],
      [0x100000, 2 * GiB, 0x100000, 'mem0'],
      [4 * GiB, 5 * GiB, 2 * GiB, 'mem0'],
    ]);
    expect(layout.totalBytes).toBe(3 * GiB - 0x40000);
    // One mapping of the backend: HVA offsets mirror backend offsets.
    const base = layout.ranges[0].hvaStart;
    for (const r of layout.ranges) expect(r.hvaStart - base).toBe(r.backendOffset);
  });

  it('translates GPAs in both ranges to the HVA QEMU really uses (write via /proc/PID/mem, read via xp)', async () => {
    const table = buildTable(layout.ranges);
    const gpas = [0x1000, 0x7fff_f000, 0x1_0000_0000, 0x1_2345_6000, 0x1_3fff_f000];
    const out = new PageBuffer();
    const r = translateRuns(table, runsFrom(gpas.map((g) => [g / 4096, 1])), 0, out);
    expect(r.rejected).toEqual([]);
    const fd = openSync(`/proc/${vm.pid}/mem`, 'r+');
    try {
      for (let i = 0; i < gpas.length; i++) {
        const pattern = Buffer.from([0xa5, i, 0x5a, 0xc3 ^ i]);
        const offsetInPage = 0x10 * (i + 1);
        writeSync(fd, pattern, 0, pattern.length, out.hva[i] + offsetInPage);
        const text = await qmp.hmp(`xp /4bx 0x${(gpas[i] + offsetInPage).toString(16)}`);
        const bytes = [...text.matchAll(/0x([0-9a-f]{2})\b/g)].map((m) => parseInt(m[1], 16));
        expect(bytes).toEqual([...pattern]);
      }
      // And the reverse: bytes placed in the backing file show up at the translated HVA.
      const fileFd = openSync(vm.memPath, 'r+');
      try {
        const gpa = 0x1_0abc_d000;
        const ri = findRange(table, gpa / 4096);
        const fileOffset = layout.ranges[ri].backendOffset + (gpa - layout.ranges[ri].gpaStart);
        writeSync(fileFd, Buffer.from('vtier!'), 0, 6, fileOffset);
        const back = Buffer.alloc(6);
        const out2 = new PageBuffer();
        translateRuns(table, runsFrom([[gpa / 4096, 1]]), 0, out2);
        readSync(fd, back, 0, 6, out2.hva[0]);
        expect(back.toString()).toBe('vtier!');
      } finally {
        closeSync(fileFd);
      }
    } finally {
      closeSync(fd);
    }
  });

  it('rejects GPAs in the ROM hole, the PCI hole and beyond RAM', () => {
    const table = buildTable(layout.ranges);
    const out = new PageBuffer();
    const r = translateRuns(table, runsFrom([[0xc0, 1], [0x80000, 1], [0x7ffff, 2], [0x140000, 1], [0xbf, 2]]), 0, out);
    expect(r.rejected.map((x) => x.reason)).toEqual(['outside-ram', 'outside-ram', 'outside-ram', 'outside-ram', 'outside-ram']);
    expect(out.count).toBe(0);
  });

  it('queries placement of QEMU pages and moves them to node 0 with move_pages', async () => {
    const table = buildTable(layout.ranges);
    const out = new PageBuffer();
    translateRuns(table, runsFrom([[0x100, 64], [0x100000, 64]]), 0, out);
    const hva = out.hva.slice(0, out.count);
    const q = await movePages(vm.pid, hva, null, 0);
    expect(q.result).toBe(0);
    expect([...q.status].every((s) => s === 0)).toBe(true); // preallocated, all on node 0
    const m = await movePages(vm.pid, hva, new Int32Array(hva.length), MPOL_MF_MOVE_ALL);
    expect(m.result).toBe(0);
    expect([...m.status].every((s) => s === 0)).toBe(true);
    // An address QEMU never mapped: the kernel says -EFAULT for that page only.
    const bad = await movePages(vm.pid, new Float64Array([hva[0], 4096]), null, 0);
    expect([...bad.status]).toEqual([0, -14]);
  });
});
