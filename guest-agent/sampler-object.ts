// A typed layer over build/bpf/sampler.bpf.o: one source kind per object, its tunables,
// its program, its ring buffer and the per-page aggregation map, decoded.
import {
  builtPath,
  openBpfObject,
  type BpfObject,
  type PerfAttachOptions,
  type PerfCpuFailure,
  type PerfEventAttr,
  type PerfTarget,
  type RingBufferHandle,
} from '../native/addon.js';
import { damonAggregatedProgram, funcProtoParams, readKernelBtf } from './btf-proto.js';
import {
  COUNTER,
  DAMON_RECORD,
  MODE_AGGREGATE,
  MODE_RING,
  SAMPLE_RECORD,
  decodeDamonRecords,
  decodePageEntries,
  decodeSampleRecords,
  type DecodedDamonRegions,
  type DecodedPages,
  type DecodedSamples,
} from './record-layout.js';

/** 'perf': on_perf_sample on a perf event (pebs, ibs, software page faults).
 *  'fault-tracepoint': exceptions:page_fault_user (tp_btf). 'damon': damon:damon_aggregated. */
export type SamplerKind = 'perf' | 'fault-tracepoint' | 'damon';
/** aggregate: count per page in the "pages" map; ring: raw samples to the ring buffer. */
export type SamplerMode = 'aggregate' | 'ring' | 'both';

export interface SamplerOptions {
  kind: SamplerKind;
  /** Ignored for 'damon' (regions always go to the ring buffer). Default 'aggregate'. */
  mode?: SamplerMode;
  /** Only count samples of this tgid (0 / absent = all processes). */
  pid?: number;
  /** Only count DAMON aggregations done by this kdamond thread pid (0 / absent = all). */
  damonPid?: number;
  /** Raw sample ring buffer size in bytes (power of two, >= 4096). Default 4 MiB. */
  ringBytes?: number;
  /** Wake the consumer once this many bytes wait in the samples ring instead of on every
   *  record (a wake-up costs the kernel an irq_work). 0 = every record. Default ringBytes/8,
   *  at most 256 KiB. The consumer also drains every ringPollMs. */
  ringWakeupBytes?: number;
  /** Drain the ring at least this often, in ms. Default 50. */
  ringPollMs?: number;
  /** Aggregation map capacity in entries, each counting PAGE_GROUP_PAGES adjacent pages
   *  (so at least maxPages pages fit, up to 8x as many when sampled pages are adjacent). A
   *  full map refuses new pages and counts each refused sample in mapFull (never evicts).
   *  The map is preallocated: 144 bytes an entry (36 MiB at the default). Default 262144. */
  maxPages?: number;
  /** libbpf's log (verifier output) to stderr. */
  verbose?: boolean;
  /** Another build of the object (tests). Default build/bpf/sampler.bpf.o. */
  objectPath?: string;
}

export interface SamplerCounters {
  /** Events that passed the filters. Counted by the kernel in modes 'ring' and 'both'; in
   *  mode 'aggregate' derived (the kernel skips that counter to save the cost): the
   *  counts drained so far plus mapFull, so samples still in the map show after a drain. */
  samples: bigint;
  /** Records lost because the ring buffer was full. */
  drops: bigint;
  /** Events rejected by the pid / kdamond filter or without a data address. */
  filtered: bigint;
  /** Samples lost because the aggregation map was full (its insert was refused). */
  mapFull: bigint;
  /** DAMON regions seen. */
  regions: bigint;
  /** Entries created in the aggregation map since load. */
  inserts: bigint;
}

const PROGRAMS = ['on_perf_sample', 'on_page_fault_user', 'on_damon_aggregated', 'on_damon_aggregated_with_target', 'on_damon_aggregated_target_ptr'];
const MIN_RING_BYTES = 4096;

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

function checkId(value: number | undefined, field: string): number {
  if (value === undefined) return 0;
  if (!Number.isInteger(value) || value < 0 || value > 0x7fffffff) {
    throw new TypeError(`${field}: must be a non-negative integer pid`);
  }
  return value;
}

