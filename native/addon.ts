// The only module that loads the raw native binding. Everything else imports the
// typed wrappers below. Each concern keeps to its own section.
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, found from this file whether it runs from source or dist/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('vtier: cannot find the package root');
    dir = parent;
  }
  return dir;
}

/** Path of a file built by `npm run build` (addon, workload binary, BPF objects). */
export function builtPath(...parts: string[]): string {
  return join(packageRoot(), 'build', ...parts);
}

/** An error raised by a system call in the addon. */
export interface SyscallError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type RawBinding = Record<string, any>;
let rawBinding: RawBinding | undefined;

function raw(): RawBinding {
  if (!rawBinding) {
    const path = builtPath('Release', 'vtier_native.node');
    if (!existsSync(path)) {
      throw Object.assign(new Error(`native addon not built (${path}); run "npm run build"`), { code: 'ENOADDON' });
    }
    rawBinding = createRequire(import.meta.url)(path) as RawBinding;
  }
  return rawBinding;
}
void raw;

// ---- bpf: object lifecycle, attach, ring buffer, map drain ----------------------------

/** perf_event_attr fields the sampler sets (camelCase of the kernel's names). Exactly one of
 *  samplePeriod / sampleFreq. sampleType defaults to PERF_SAMPLE_ADDR. */
export interface PerfEventAttr {
  type: number;
  config?: number | bigint;
  config1?: number | bigint;
  config2?: number | bigint;
  samplePeriod?: number | bigint;
  sampleFreq?: number | bigint;
  sampleType?: number | bigint;
  preciseIp?: 0 | 1 | 2 | 3;
  excludeKernel?: boolean;
  excludeHv?: boolean;
  excludeUser?: boolean;
  excludeIdle?: boolean;
  inherit?: boolean;
  wakeupEvents?: number;
  /** PERF_FORMAT_* bits for read(2) on the event's fd (e.g. PERF_FORMAT_GROUP on a leader). */
  readFormat?: number | bigint;
}

/** One CPU whose perf event could not be opened or attached. */
export interface PerfCpuFailure {
  /** -1 when the event followed a pid on any CPU. */
  cpu: number;
  error: SyscallError;
}

/** What attachPerfEventPerCpu did on each CPU: a link per CPU that works, the error of each that does not. */
export interface PerfAttachResult {
  links: { cpu: number; link: number }[];
  failed: PerfCpuFailure[];
}

export interface PerfAttachOptions {
  /** A counting (non-sampling) event opened first on each CPU; the sampling event joins its
   *  group, as perf does for mem-loads-aux on Intel Sapphire Rapids. Its fd is closed with
   *  the link. It is opened enabled: a group runs only while its leader does. */
  leader?: PerfEventAttr;
}

/** Where a perf event counts: one event per listed CPU (all tasks unless pid), or one for pid. */
export interface PerfTarget {
  cpus?: number[];
  pid?: number;
}

export interface BpfProgInfo {
  id: number;
  /** Cumulative run time and run count; both stay 0 unless kernel.bpf_stats_enabled=1. */
  runTimeNs: number;
  runCnt: number;
  recursionMisses: number;
}

export interface DrainedHash {
  /** count * keySize bytes, entry i at i * keySize. */
  keys: Uint8Array;
  values: Uint8Array;
  count: number;
  keySize: number;
  valueSize: number;
  /** false when the kernel lacked batch ops and get_next_key/lookup/delete was used. */
  usedBatch: boolean;
}

export interface RingBufferHandle {
  /** Batches delivered and records of the wrong size skipped so far. */
  stats(): { batches: number; malformed: number };
  close(): void;
}

/** A libbpf object: open -> setGlobal/setAutoload -> load -> attach -> close. */
export class BpfObject {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly #native: any;
  #closed = false;

  /** Use openBpfObject(). */
  constructor(path: string, verbose: boolean) {
    this.#native = new (raw().bpf.BpfObject)(path, verbose);
  }

