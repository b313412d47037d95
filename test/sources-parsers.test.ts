// Parsers the sample sources depend on: /proc/iomem, /proc/PID/pagemap, perf sysfs
// encodings. Property tests for the decoders, real-kernel checks for the readers.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSystemRam, systemRamRanges, IomemError } from '../guest-agent/iomem.js';
import { decodePagemap, decodePagemapEntry, Pagemap, TargetGoneError } from '../guest-agent/pagemap.js';
import {
  detectPmu,
  encodeEvent,
  parseFormat,
  perfAttrFor,
  perfEventsFor,
  PERF_SAMPLE_ADDR,
  PERF_SAMPLE_DATA_SRC,
  PERF_SAMPLE_PHYS_ADDR,
  PERF_SAMPLE_WEIGHT,
  SourceUnavailableError,
} from '../guest-agent/perf-attr.js';
import { recommendSource } from '../guest-agent/sampler.js';
import { parseCpuList } from '../guest-agent/sources/common.js';
import { totalPages } from '../src/samples.js';

const hex = (n: number) => n.toString(16).padStart(8, '0');

describe('iomem', () => {
  it('keeps top-level System RAM only, in whole pages', () => {
    const text = [
      '00000000-00000fff : Reserved',
      '00001000-0009fbff : System RAM',
      '000a0000-000bffff : PCI Bus 0000:00',
      '00100000-bfffffff : System RAM',
      '  01000000-01ffffff : Kernel code',
      '  02000000-020fffff : System RAM',
      '100000000-63fffffff : System RAM',
      'fed00000-fed003ff : HPET 0',
    ].join('\n');
    const runs = systemRamRanges(text);
    expect(Array.from(runs.gpaPfn.subarray(0, runs.count))).toEqual([1, 0x100, 0x100000]);
    // 0x1000..0x9fbff: the partial last page is dropped.
    expect(Array.from(runs.pages.subarray(0, runs.count))).toEqual([0x9f - 1, 0xbffff - 0xff, 0x540000]);
  });

  it('reports zeroed (non-root) addresses', () => {
    expect(() => systemRamRanges('00000000-00000000 : System RAM\n')).toThrow(IomemError);
  });

  it('reads this machine: sorted, disjoint, non-empty', () => {
    const runs = readSystemRam();
    expect(runs.count).toBeGreaterThan(0);
    for (let i = 1; i < runs.count; i++) expect(runs.gpaPfn[i]).toBeGreaterThanOrEqual(runs.gpaPfn[i - 1] + runs.pages[i - 1]);
    expect(totalPages(runs)).toBeGreaterThan(1000);
  });

  it('property: any text never throws anything but IomemError; runs are page-aligned subsets', () => {
    const line = fc.oneof(
      fc.tuple(fc.nat({ max: 2 ** 40 }), fc.nat({ max: 2 ** 34 }), fc.boolean()).map(([start, len, nested]) =>
        `${nested ? '  ' : ''}${start.toString(16)}-${(start + len).toString(16)} : System RAM`,
      ),
      fc.string({ maxLength: 60 }),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 40 }), (lines) => {
        let runs;
        try {
          runs = systemRamRanges(lines.join('\n'));
        } catch (err) {
          expect(err).toBeInstanceOf(IomemError);
          return;
        }
        // Every page of every run lies inside some top-level System RAM line.
        const spans = lines
          .map((l) => /^([0-9a-f]+)-([0-9a-f]+) : System RAM$/.exec(l))
          .filter((m): m is RegExpExecArray => m !== null)
          .map((m) => [parseInt(m[1], 16), parseInt(m[2], 16) + 1]);
        for (let i = 0; i < runs.count; i++) {
          expect(runs.pages[i]).toBeGreaterThan(0);
          const start = runs.gpaPfn[i] * 4096;
          const end = start + runs.pages[i] * 4096;
          // Merged runs may span several adjacent lines: check both ends are covered.
          expect(spans.some(([s, e]) => s <= start && start < e)).toBe(true);
          expect(spans.some(([s, e]) => s < end && end <= e)).toBe(true);
          if (i > 0) expect(runs.gpaPfn[i]).toBeGreaterThan(runs.gpaPfn[i - 1] + runs.pages[i - 1] - 1);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('pagemap', () => {
  it('decodes present / swapped / absent entries', () => {
    expect(decodePagemapEntry(0x1234, 0x8000_0000)).toEqual({ present: true, swapped: false, pfn: 0x1234 });
    expect(decodePagemapEntry(0x1234, 0x8000_0000 | 0x7f_ffff).pfn).toBe(0x7f_ffff * 2 ** 32 + 0x1234);
    expect(decodePagemapEntry(0x1234, 0x4000_0000).pfn).toBe(-1);
    expect(decodePagemapEntry(0, 0x8000_0000).pfn).toBe(-1); // present but hidden (non-root)
    expect(decodePagemapEntry(0x1234, 0).pfn).toBe(-1);
  });

  it('property: decodePagemap agrees with a BigInt reference on any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const out = decodePagemap(bytes);
        expect(out.length).toBe(Math.floor(bytes.length / 8));
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        for (let i = 0; i < out.length; i++) {
          const word = view.getBigUint64(i * 8, true);
          const present = (word >> 63n) & 1n;
          const swapped = (word >> 62n) & 1n;
          const pfn = word & ((1n << 55n) - 1n);
          const expected = present && !swapped && pfn !== 0n ? Number(pfn) : -1;
          expect(out[i]).toBe(expected);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('translates our own touched pages (root sees frames) in any order', () => {
    const pages = 64;
    const buffer = Buffer.alloc(pages * 4096 + 4096);
    buffer.fill(7);
    const pm = Pagemap.open('self');
    try {
      // The buffer's address is not visible from JS: translate the process's whole
      // range from /proc/self/maps heap-ish areas and require frames for many pages.
      const maps = require_maps();
      const vpages: number[] = [];
      for (const [start, end] of maps) for (let v = start; v < end && vpages.length < 20_000; v++) vpages.push(v);
      const shuffled = [...vpages].reverse();
      const a = pm.translate(vpages);
      const b = pm.translate(shuffled);
      // The process keeps running (GC, allocation) between the two passes: nearly all agree.
      let present = 0;
      let agree = 0;
      for (let i = 0; i < vpages.length; i++) {
        if (b[vpages.length - 1 - i] === a[i]) agree++;
        if (a[i] > 0) present++;
      }
      expect(agree / vpages.length).toBeGreaterThan(0.95);
      expect(present).toBeGreaterThan(pages);
    } finally {
      pm.close();
    }
  });

  it('a process that does not exist is a typed "target gone" error', () => {
    expect(() => Pagemap.open(2 ** 22 + 12345)).toThrow(TargetGoneError);
  });
});

function require_maps(): Array<[number, number]> {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => / rw.p 00000000 00:00 0 /.test(l))
    .map((l) => l.split(' ')[0].split('-').map((x) => Math.floor(parseInt(x, 16) / 4096)) as [number, number]);
}

describe('perf attrs', () => {
  function fakePmu(devices: Record<string, Record<string, string>>): string {
    const root = mkdtempSync(join(tmpdir(), 'vtier-pmu-'));
    for (const [device, files] of Object.entries(devices)) {
      for (const [file, text] of Object.entries(files)) {
        const path = join(root, 'bus', 'event_source', 'devices', device, file);
        mkdirSync(join(path, '..'), { recursive: true });
        writeFileSync(path, `${text}\n`);
      }
    }
    return root;
  }

  it('a machine without a hardware PMU (a VM without vPMU): pebs and ibs refuse with a clear message', () => {
    const sysRoot = fakePmu({ software: { type: '1' }, tracepoint: { type: '2' } });
    expect(detectPmu(sysRoot).kind).toBe('none');
    expect(() => perfAttrFor('pebs', { sysRoot })).toThrow(
      "no hardware PMU: the 'cpu' perf PMU is absent (VMs need PEBS virtualization); use --source damon or faults",
    );
    expect(() => perfAttrFor('ibs', { sysRoot })).toThrow(SourceUnavailableError);
    expect(() => perfAttrFor('ibs', { sysRoot })).toThrow(/ibs_op.*absent.*use --source damon or faults/);
  });

  it('this machine: the attr builders agree with the PMU detected, whatever it is', () => {
    const kind = detectPmu().kind;
    if (kind === 'amd-ibs') expect(perfAttrFor('ibs').type).toBe(Number(readFileSync('/sys/bus/event_source/devices/ibs_op/type', 'utf8')));
    else expect(() => perfAttrFor('ibs')).toThrow(SourceUnavailableError);
    if (kind !== 'intel') expect(() => perfAttrFor('pebs')).toThrow(SourceUnavailableError);
    else {
      // Sapphire Rapids and later included: mem-loads-aux leads the group there.
      const attr = perfAttrFor('pebs');
      expect(attr.preciseIp).toBeGreaterThan(0);
      expect(Boolean(attr.leader)).toBe(existsSync(`/sys/bus/event_source/devices/${attr.pmu}/events/mem-loads-aux`));
    }
  });

  it('faults uses the software page-faults event with the data address', () => {
    const attr = perfAttrFor('faults');
    expect(attr.type).toBe(1);
    expect(attr.config).toBe(2n);
    expect(attr.sampleType & (1 << 3)).toBeTruthy();
    expect(attr.samplePeriod).toBe(1);
    expect(() => perfAttrFor('faults', { samplePeriod: 0 })).toThrow(TypeError);
  });

  it('Intel: mem-loads with ldlat from sysfs formats, phys addr, precise', () => {
    const root = fakePmu({
      cpu: {
        type: '4',
        'events/mem-loads': 'event=0xcd,umask=0x1,ldlat=3',
        'format/event': 'config:0-7',
        'format/umask': 'config:8-15',
        'format/ldlat': 'config1:0-15',
      },
    });
    expect(detectPmu(root).kind).toBe('intel');
    const attr = perfAttrFor('pebs', { sysRoot: root, ldlat: 64 });
    expect(attr.type).toBe(4);
    expect(attr.config).toBe(0x1cdn);
    expect(attr.config1).toBe(64n);
    expect(attr.sampleType & (1 << 19)).toBeTruthy();
    expect(attr.sampleType & (1 << 3)).toBeTruthy();
    expect(attr.preciseIp).toBeGreaterThan(0);
    expect(attr.samplePeriod).toBe(4093);
  });

  it('AMD: ibs_op type from sysfs, cnt_ctl', () => {
    const root = fakePmu({ ibs_op: { type: '11', 'format/cnt_ctl': 'config:19' }, cpu: { type: '4' } });
    expect(detectPmu(root)).toMatchObject({ kind: 'amd-ibs' });
    const attr = perfAttrFor('ibs', { sysRoot: root });
    expect(attr.type).toBe(11);
    expect(attr.config).toBe(1n << 19n);
    expect(() => perfAttrFor('pebs', { sysRoot: root })).toThrow(/no mem-loads event/);
  });

  it('encodes scattered format bit ranges like perf', () => {
    expect(encodeEvent('event=0x1cd', { event: 'config:0-7,32-35' }).config).toBe(0xcdn | (1n << 32n));
    expect(() => encodeEvent('bogus=1', {})).toThrow(SourceUnavailableError);
  });
});

// sysfs trees of real machines (test/fixtures/sysfs/README.md). Expected encodings come from
// the kernel's definitions: mem-loads = event 0xcd umask 0x1 (config 0x1cd) with ldlat in
// config1, mem-loads-aux = event 0x03 umask 0x82 (config 0x8203), Gracemont's mem-loads =
// event 0xd0 umask 0x5, IBS op cnt_ctl = config bit 19, swfilt = config2 bit 0.
describe('perf attrs on real machines (sysfs fixtures)', () => {
  const fixture = (machine: string) => join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'sysfs', machine);
  const PEBS_SAMPLE = PERF_SAMPLE_ADDR | PERF_SAMPLE_PHYS_ADDR | PERF_SAMPLE_WEIGHT | PERF_SAMPLE_DATA_SRC;
  const range = (lo: number, hi: number) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);

  for (const machine of ['sapphire-rapids', 'emerald-rapids']) {
    it(`${machine}: mem-loads joins a group led by a counting mem-loads-aux, as perf mem does`, () => {
      const sysRoot = fixture(machine);
      expect(detectPmu(sysRoot)).toMatchObject({ kind: 'intel', detail: expect.stringMatching(/mem-loads-aux/) });
      const events = perfEventsFor('pebs', { sysRoot, ldlat: 30 });
      expect(events).toHaveLength(1);
      const [attr] = events;
      expect(attr).toMatchObject({ pmu: 'cpu', type: 4, config: 0x1cdn, config1: 30n, config2: 0n, preciseIp: 2, samplePeriod: 4093, excludeKernel: true });
      expect(attr.sampleType & PEBS_SAMPLE).toBe(PEBS_SAMPLE);
      expect(attr.leader).toEqual({ type: 4, config: 0x8203n, config1: 0n, config2: 0n, excludeKernel: true, excludeHv: true, describe: 'cpu/mem-loads-aux/' });
      expect(attr.cpus).toBeUndefined(); // every CPU
      expect(attr.describe).toBe('{cpu/mem-loads-aux/,cpu/mem-loads,ldlat=30/P} period 4093');
      expect(recommendSource({ pmu: detectPmu(sysRoot) }).source).toBe('pebs');
    });
  }

  it('icelake-server: mem-loads alone (no aux event, no group)', () => {
    const attr = perfAttrFor('pebs', { sysRoot: fixture('icelake-server'), ldlat: 64, samplePeriod: 1000 });
    expect(attr).toMatchObject({ pmu: 'cpu', type: 4, config: 0x1cdn, config1: 64n, config2: 0n, samplePeriod: 1000 });
    expect(attr.leader).toBeUndefined();
    expect(attr.describe).toBe('cpu/mem-loads,ldlat=64/P period 1000');
  });

  it('alder-lake-hybrid: one event per PMU, each on its own CPUs; the big cores need the aux leader', () => {
    const sysRoot = fixture('alder-lake-hybrid');
    const [core, atom, ...rest] = perfEventsFor('pebs', { sysRoot });
    expect(rest).toEqual([]);
    expect(core).toMatchObject({ pmu: 'cpu_core', type: 4, config: 0x1cdn, config1: 30n, cpus: range(0, 15) });
    expect(core.leader).toMatchObject({ type: 4, config: 0x8203n });
    expect(atom).toMatchObject({ pmu: 'cpu_atom', type: 10, config: 0x5d0n, config1: 30n, cpus: range(16, 23) });
    expect(atom.leader).toBeUndefined();
    expect(perfAttrFor('pebs', { sysRoot }).pmu).toBe('cpu_core');
    expect(detectPmu(sysRoot).detail).toBe(
      "Intel PEBS mem-loads on the 'cpu_core' PMU (type 4, in a group led by mem-loads-aux as perf mem does) and the 'cpu_atom' PMU (type 10)",
    );
  });

  it('genoa: ibs_op with cnt_ctl, no software filter: samples every mode, no exclude bits', () => {
    const sysRoot = fixture('genoa');
    expect(detectPmu(sysRoot).kind).toBe('amd-ibs');
    const attr = perfAttrFor('ibs', { sysRoot });
    expect(attr).toMatchObject({ pmu: 'ibs_op', type: 11, config: 1n << 19n, config1: 0n, config2: 0n, excludeKernel: false, excludeHv: false, preciseIp: 0 });
    expect(attr.sampleType & PERF_SAMPLE_PHYS_ADDR).toBeTruthy();
    expect(() => perfAttrFor('pebs', { sysRoot })).toThrow(/no mem-loads event/);
    // the AMD core PMU scatters its event select over config:0-7,32-35
    const formats = { event: readFileSync(join(sysRoot, 'bus/event_source/devices/cpu/format/event'), 'utf8') };
    expect(encodeEvent('event=0x1d4', formats).config).toBe(0xd4n | (1n << 32n));
  });

  it('turin: ibs_op with swfilt excludes the kernel through config2, unless asked for it', () => {
    const sysRoot = fixture('turin');
    expect(perfAttrFor('ibs', { sysRoot })).toMatchObject({ type: 11, config: 1n << 19n, config2: 1n, excludeKernel: true, excludeHv: false });
    expect(perfAttrFor('ibs', { sysRoot, includeKernel: true })).toMatchObject({ config: 1n << 19n, config2: 0n, excludeKernel: false });
  });

  it('the fixtures hold what sysfs shows (newline-terminated files, online lists)', () => {
    for (const m of ['sapphire-rapids', 'emerald-rapids', 'icelake-server', 'alder-lake-hybrid', 'genoa', 'turin']) {
      const online = readFileSync(join(fixture(m), 'devices/system/cpu/online'), 'utf8');
      expect(online.endsWith('\n')).toBe(true);
      expect(parseCpuList(online).length).toBeGreaterThan(16);
    }
  });
});

describe('perf format and cpu list parsers (hostile input)', () => {
  const term = fc.stringMatching(/^[a-z_0-9=,x-]{0,24}$/);
  it('encodeEvent: any spec and formats give 64-bit words or SourceUnavailableError, nothing else', () => {
    fc.assert(
      fc.property(term, fc.dictionary(fc.constantFrom('event', 'umask', 'ldlat', 'config', 'x'), fc.string({ maxLength: 20 })), (spec, formats) => {
        try {
          const w = encodeEvent(spec, formats);
          for (const v of [w.config, w.config1, w.config2]) expect(v >= 0n && v < 1n << 64n).toBe(true);
        } catch (err) {
          expect(err).toBeInstanceOf(SourceUnavailableError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('encodeEvent places each field where its format says and refuses values wider than it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 55 }), fc.integer({ min: 1, max: 8 }), fc.bigInt({ min: 0n, max: 255n }), (lo, width, value) => {
        const formats = { f: `config1:${lo}-${lo + width - 1}` };
        const spec = `f=0x${value.toString(16)}`;
        if (value >= 1n << BigInt(width)) expect(() => encodeEvent(spec, formats)).toThrow(/wider than its format/);
        else expect(encodeEvent(spec, formats)).toEqual({ config: 0n, config1: value << BigInt(lo), config2: 0n });
      }),
    );
    expect(() => parseFormat('config:7-3')).toThrow(SourceUnavailableError);
    expect(() => parseFormat('config3:0-7')).toThrow(SourceUnavailableError);
    expect(encodeEvent('edge', { edge: 'config:18' }).config).toBe(1n << 18n); // a bare flag means 1
  });

  it('parseCpuList: ranges round-trip, garbage is skipped, ids stay in 0..65535', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 4095 }), { maxLength: 64 }), (cpus) => {
        const sorted = [...cpus].sort((a, b) => a - b);
        const parts: string[] = [];
        for (let i = 0; i < sorted.length; ) {
          let j = i;
          while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
          parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
          i = j + 1;
        }
        expect(parseCpuList(`${parts.join(',')}\n`)).toEqual(sorted);
      }),
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (text) => {
        const cpus = parseCpuList(text);
        for (let i = 0; i < cpus.length; i++) {
          expect(cpus[i]).toBeGreaterThanOrEqual(0);
          expect(cpus[i]).toBeLessThanOrEqual(65535);
          if (i) expect(cpus[i]).toBeGreaterThan(cpus[i - 1]);
        }
      }),
    );
    expect(parseCpuList('0-3,x,6,99999-100000,65535')).toEqual([0, 1, 2, 3, 6, 65535]);
  });
});