/** The program that serves a kind on the running kernel. */
export function samplerProgram(kind: SamplerKind): string {
  switch (kind) {
    case 'perf':
      return 'on_perf_sample';
    case 'fault-tracepoint':
      return 'on_page_fault_user';
    case 'damon': {
      // tp_btf arguments are positional; the prototype changed twice, once keeping its
      // argument count (bpf/core_fixes.bpf.h): match the parameter types from BTF.
      const btf = readKernelBtf();
      const params = btf && funcProtoParams(btf, 'btf_trace_damon_aggregated');
      const choice = params ? damonAggregatedProgram(params) : undefined;
      if (choice && 'program' in choice) return choice.program;
      throw Object.assign(
        new Error(
          !btf
            ? 'this kernel has no BTF (/sys/kernel/btf/vmlinux): vtier needs CONFIG_DEBUG_INFO_BTF=y'
            : !choice
              ? 'this kernel has no damon:damon_aggregated tracepoint (CONFIG_DAMON off)'
              : `damon:damon_aggregated has an unknown prototype ${choice.unknown}`,
        ),
        { code: 'ENOTSUP' },
      );
    }
    default:
      throw new TypeError(`kind: must be 'perf', 'fault-tracepoint' or 'damon', not ${String(kind)}`);
  }
}

export class SamplerObject {
  readonly kind: SamplerKind;
  readonly mode: SamplerMode;
  /** The one program this object loaded. */
  readonly program: string;
  readonly #obj: BpfObject;
  #ring: RingBufferHandle | undefined;
  #links: number[] = [];
  /** Perf links by the CPU they sample. */
  readonly #cpuLinks = new Map<number, number[]>();
  #closed = false;
  readonly #ringPollMs: number;
  /** Aggregation map capacity, in entries. */
  readonly maxPages: number;
  #drainedEntries = 0n;
  #drainedWeight = 0n;

  /** Use openSampler(). */
  constructor(obj: BpfObject, kind: SamplerKind, mode: SamplerMode, program: string, ringPollMs = 50, maxPages = 0) {
    this.#obj = obj;
    this.maxPages = maxPages;
    this.#ringPollMs = ringPollMs;
    this.kind = kind;
    this.mode = mode;
    this.program = program;
  }

  /** Attaches on_perf_sample to a perf event on each target CPU (or the pid), each CPU on
   *  its own: returns the CPUs attached and the ones that failed with their error; throws the
   *  first failure only when no CPU attached. options.leader: a group leader per CPU. 'perf' only. */
  attachPerf(attr: PerfEventAttr, target: PerfTarget, options: PerfAttachOptions = {}): { cpus: number[]; failed: PerfCpuFailure[] } {
    const r = this.attachPerfPerCpu(attr, target, options);
    if (!r.cpus.length) throw r.failed[0].error;
    return r;
  }

  /** attachPerf that never throws for a CPU the kernel refuses (all may fail). */
  attachPerfPerCpu(attr: PerfEventAttr, target: PerfTarget, options: PerfAttachOptions = {}): { cpus: number[]; failed: PerfCpuFailure[] } {
    if (this.kind !== 'perf') throw new TypeError(`attachPerf: sampler kind is '${this.kind}', not 'perf'`);
    const r = this.#obj.attachPerfEventPerCpu(this.program, attr, target, options);
    for (const { cpu, link } of r.links) {
      this.#links.push(link);
      this.#cpuLinks.set(cpu, [...(this.#cpuLinks.get(cpu) ?? []), link]);
    }
    return { cpus: r.links.map((l) => l.cpu), failed: r.failed };
  }

  /** Sets the sample period of every attached perf event (ioctl PERF_EVENT_IOC_PERIOD):
   *  returns how many took it and the errors of those that did not. 'perf' only. */
  setPerfPeriod(period: number): { applied: number; failed: Error[] } {
    if (this.kind !== 'perf') throw new TypeError(`setPerfPeriod: sampler kind is '${this.kind}', not 'perf'`);
    let applied = 0;
    const failed: Error[] = [];
    for (const link of this.#links) {
      try {
        this.#obj.setPerfPeriod(link, period);
        applied++;
      } catch (err) {
        if (err instanceof TypeError) throw err;
        failed.push(err as Error);
      }
    }
    return { applied, failed };
  }