  /** Sets a `const volatile` global (tunable) before load; value must fit its C type. */
  setGlobal(name: string, value: number | bigint): void {
    this.#native.setGlobal(name, value);
  }
  setAutoload(prog: string, on: boolean): void {
    this.#native.setAutoload(prog, on);
  }
  setMapMaxEntries(map: string, maxEntries: number): void {
    this.#native.setMapMaxEntries(map, maxEntries);
  }
  programs(): { name: string; section: string; autoload: boolean }[] {
    return this.#native.programs();
  }
  load(): void {
    this.#native.load();
  }
  /** Attaches at the point named by the program's SEC() (tp_btf, raw_tp, ...). Returns a link id. */
  attachProgram(prog: string): number {
    return this.#native.attach(prog);
  }
  /** Attaches a SEC("tracepoint") program to category:name (needs tracefs). Returns a link id. */
  attachTracepoint(prog: string, category: string, name: string): number {
    return this.#native.attachTracepoint(prog, category, name);
  }
  /** perf_event_open for each CPU (or the pid) and attaches prog to each. Returns link ids;
   *  all or nothing: on any failure the events opened are closed again and the first
   *  failure is thrown. */
  attachPerfEvent(prog: string, attr: PerfEventAttr, target: PerfTarget, options: PerfAttachOptions = {}): number[] {
    const r = this.attachPerfEventPerCpu(prog, attr, target, options);
    if (r.failed.length) {
      for (const l of r.links) this.detach(l.link);
      throw r.failed[0].error;
    }
    return r.links.map((l) => l.link);
  }
  /** perf_event_open and attach on each CPU independently (with options.leader, a group per
   *  CPU): the CPUs that fail are reported with their error, the others keep their link.
   *  Throws only for bad arguments. */
  attachPerfEventPerCpu(prog: string, attr: PerfEventAttr, target: PerfTarget, options: PerfAttachOptions = {}): PerfAttachResult {
    if (typeof target !== 'object' || target === null) throw new TypeError('target: must be an object');
    if (typeof options !== 'object' || options === null) throw new TypeError('options: must be an object');
    const r = this.#native.attachPerfEvent(prog, attr, target.cpus ?? null, target.pid ?? -1, options.leader) as {
      links: { cpu: number; link: number }[];
      failed: (SyscallError & { cpu: number })[];
    };
    return { links: r.links, failed: r.failed.map((error) => ({ cpu: error.cpu, error })) };
  }
  /** ioctl(PERF_EVENT_IOC_PERIOD) on a perf link's sampling event (from attachPerfEvent*):
   *  samples every `period` events from its next overflow on. period: 1..2^32. Throws a
   *  SyscallError (ENOENT: no such link, EINVAL: not a perf link or refused by the kernel). */
  setPerfPeriod(link: number, period: number): void {
    this.#native.setPerfPeriod(link, period);
  }
  detach(link: number): void {
    this.#native.detach(link);
  }
  progInfo(prog: string): BpfProgInfo {
    return this.#native.progInfo(prog);
  }
  /** Consumes a ring buffer map on the Node loop: onBatch gets every record of one wake-up
   *  concatenated (records of any other size than recordSize are skipped and counted).
   *  pollMs > 0 also drains on a timer, for programs that skip wake-ups (BPF_RB_NO_WAKEUP);
   *  a batch holds at most maxBatchBytes (default 4 MiB), the rest follows at once. */
  ringBuffer(
    mapName: string,
    recordSize: number,
    onBatch: (bytes: Uint8Array) => void,
    options: { maxBatchBytes?: number; pollMs?: number } = {},
  ): RingBufferHandle {
    const id: number = this.#native.ringStart(mapName, recordSize, onBatch, options.maxBatchBytes, options.pollMs);
    let open = true;
    return {
      stats: () => (open ? this.#native.ringStats(id) : { batches: 0, malformed: 0 }),
      close: () => {
        if (open && !this.#closed) this.#native.ringClose(id);
        open = false;
      },
    };
  }
  /** Moves every entry out of a hash map (bpf_map_lookup_and_delete_batch, with a
   *  get_next_key fallback; `useBatch: false` forces the fallback). */
  drainHash(mapName: string, options: { useBatch?: boolean; limit?: number } = {}): DrainedHash {
    const r = this.#native.drainHash(mapName, options.useBatch ?? true, options.limit);
    return { ...r, keys: new Uint8Array(r.keys), values: new Uint8Array(r.values) };
  }
  /** drainHash on the libuv thread pool: the event loop (ring buffers, timers) keeps
   *  running while the kernel walks the map. Safe against close() meanwhile. */
  async drainHashAsync(mapName: string, options: { useBatch?: boolean; limit?: number } = {}): Promise<DrainedHash> {
    const r = await this.#native.drainHashAsync(mapName, options.useBatch ?? true, options.limit);
    return { ...r, keys: new Uint8Array(r.keys), values: new Uint8Array(r.values) };
  }
  /** An array map of u64 values (per-CPU arrays summed over CPUs). */
  readArray(mapName: string): BigUint64Array {
    return new BigUint64Array(this.#native.readArray(mapName) as ArrayBuffer);
  }
  /** Destroys links, stops ring buffers, closes the object. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close();
  }
}

/** Opens a BPF ELF object. libbpf's log goes to stderr only when verbose. */
export function openBpfObject(path: string, options: { verbose?: boolean } = {}): BpfObject {
  if (typeof path !== 'string') throw new TypeError('path: must be a string');
  return new BpfObject(path, options.verbose ?? false);
}

/** Parameter count of a kernel function-pointer typedef from BTF (e.g.
 *  "btf_trace_damon_aggregated", first parameter is the tracepoint's void *), -1 if absent. */
export function btfFuncProtoArgs(typedefName: string): number {
  return raw().bpf.btfFuncProtoArgs(typedefName) as number;
}

/** Creates and closes a 1-entry BPF array map: throws a SyscallError (code EPERM, ...)
 *  when this process may not use bpf(). */
export function probeBpfMapCreate(): void {
  raw().bpf.probeMapCreate();
}

/** Turns on BPF run-time stats (run_time_ns / run_cnt) until the returned fd is closed
 *  (fs.closeSync). Refcounted by the kernel: other holders and the sysctl are unaffected. */
export function enableBpfRunTimeStats(): number {
  return raw().bpf.enableRunTimeStats() as number;
}

/** sizeof of the structs in bpf/sampler.h as the addon was compiled. */
export function bpfLayouts(): Record<string, number> {
  return raw().bpf.layouts() as Record<string, number>;
}

/** Online CPUs from /sys/devices/system/cpu/online ("0-3,6"). */
export function onlineCpus(): number[] {
  const text = readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
  const cpus: number[] = [];
  for (const part of text.split(',')) {
    const [lo, hi] = part.split('-').map((s) => Number.parseInt(s, 10));
    for (let c = lo; c <= (hi ?? lo); c++) cpus.push(c);
  }
  return cpus;
}

// ---- socket: non-blocking stream sockets (AF_UNIX, AF_VSOCK) --------------------------

export type SocketFamily = 'unix' | 'vsock';
export type SocketAddress = { path: string } | { cid: number; port: number };
/** VMADDR_CID_ANY / VMADDR_PORT_ANY (listen only). */
export const VSOCK_ANY = 0xffffffff;

/** Who is on the other end, from the kernel: SO_PEERCRED for unix, the CID for vsock. */
export interface SocketPeer {
  pid?: number;
  uid?: number;
  gid?: number;
  cid?: number;
  port?: number;
}

export type SocketHandleKind = 'stream' | 'connecting' | 'listen' | 'device';

/** Events a handle delivers: 'data' (one Buffer per wake-up), 'end', 'error', 'writable',
 *  'connect' (null or the connect error), 'accept' (new fd and its peer). */
export type SocketEvent =
  | ['data', Buffer]
  | ['end']
  | ['error', SyscallError]
  | ['writable']
  | ['connect', SyscallError | null]
  | ['accept', number, SocketPeer];

/** One non-blocking fd driven by uv_poll on the Node loop. */
export interface SocketHandle {
  /** Which wake-ups to deliver: readable (data/accept) and writable (after a short write). */
  setEvents(readable: boolean, writable: boolean): void;
  /** Writes what the kernel takes now; returns the bytes written (0 when full). */
  write(data: Uint8Array): number;
  /** Half-close (SHUT_WR); no-op for devices. */
  shutdown(): void;
  /** Stops polling and closes the fd (idempotent). */
  close(): void;
  /** SO_PEERCRED of a connected unix socket; null for vsock and devices. */
  peerCred(): SocketPeer | null;
  /** Whether the handle keeps the Node event loop alive. */
  setRef(ref: boolean): void;
}

/** Starts a non-blocking connect; `pending` means completion arrives as a 'connect' event.
 *  Throws TypeError naming the field for a bad address (before any socket is created). */
export function socketConnect(family: SocketFamily, address: SocketAddress): { fd: number; pending: boolean } {
  return raw().socketConnect(family, address);
}

/** socket + bind + listen; returns the listening fd. */
export function socketListen(family: SocketFamily, address: SocketAddress, backlog = 64): number {
  return raw().socketListen(family, address, backlog);
}

/** Opens a character device (a virtio-serial port) read/write, non-blocking. */
export function socketOpenDevice(path: string): number {
  return raw().socketOpenDevice(path);
}

/** Wraps an fd (ownership passes to the handle: close() closes it). */
export function socketHandle(
  fd: number,
  kind: SocketHandleKind,
  family: SocketFamily,
  onEvent: (...event: SocketEvent) => void,
): SocketHandle {
  return new (raw().SocketHandle)(fd, kind, family, onEvent) as SocketHandle;
}


// ---- migrate: move_pages, placement queries ------------------------------------------

/** move_pages(2) flags: move pages mapped only by the target process / also shared ones
 *  (MOVE_ALL needs CAP_SYS_NICE). */
export const MPOL_MF_MOVE = 1 << 1;
export const MPOL_MF_MOVE_ALL = 1 << 2;

/** What move_pages returned: `result` > 0 = pages not moved for transient reasons;
 *  `status[i]` = the node page i is on now, or a negative errno (-ENOENT, -EBUSY, ...). */
export interface MovePagesResult {
  result: number;
  status: Int32Array;
}

/** The syscall seam: the host agent takes a function of this shape (tests inject faults here). */
export type MovePagesFn = (
  pid: number,
  addresses: Float64Array | BigUint64Array,
  nodes: Int32Array | null,
  flags: number,
) => Promise<MovePagesResult>;

/** move_pages(2) on the libuv thread pool. `nodes` null = query placement only.
 *  Rejects with a SyscallError (.code ESRCH, EPERM, ...) when the call itself fails. */
export const movePages: MovePagesFn = (pid, addresses, nodes, flags) =>
  raw().movePages(pid, addresses, nodes, flags) as Promise<MovePagesResult>;

/** The same call on the calling thread (benchmarks and one-shot tools). */
export function movePagesSync(
  pid: number,
  addresses: Float64Array | BigUint64Array,
  nodes: Int32Array | null,
  flags: number,
): MovePagesResult {
  return raw().movePagesSync(pid, addresses, nodes, flags) as MovePagesResult;
}
