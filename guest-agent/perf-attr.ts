// perf_event_attr for each sample source, built from what the kernel publishes in
// /sys/bus/event_source/devices (PMU type ids, event encodings, format bit fields),
// the way perf(1) does, so the same code runs on any Intel/AMD generation.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const PERF_TYPE_SOFTWARE = 1;
export const PERF_COUNT_SW_PAGE_FAULTS = 2;

export const PERF_SAMPLE_IP = 1 << 0;
export const PERF_SAMPLE_TID = 1 << 1;
export const PERF_SAMPLE_TIME = 1 << 2;
export const PERF_SAMPLE_ADDR = 1 << 3;
export const PERF_SAMPLE_WEIGHT = 1 << 14;
export const PERF_SAMPLE_DATA_SRC = 1 << 15;
export const PERF_SAMPLE_PHYS_ADDR = 1 << 19;

/** The fields of struct perf_event_attr the sampler sets (others are zero). */
export interface PerfEventAttr {
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
  /** Human-readable description, e.g. "cpu/mem-loads,ldlat=30/ period 4093". */
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

/** Intel hybrid parts name the big-core PMU cpu_core; others name it cpu. */
function intelPmuName(sysRoot: string): string | undefined {
  for (const name of ['cpu', 'cpu_core']) {
    if (existsSync(join(devicesDir(sysRoot), name, 'events', 'mem-loads'))) return name;
  }
  return undefined;
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
  const intel = intelPmuName(sysRoot);
  if (intel) {
    const type = readTrim(join(dir, intel, 'type'));
    const aux = existsSync(join(dir, intel, 'events', 'mem-loads-aux'));
    return {
      kind: 'intel',
      detail: `Intel PEBS mem-loads on the '${intel}' PMU (type ${type ?? '?'})${aux ? '; needs the mem-loads-aux group leader (Sapphire Rapids and later)' : ''}`,
    };
  }
  const why = devices.includes('cpu')
    ? "the 'cpu' PMU has no mem-loads event (no PEBS load-latency sampling)"
    : "the 'cpu' perf PMU is absent";
  return { kind: 'none', detail: `no hardware PMU: ${why}; perf PMUs present: ${devices.join(', ') || 'none'}` };
}

/**
 * Encodes an event spec ("event=0xcd,umask=0x1,ldlat=3") with the PMU's format files
 * ("config:0-7", "config1:0-15") into config words, exactly as perf(1) does.
 */
export function encodeEvent(spec: string, formats: Record<string, string>): { config: bigint; config1: bigint; config2: bigint } {
  const words: Record<string, bigint> = { config: 0n, config1: 0n, config2: 0n };
  for (const term of spec.split(',').map((t) => t.trim()).filter(Boolean)) {
    const [name, rawValue = '1'] = term.split('=');
    const format = formats[name];
    if (!format) throw new SourceUnavailableError(`perf event term "${name}" has no format on this PMU`);
    const value = BigInt(rawValue.trim());
    const fm = /^(config[12]?):(.+)$/.exec(format.trim());
    if (!fm) throw new SourceUnavailableError(`perf format "${format}" for "${name}" is not understood`);
    // A format may scatter the value over several bit ranges ("config:0-7,32-35").
    let remaining = value;
    for (const range of fm[2].split(',')) {
      const [lo, hi = lo] = range.split('-').map((x) => BigInt(x.trim()));
      const width = hi - lo + 1n;
      const mask = (1n << width) - 1n;
      words[fm[1]] |= (remaining & mask) << lo;
      remaining >>= width;
    }
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

/** Builds the perf_event_attr for a source, or throws SourceUnavailableError saying why not. */
export function perfAttrFor(source: 'pebs' | 'ibs' | 'faults', opts: PerfAttrOptions = {}): PerfEventAttr {
  const sysRoot = opts.sysRoot ?? '/sys';
  const period = checkedPeriod(opts.samplePeriod, DEFAULT_PERIOD[source]);
  const excludeKernel = !opts.includeKernel;
  if (source === 'faults') {
    return {
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
    };
  }
  const dir = devicesDir(sysRoot);
  if (source === 'pebs') {
    const pmu = intelPmuName(sysRoot);
    if (!pmu) {
      const hasCpu = existsSync(join(dir, 'cpu'));
      throw new SourceUnavailableError(
        hasCpu
          ? "no PEBS: the 'cpu' perf PMU has no mem-loads event (not an Intel PMU with load-latency sampling); use --source damon or faults"
          : "no hardware PMU: the 'cpu' perf PMU is absent (VMs need PEBS virtualization); use --source damon or faults",
      );
    }
    if (existsSync(join(dir, pmu, 'events', 'mem-loads-aux'))) {
      throw new SourceUnavailableError(
        `PEBS mem-loads on this CPU needs the mem-loads-aux group leader, which vtier does not open yet; use --source damon or faults`,
      );
    }
    const ldlat = opts.ldlat ?? 30;
    if (!(Number.isSafeInteger(ldlat) && ldlat >= 1 && ldlat <= 65535)) throw new TypeError(`ldlat: ${opts.ldlat} is not 1..65535`);
    const type = Number(readTrim(join(dir, pmu, 'type')));
    // sysfs gives e.g. "event=0xcd,umask=0x1,ldlat=3": replace the default threshold.
    const spec = (readTrim(join(dir, pmu, 'events', 'mem-loads')) ?? 'event=0xcd,umask=0x1')
      .split(',')
      .filter((t) => !t.startsWith('ldlat='))
      .concat(`ldlat=${ldlat}`)
      .join(',');
    const words = encodeEvent(spec, readFormats(join(dir, pmu)));
    return {
      type,
      ...words,
      sampleType: PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR | PERF_SAMPLE_PHYS_ADDR | PERF_SAMPLE_WEIGHT | PERF_SAMPLE_DATA_SRC,
      samplePeriod: period,
      preciseIp: 2,
      excludeKernel,
      excludeHv: true,
      describe: `${pmu}/mem-loads,ldlat=${ldlat}/P period ${period}`,
    };
  }
  // AMD IBS op sampling: the PMU type is dynamic; the period counts ops when cnt_ctl=1.
  const ibsDir = join(dir, 'ibs_op');
  if (!existsSync(ibsDir)) {
    throw new SourceUnavailableError(
      "no hardware PMU: the 'ibs_op' perf PMU is absent (VMs need IBS virtualization); use --source damon or faults",
    );
  }
  const type = Number(readTrim(join(ibsDir, 'type')));
  const formats = readFormats(ibsDir);
  const words = formats.cnt_ctl ? encodeEvent('cnt_ctl=1', formats) : { config: 0n, config1: 0n, config2: 0n };
  return {
    type,
    ...words,
    sampleType: PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR | PERF_SAMPLE_PHYS_ADDR | PERF_SAMPLE_DATA_SRC,
    samplePeriod: period,
    preciseIp: 0,
    // IBS refuses exclude_* bits on kernels without its software filter: sample all.
    excludeKernel: false,
    excludeHv: false,
    describe: `ibs_op/${formats.cnt_ctl ? 'cnt_ctl=1' : ''}/ period ${period}`,
  };
}