  /** Detaches the perf events attached on one CPU (it went offline); returns how many. */
  detachCpu(cpu: number): number {
    const links = this.#cpuLinks.get(cpu) ?? [];
    this.#cpuLinks.delete(cpu);
    for (const link of links) {
      this.#obj.detach(link);
      this.#links.splice(this.#links.indexOf(link), 1);
    }
    return links.length;
  }

  /** Attaches the tracepoint program ('fault-tracepoint' and 'damon'). Does not start or
   *  configure DAMON: regions arrive once some kdamond runs. */
  attachTracepoints(): void {
    if (this.kind === 'perf') throw new TypeError("attachTracepoints: sampler kind 'perf' attaches with attachPerf");
    this.#links.push(this.#obj.attachProgram(this.program));
  }

  /** Number of live attachments (perf events count one per CPU). */
  get attachments(): number {
    return this.#links.length;
  }

  /** Detaches every program but keeps maps readable (drain after a run). */
  detach(): void {
    for (const link of this.#links) this.#obj.detach(link);
    this.#links = [];
    this.#cpuLinks.clear();
  }

  /** Raw batches from this kind's ring buffer (concatenated SAMPLE_RECORD or DAMON_RECORD),
   *  one call per wake-up. One consumer per sampler. */
  onRawBatch(cb: (bytes: Uint8Array) => void): void {
    if (this.#ring) throw new Error('the ring buffer already has a consumer');
    if (this.kind === 'damon') {
      this.#ring = this.#obj.ringBuffer('regions', DAMON_RECORD.size, cb, { pollMs: this.#ringPollMs });
    } else {
      if (this.mode === 'aggregate') throw new TypeError("onRecords: mode 'aggregate' has no raw samples; use 'ring' or 'both'");
      this.#ring = this.#obj.ringBuffer('samples', SAMPLE_RECORD.size, cb, { pollMs: this.#ringPollMs });
    }
  }

  /** Decoded raw samples ('perf' / 'fault-tracepoint' in mode 'ring' or 'both'). */
  onRecords(cb: (batch: DecodedSamples) => void): void {
    if (this.kind === 'damon') throw new TypeError("onRecords: sampler kind 'damon' delivers regions; use onRegions");
    this.onRawBatch((bytes) => cb(decodeSampleRecords(bytes)));
  }

  /** Decoded DAMON regions ('damon'). */
  onRegions(cb: (batch: DecodedDamonRegions) => void): void {
    if (this.kind !== 'damon') throw new TypeError(`onRegions: sampler kind is '${this.kind}', not 'damon'`);
    this.onRawBatch((bytes) => cb(decodeDamonRecords(bytes)));
  }

  /** Batches delivered so far by the ring consumer. */
  ringStats(): { batches: number; malformed: number } {
    return this.#ring ? this.#ring.stats() : { batches: 0, malformed: 0 };
  }

  /** Stops the ring consumer (records stay in the kernel ring). */
  stopRecords(): void {
    this.#ring?.close();
    this.#ring = undefined;
  }

  /** Moves the per-page counts out of the kernel (the map is empty afterwards). */
  drainPages(options: { useBatch?: boolean } = {}): DecodedPages {
    const d = this.#obj.drainHash('pages', options);
    return this.#account(decodePageEntries(d.keys, d.values, d.count), d.count);
  }

  /** entries: map entries drained (each holds up to PAGE_GROUP_PAGES of the pages). */
  #account(pages: DecodedPages, entries: number): DecodedPages {
    let weight = 0;
    for (let i = 0; i < pages.count; i++) weight += pages.reads[i] + pages.writes[i];
    this.#drainedEntries += BigInt(entries);
    this.#drainedWeight += BigInt(weight);
    return pages;
  }

  /** Entries now in the aggregation map (inserted and not yet drained). */
  mapFill(): number {
    return Number(this.#obj.readArray('counters')[COUNTER.inserts] - this.#drainedEntries);
  }

  /** drainPages off the JS thread: draining a large map takes ~1 µs per entry in the
   *  kernel (bench:sampler-bpf), which would otherwise stall the event loop. */
  async drainPagesAsync(options: { useBatch?: boolean } = {}): Promise<DecodedPages> {
    const d = await this.#obj.drainHashAsync('pages', options);
    return this.#account(decodePageEntries(d.keys, d.values, d.count), d.count);
  }

  counters(): SamplerCounters {
    const a = this.#obj.readArray('counters');
    return {
      samples: this.mode === 'aggregate' ? this.#drainedWeight + a[COUNTER.mapFull] : a[COUNTER.samples],
      drops: a[COUNTER.drops],
      filtered: a[COUNTER.filtered],
      mapFull: a[COUNTER.mapFull],
      regions: a[COUNTER.regions],
      inserts: a[COUNTER.inserts],
    };
  }

  /** Cumulative run time / count of the program; zero unless kernel.bpf_stats_enabled=1. */
  bpfStats(): { runTimeNs: number; runCnt: number; progId: number } {
    const info = this.#obj.progInfo(this.program);
    return { runTimeNs: info.runTimeNs, runCnt: info.runCnt, progId: info.id };
  }

  /** Detaches, stops the ring and unloads. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ring?.close();
    this.#ring = undefined;
    this.#links = [];
    this.#cpuLinks.clear();
    this.#obj.close();
  }
}

/** Opens sampler.bpf.o for one source kind: sets targ_* tunables, autoloads only that
 *  kind's program, sizes unused ring buffers down, loads. Attach next. */
export async function openSampler(opts: SamplerOptions): Promise<SamplerObject> {
  if (typeof opts !== 'object' || opts === null) throw new TypeError('options: must be an object');
  const program = samplerProgram(opts.kind);
  const mode = opts.mode ?? 'aggregate';
  if (mode !== 'aggregate' && mode !== 'ring' && mode !== 'both') {
    throw new TypeError(`mode: must be 'aggregate', 'ring' or 'both', not ${String(mode)}`);
  }
  const pid = checkId(opts.pid, 'pid');
  const damonPid = checkId(opts.damonPid, 'damonPid');
  const ringBytes = opts.ringBytes ?? 4 << 20;
  if (!isPowerOfTwo(ringBytes) || ringBytes < MIN_RING_BYTES) {
    throw new TypeError('ringBytes: must be a power of two >= 4096');
  }
  const wakeupBytes = opts.ringWakeupBytes ?? Math.min(ringBytes / 8, 256 << 10);
  if (!Number.isInteger(wakeupBytes) || wakeupBytes < 0 || wakeupBytes > ringBytes) {
    throw new TypeError('ringWakeupBytes: must be an integer in [0, ringBytes]');
  }
  const ringPollMs = opts.ringPollMs ?? 50;
  if (!Number.isInteger(ringPollMs) || ringPollMs < 1 || ringPollMs > 60_000) {
    throw new TypeError('ringPollMs: must be an integer in [1, 60000]');
  }
  const maxPages = opts.maxPages ?? 262144;
  if (!Number.isInteger(maxPages) || maxPages < 1 || maxPages > 1 << 26) {
    throw new TypeError('maxPages: must be an integer in [1, 67108864]');
  }
  const obj = openBpfObject(opts.objectPath ?? builtPath('bpf', 'sampler.bpf.o'), { verbose: opts.verbose });
  try {
    obj.setGlobal('targ_pid', pid);
    obj.setGlobal('targ_damon_pid', damonPid);
    obj.setGlobal('targ_wakeup_bytes', wakeupBytes);
    const modeBits = (mode === 'ring' ? 0 : MODE_AGGREGATE) | (mode === 'aggregate' ? 0 : MODE_RING);
    obj.setGlobal('targ_mode', opts.kind === 'damon' ? 0 : modeBits);
    for (const p of PROGRAMS) obj.setAutoload(p, p === program);
    const samplesRing = opts.kind !== 'damon' && modeBits & MODE_RING;
    obj.setMapMaxEntries('samples', samplesRing ? ringBytes : MIN_RING_BYTES);
    obj.setMapMaxEntries('regions', opts.kind === 'damon' ? ringBytes : MIN_RING_BYTES);
    obj.setMapMaxEntries('pages', opts.kind === 'damon' || !(modeBits & MODE_AGGREGATE) ? 1 : maxPages);
    obj.load();
  } catch (err) {
    obj.close();
    throw err;
  }
  return new SamplerObject(obj, opts.kind, mode, program, ringPollMs, maxPages);
}
