// perf_event_attr for each sample source, built from what the kernel publishes in
// /sys/bus/event_source/devices (PMU type ids, event encodings, format bit fields),
// the way perf(1) does, so the same code runs on any Intel/AMD generation.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCpuList } from './sources/common.js';

export const PERF_TYPE_SOFTWARE = 1;
export const PERF_COUNT_SW_PAGE_FAULTS = 2;

export const PERF_SAMPLE_IP = 1 << 0;
export const PERF_SAMPLE_TID = 1 << 1;
export const PERF_SAMPLE_TIME = 1 << 2;
export const PERF_SAMPLE_ADDR = 1 << 3;
export const PERF_SAMPLE_WEIGHT = 1 << 14;
export const PERF_SAMPLE_DATA_SRC = 1 << 15;
export const PERF_SAMPLE_PHYS_ADDR = 1 << 19;

/** A counting (non-sampling) event that leads the sampling event's group on each CPU. */
export interface PerfGroupLeaderAttr {
  type: number;
  config: bigint;
  config1: bigint;
  config2: bigint;
  excludeKernel: boolean;
  excludeHv: boolean;
  /** e.g. "cpu/mem-loads-aux/". */
  describe: string;
}

/** The fields of struct perf_event_attr the sampler sets (others are zero). */
export interface PerfEventAttr {
  /** The perf PMU the event belongs to: cpu, cpu_core, cpu_atom, ibs_op, software. */
  pmu: string;
  type: number;
  /** 64-bit config values as bigint (event encodings use high bits on some PMUs). */
  config: bigint;
  config1: bigint;
  config2: bigint;
  sampleType: number;
  /** Sample every Nth event (freq off). */
  samplePeriod: number;
  /** 0..3, PEBS needs >= 1; 0 for software events. */
  preciseIp: number;
  excludeKernel: boolean;
  excludeHv: boolean;
  /** Opened first on each CPU, this event joins its group (Intel mem-loads-aux on Sapphire
   *  Rapids and later, as `perf mem record` does). */
  leader?: PerfGroupLeaderAttr;
  /** The CPUs this PMU covers (hybrid parts: its sysfs cpus file); absent = every CPU. */
  cpus?: number[];
  /** Human-readable description, e.g. "cpu/mem-loads,ldlat=30/P period 4093". */
  describe: string;
}

export type PmuKind = 'intel' | 'amd-ibs' | 'none';
export interface PmuInfo {
  kind: PmuKind;
  detail: string;
}

/** A source cannot run on this machine (no PMU, missing event). */
export class SourceUnavailableError extends Error {
  readonly code = 'source-unavailable';
  constructor(message: string) {
    super(message);
    this.name = 'SourceUnavailableError';
  }
}

function devicesDir(sysRoot: string): string {
  return join(sysRoot, 'bus', 'event_source', 'devices');
}

function readTrim(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Intel PMUs with PEBS load-latency sampling: `cpu`, or on hybrid parts `cpu_core` (big
 *  cores) and `cpu_atom` (small cores), each with its own events and CPUs. */
function intelPmuNames(sysRoot: string): string[] {
  return ['cpu', 'cpu_core', 'cpu_atom'].filter((name) => existsSync(join(devicesDir(sysRoot), name, 'events', 'mem-loads')));
}

/** Which hardware sampling PMU this machine exposes. */
export function detectPmu(sysRoot = '/sys'): PmuInfo {
  const dir = devicesDir(sysRoot);
  let devices: string[];
  try {
    devices = readdirSync(dir).sort();
  } catch {
    return { kind: 'none', detail: `${dir} is not readable (no perf events in this kernel?)` };
  }
  if (devices.includes('ibs_op')) {
    const type = readTrim(join(dir, 'ibs_op', 'type'));
    return { kind: 'amd-ibs', detail: `AMD IBS op sampling (ibs_op PMU type ${type ?? '?'})` };
  }
  const intel = intelPmuNames(sysRoot);
  if (intel.length) {
    const parts = intel.map((name) => {
      const type = readTrim(join(dir, name, 'type'));
      const aux = existsSync(join(dir, name, 'events', 'mem-loads-aux'));
      return `'${name}' PMU (type ${type ?? '?'}${aux ? ', in a group led by mem-loads-aux as perf mem does' : ''})`;
    });
    return { kind: 'intel', detail: `Intel PEBS mem-loads on the ${parts.join(' and the ')}` };
  }
  const why = devices.includes('cpu')
    ? "the 'cpu' PMU has no mem-loads event (no PEBS load-latency sampling)"
    : "the 'cpu' perf PMU is absent";
  return { kind: 'none', detail: `no hardware PMU: ${why}; perf PMUs present: ${devices.join(', ') || 'none'}` };
}

const CONFIG_WORDS = ['config', 'config1', 'config2'] as const;
type ConfigWord = (typeof CONFIG_WORDS)[number];
const MAX_TERM_VALUE = (1n << 64n) - 1n;

function unavailable(message: string): never {
  throw new SourceUnavailableError(message);
}

/** A format file ("config:0-7", "config1:0-15", "config:0-7,32-35") as the config word and
 *  its bit ranges, low bits of the value first. */
export function parseFormat(text: string): { word: ConfigWord; ranges: [number, number][] } {
  const m = /^(config[12]?):(\d{1,2}(?:-\d{1,2})?(?:,\d{1,2}(?:-\d{1,2})?)*)$/.exec(text.trim());
  if (!m) unavailable(`perf format "${text.trim().slice(0, 80)}" is not understood`);
  const ranges = m[2].split(',').map((range): [number, number] => {
    const [lo, hi = lo] = range.split('-').map(Number);
    if (lo > hi || hi > 63) unavailable(`perf format "${text.trim()}" has a bad bit range`);
    return [lo, hi];
  });
  return { word: m[1] as ConfigWord, ranges };
}

/**
 * Encodes an event spec ("event=0xcd,umask=0x1,ldlat=3") with the PMU's format files
 * ("config:0-7", "config1:0-15") into config words, as perf(1) does: a term without a
 * value means 1, `config`/`config1`/`config2` terms set a word directly, a value wider than
 * its format is refused. Anything malformed throws SourceUnavailableError.
 */
export function encodeEvent(spec: string, formats: Record<string, string>): { config: bigint; config1: bigint; config2: bigint } {
  const words: Record<ConfigWord, bigint> = { config: 0n, config1: 0n, config2: 0n };
  for (const term of spec.split(',').map((t) => t.trim()).filter(Boolean)) {
    const eq = term.indexOf('=');
    const name = (eq < 0 ? term : term.slice(0, eq)).trim();
    const rawValue = eq < 0 ? '1' : term.slice(eq + 1).trim();
    if (!/^(0x[0-9a-f]{1,16}|[0-9]{1,20})$/i.test(rawValue)) unavailable(`perf event term "${term.slice(0, 80)}" has no numeric value`);
    const value = BigInt(rawValue);
    if (value > MAX_TERM_VALUE) unavailable(`perf event term "${term}" does not fit in 64 bits`);
    if ((CONFIG_WORDS as readonly string[]).includes(name) && !Object.hasOwn(formats, name)) {
      words[name as ConfigWord] |= value;
      continue;
    }
    if (!Object.hasOwn(formats, name)) unavailable(`perf event term "${name.slice(0, 40)}" has no format on this PMU`);
    const { word, ranges } = parseFormat(formats[name]);
    // A format may scatter the value over several bit ranges ("config:0-7,32-35").
    let remaining = value;
    for (const [lo, hi] of ranges) {
      const width = BigInt(hi - lo + 1);
      words[word] |= (remaining & ((1n << width) - 1n)) << BigInt(lo);
      remaining >>= width;
    }
    if (remaining) unavailable(`perf event term "${term}" is wider than its format "${formats[name]}"`);
  }
  return { config: words.config, config1: words.config1, config2: words.config2 };
}

function readFormats(pmuDir: string): Record<string, string> {
  const formats: Record<string, string> = {};
  try {
    for (const name of readdirSync(join(pmuDir, 'format'))) {
      const text = readTrim(join(pmuDir, 'format', name));
      if (text) formats[name] = text;
    }
  } catch {
    /* no formats: encodeEvent reports the missing term */
  }
  return formats;
}

function pmuType(pmuDir: string, name: string): number {
  const text = readTrim(join(pmuDir, 'type'));
  const type = Number(text);
  if (!text || !Number.isSafeInteger(type) || type < 0 || type > 0xffffffff) unavailable(`the '${name}' perf PMU has no usable type (${text ?? 'missing'})`);
  return type;
}

export interface PerfAttrOptions {
  /** Sample every Nth event. Defaults: pebs 4093 (Demeter), ibs 65536 ops, faults 1. */
  samplePeriod?: number;
  /** PEBS load-latency threshold in cycles (default 30: beyond L1/L2 hits). */
  ldlat?: number;
  /** Sample kernel-mode accesses too (default false: user pages are what tiers move). */
  includeKernel?: boolean;
  sysRoot?: string;
}

const DEFAULT_PERIOD = { pebs: 4093, ibs: 65536, faults: 1 } as const;

function checkedPeriod(value: number | undefined, fallback: number): number {
  const period = value ?? fallback;
  if (!(Number.isSafeInteger(period) && period >= 1 && period <= 2 ** 32)) {
    throw new TypeError(`samplePeriod: ${value} is not an integer between 1 and 2^32`);
  }
  return period;
}

const PEBS_SAMPLE_TYPE = PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR | PERF_SAMPLE_PHYS_ADDR | PERF_SAMPLE_WEIGHT | PERF_SAMPLE_DATA_SRC;

/** PEBS mem-loads on one Intel PMU; with mem-loads-aux, the counting leader of its group. */
function pebsAttr(sysRoot: string, pmu: string, period: number, ldlat: number, excludeKernel: boolean): PerfEventAttr {
  const pmuDir = join(devicesDir(sysRoot), pmu);
  const type = pmuType(pmuDir, pmu);
  const formats = readFormats(pmuDir);
  // sysfs gives e.g. "event=0xcd,umask=0x1,ldlat=3": replace the default threshold.
  const spec = (readTrim(join(pmuDir, 'events', 'mem-loads')) ?? '')
    .split(',')
    .filter((t) => !t.trim().startsWith('ldlat='))
    .concat(`ldlat=${ldlat}`)
    .join(',');
  const words = encodeEvent(spec, formats);
  // Sapphire Rapids and later: the load-latency event only works while mem-loads-aux counts
  // in front of it in its group (the kernel refuses it alone with ENODATA).
  const auxSpec = readTrim(join(pmuDir, 'events', 'mem-loads-aux'));
  const leader: PerfGroupLeaderAttr | undefined = auxSpec
    ? { type, ...encodeEvent(auxSpec, formats), excludeKernel, excludeHv: true, describe: `${pmu}/mem-loads-aux/` }
    : undefined;
  const cpusText = readTrim(join(pmuDir, 'cpus'));
  const member = `${pmu}/mem-loads,ldlat=${ldlat}/P`;
  return {
    pmu,
    type,
    ...words,
    sampleType: PEBS_SAMPLE_TYPE,
    samplePeriod: period,
    preciseIp: 2,
    excludeKernel,
    excludeHv: true,
    ...(leader ? { leader } : {}),
    ...(cpusText !== undefined ? { cpus: parseCpuList(cpusText) } : {}),
    describe: `${leader ? `{${leader.describe},${member}}` : member} period ${period}`,
  };
}

/** Builds the perf_event_attrs for a source, one per PMU that serves it (hybrid Intel parts:
 *  cpu_core and cpu_atom), or throws SourceUnavailableError saying why not. */
export function perfEventsFor(source: 'pebs' | 'ibs' | 'faults', opts: PerfAttrOptions = {}): PerfEventAttr[] {
  const sysRoot = opts.sysRoot ?? '/sys';
  const period = checkedPeriod(opts.samplePeriod, DEFAULT_PERIOD[source]);
  const excludeKernel = !opts.includeKernel;
  if (source === 'faults') {
    return [
      {
        pmu: 'software',
        type: PERF_TYPE_SOFTWARE,
        config: BigInt(PERF_COUNT_SW_PAGE_FAULTS),
        config1: 0n,
        config2: 0n,
        sampleType: PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR,
        samplePeriod: period,
        preciseIp: 0,
        excludeKernel,
        excludeHv: true,
        describe: `software/page-faults/ period ${period}`,
      },
    ];
  }
  const dir = devicesDir(sysRoot);
  if (source === 'pebs') {
    const pmus = intelPmuNames(sysRoot);
    if (!pmus.length) {
      const hasCpu = existsSync(join(dir, 'cpu'));
      throw new SourceUnavailableError(
        hasCpu
          ? "no PEBS: the 'cpu' perf PMU has no mem-loads event (not an Intel PMU with load-latency sampling); use --source damon or faults"
          : "no hardware PMU: the 'cpu' perf PMU is absent (VMs need PEBS virtualization); use --source damon or faults",
      );
    }
    const ldlat = opts.ldlat ?? 30;
    if (!(Number.isSafeInteger(ldlat) && ldlat >= 1 && ldlat <= 65535)) throw new TypeError(`ldlat: ${opts.ldlat} is not 1..65535`);
    return pmus.map((pmu) => pebsAttr(sysRoot, pmu, period, ldlat, excludeKernel));
  }
  // AMD IBS op sampling: the PMU type is dynamic; the period counts ops when cnt_ctl=1.
  const ibsDir = join(dir, 'ibs_op');
  if (!existsSync(ibsDir)) {
    throw new SourceUnavailableError(
      "no hardware PMU: the 'ibs_op' perf PMU is absent (VMs need IBS virtualization); use --source damon or faults",
    );
  }
  const type = pmuType(ibsDir, 'ibs_op');
  const formats = readFormats(ibsDir);
  // Kernels with IBS software filtering (format swfilt) honour exclude_kernel; older ones
  // refuse any exclude_* bit, so those sample all modes.
  const terms = [...(formats.cnt_ctl ? ['cnt_ctl=1'] : []), ...(formats.swfilt && excludeKernel ? ['swfilt=1'] : [])];
  const words = encodeEvent(terms.join(','), formats);
  return [
    {
      pmu: 'ibs_op',
      type,
      ...words,
      sampleType: PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR | PERF_SAMPLE_PHYS_ADDR | PERF_SAMPLE_DATA_SRC,
      samplePeriod: period,
      preciseIp: 0,
      excludeKernel: terms.includes('swfilt=1'),
      excludeHv: false,
      describe: `ibs_op/${terms.join(',')}/ period ${period}`,
    },
  ];
}

/** The first (on hybrid parts: the big-core) event of perfEventsFor. */
export function perfAttrFor(source: 'pebs' | 'ibs' | 'faults', opts: PerfAttrOptions = {}): PerfEventAttr {
  return perfEventsFor(source, opts)[0];
}
