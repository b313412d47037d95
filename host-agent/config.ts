// host.json: which VMs this host serves, how each is identified, where its QEMU is, the
// DRAM/CXL node split, budgets and limits. Validated up front with messages that name the
// field; sizes accept "8G", node lists "0,2-3", as everywhere in vtier.
import { resolve as resolvePath } from 'node:path';
import { InputError, parseNodeList, parseSizeBytes } from '../src/util/units.js';
import { parseTransportSpec, type TransportSpec } from '../transport/spec.js';
import { readSmallFile } from './safe-read.js';

/** host.json is a few KB; a config larger than this is a mistake (or /dev/zero). */
const MAX_CONFIG_BYTES = 1 << 20;

export type VmIdentity =
  /** The VM's guest agent connects from this vsock CID (to the host's vsock listener). */
  | { kind: 'vsock'; cid: number }
  /** A listener only this VM is given (unix socket path, or tcp loopback for development). */
  | { kind: 'listen'; spec: TransportSpec; text: string }
  /** The host connects to QEMU's virtio-serial chardev socket for this VM. */
  | { kind: 'serial'; path: string };

export type VmTargetConfig =
  | { kind: 'qemu'; qmpPath: string; pidfile: string }
  | { kind: 'local'; pid?: number; pidfile?: string };

export interface VmConfig {
  name: string;
  identity: VmIdentity;
  target: VmTargetConfig;
  /** DRAM pages this VM may hold; undefined = share the pool. */
  dramBudgetPages?: number;
}

export interface HostConfig {
  vms: VmConfig[];
  /** Shared vsock listener for VMs identified by CID, e.g. "vsock:any:5000". */
  vsockListen?: TransportSpec;
  /** Explicit node lists; undefined = detect from the NUMA topology. */
  dramNodes?: number[];
  cxlNodes?: number[];
  /** A DRAM pool shared by the VMs without their own budget. */
  dramPoolPages?: number;
  /** Host-wide migration rate limit. */
  migrationBytesPerSec: number;
  statusSocket: string;
  /** Prometheus text endpoint, loopback only, e.g. "127.0.0.1:9464". */
  prometheus?: { host: string; port: number };
  limits: HostLimits;
}

export interface HostLimits {
  /** Largest frame accepted from a guest. */
  maxFrameBytes: number;
  /** A guest holding half a frame longer than this is disconnected. */
  readTimeoutMs: number;
  /** The first message (hello) must arrive within this time. */
  helloTimeoutMs: number;
  /** Decisions messages per second per VM (burst: the same number). */
  maxDecisionsPerSec: number;
  /** Heartbeats (and guest error messages) per second per VM. */
  maxHeartbeatsPerSec: number;
  /** Messages dropped for flooding before the connection is closed. */
  maxThrottledBeforeClose: number;
  /** Bad frames before the connection is closed. */
  maxProtocolErrors: number;
  /** Pages one decisions message may name. */
  maxPagesPerDecision: number;
}

export const DEFAULT_LIMITS: HostLimits = {
  maxFrameBytes: 1 << 20,
  readTimeoutMs: 5000,
  helloTimeoutMs: 10_000,
  maxDecisionsPerSec: 50,
  maxHeartbeatsPerSec: 20,
  maxThrottledBeforeClose: 200,
  maxProtocolErrors: 8,
  maxPagesPerDecision: 1 << 20,
};

const PAGE = 4096;
type Json = Record<string, unknown>;

function obj(v: unknown, where: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InputError(`${where}: expected an object`);
  return v as Json;
}

function str(o: Json, key: string, where: string, optional = false): string | undefined {
  const v = o[key];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string' || v === '') throw new InputError(`${where}.${key}: expected a non-empty string`);
  return v;
}

function nodes(v: unknown, where: string): number[] | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string') return parseNodeList(v, where);
  if (Array.isArray(v) && v.every((n) => Number.isInteger(n) && n >= 0 && n < 1024)) return [...new Set(v as number[])].sort((a, b) => a - b);
  throw new InputError(`${where}: expected a node list ("0,2-3" or [0, 2, 3])`);
}

function pages(v: unknown, where: string): number | undefined {
  if (v === undefined) return undefined;
  const bytes = typeof v === 'number' ? v : parseSizeBytes(String(v), where);
  if (!Number.isFinite(bytes) || bytes < 0) throw new InputError(`${where}: expected a size such as "8G"`);
  return Math.floor(bytes / PAGE);
}

function positive(o: Json, key: string, where: string, fallback: number): number {
  const v = o[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !(v > 0)) throw new InputError(`${where}.${key}: expected a positive number`);
  return v;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

const ROOT_KEYS = ['vms', 'vsockListen', 'dramNodes', 'cxlNodes', 'dramPool', 'migrationRateMBps', 'statusSocket', 'prometheus', 'limits'];
const VM_KEYS = ['name', 'identity', 'qmp', 'pidfile', 'localPid', 'localPidfile', 'dramBudget'];
const IDENTITY_KEYS = ['vsockCid', 'listen', 'serial'];

/** Edit distance, case-insensitive (short keys only). */
function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] === y[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[y.length];
}

/** The known key nearest to `key`. */
export function nearestKey(key: string, known: readonly string[]): string {
  let best = known[0];
  for (const k of known) if (distance(key, k) < distance(key, best)) best = k;
  return best;
}

/** A typo in a key silently turns a limit off, so an unknown key is an error. */
function onlyKnown(o: Json, known: readonly string[], where: string): void {
  for (const key of Object.keys(o)) {
    if (known.includes(key)) continue;
    const shown = JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key);
    throw new InputError(`${where}: unknown key ${shown} (did you mean "${nearestKey(key.slice(0, 64), known)}"?)`);
  }
}

export function parseHostConfig(value: unknown): HostConfig {
  const root = obj(value, 'host.json');
  onlyKnown(root, ROOT_KEYS, 'host.json');
  const vmsValue = root.vms;
  if (!Array.isArray(vmsValue) || vmsValue.length === 0) throw new InputError('host.json.vms: expected a non-empty array of VMs');
  const vms: VmConfig[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < vmsValue.length; i++) {
    const where = `vms[${i}]`;
    const v = obj(vmsValue[i], where);
    onlyKnown(v, VM_KEYS, where);
    const name = str(v, 'name', where)!;
    if (!NAME_RE.test(name)) throw new InputError(`${where}.name: "${name}" must be 1-64 letters, digits, "_", "." or "-"`);
    if (seen.has(name)) throw new InputError(`${where}.name: "${name}" appears twice`);
    seen.add(name);

    const id = obj(v.identity, `${where}.identity`);
    onlyKnown(id, IDENTITY_KEYS, `${where}.identity`);
    if (Object.keys(id).length > 1) throw new InputError(`${where}.identity: give exactly one of vsockCid, listen or serial`);
    let identity: VmIdentity;
    if (id.vsockCid !== undefined) {
      if (!Number.isInteger(id.vsockCid) || (id.vsockCid as number) < 3 || (id.vsockCid as number) > 0xfffffffe) throw new InputError(`${where}.identity.vsockCid: expected a guest CID >= 3`);
      identity = { kind: 'vsock', cid: id.vsockCid as number };
    } else if (id.listen !== undefined) {
      const text = str(id, 'listen', `${where}.identity`)!;
      const spec = parseTransportSpec(text);
      if (spec.kind !== 'unix' && spec.kind !== 'tcp') throw new InputError(`${where}.identity.listen: use unix:PATH (or tcp:127.0.0.1:PORT for development)`);
      if (spec.kind === 'tcp' && !/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(spec.host)) throw new InputError(`${where}.identity.listen: tcp is for development and must be a loopback address`);
      identity = { kind: 'listen', spec, text };
    } else if (id.serial !== undefined) {
      identity = { kind: 'serial', path: str(id, 'serial', `${where}.identity`)! };
    } else {
      throw new InputError(`${where}.identity: give one of vsockCid, listen ("unix:PATH") or serial (QEMU chardev socket path)`);
    }

    let target: VmTargetConfig;
    const isQemu = v.qmp !== undefined || v.pidfile !== undefined;
    const isLocal = v.localPid !== undefined || v.localPidfile !== undefined;
    if (isQemu && isLocal) throw new InputError(`${where}: "qmp"/"pidfile" (a QEMU VM) and "localPid"/"localPidfile" (a local process) exclude each other`);
    if (isQemu) {
      target = { kind: 'qemu', qmpPath: str(v, 'qmp', where)!, pidfile: str(v, 'pidfile', where)! };
    } else if (v.localPid !== undefined || v.localPidfile !== undefined) {
      const pid = v.localPid;
      if (pid !== undefined && (!Number.isInteger(pid) || (pid as number) <= 0)) throw new InputError(`${where}.localPid: expected a process id`);
      target = { kind: 'local', pid: pid as number | undefined, pidfile: str(v, 'localPidfile', where, true) };
    } else {
      throw new InputError(`${where}: give "qmp" and "pidfile" (a QEMU VM) or "localPid"/"localPidfile" (a local process)`);
    }
    vms.push({ name, identity, target, dramBudgetPages: pages(v.dramBudget, `${where}.dramBudget`) });
  }
  const cids = vms.filter((v) => v.identity.kind === 'vsock').map((v) => (v.identity as { cid: number }).cid);
  if (new Set(cids).size !== cids.length) throw new InputError('vms: two VMs share a vsock CID');
  // One QEMU per VM: a shared QMP socket or pidfile would let one VM's QEMU speak for another.
  const shared = (what: string, values: Array<[string, string | undefined]>) => {
    const owner = new Map<string, string>();
    for (const [vm, value] of values) {
      if (value === undefined) continue;
      const key = resolvePath(value);
      const first = owner.get(key);
      if (first !== undefined) throw new InputError(`vms: ${first} and ${vm} share the ${what} ${value}`);
      owner.set(key, vm);
    }
  };
  shared('QMP socket', vms.map((v) => [v.name, v.target.kind === 'qemu' ? v.target.qmpPath : undefined]));
  shared('pidfile', vms.map((v) => [v.name, v.target.kind === 'qemu' ? v.target.pidfile : v.target.pidfile]));
  shared('listen socket', vms.map((v) => [v.name, v.identity.kind === 'listen' ? v.identity.text : v.identity.kind === 'serial' ? v.identity.path : undefined]));

  const dramNodes = nodes(root.dramNodes, 'dramNodes');
  const cxlNodes = nodes(root.cxlNodes, 'cxlNodes');
  if ((dramNodes === undefined) !== (cxlNodes === undefined)) throw new InputError('dramNodes and cxlNodes: give both or neither (neither = detect)');
  if (dramNodes && cxlNodes?.some((n) => dramNodes.includes(n))) throw new InputError('dramNodes and cxlNodes overlap');

  const dramPoolPages = pages(root.dramPool, 'dramPool');
  if (dramPoolPages === undefined && vms.some((v) => v.dramBudgetPages === undefined)) {
    throw new InputError('every VM needs a dramBudget, or give a shared "dramPool"');
  }
  const rate = root.migrationRateMBps;
  if (rate !== undefined && (typeof rate !== 'number' || !(rate > 0))) throw new InputError('migrationRateMBps: expected a positive number');

  let vsockListen: TransportSpec | undefined;
  if (root.vsockListen !== undefined) {
    vsockListen = parseTransportSpec(str(root, 'vsockListen', 'host.json')!);
    if (vsockListen.kind !== 'vsock') throw new InputError('vsockListen: expected vsock:any:PORT');
  } else if (cids.length > 0) {
    throw new InputError('vsockListen: VMs are identified by vsock CID, so give vsockListen (e.g. "vsock:any:5000")');
  }

  let prometheus: HostConfig['prometheus'];
  if (root.prometheus !== undefined) {
    const text = str(root, 'prometheus', 'host.json')!;
    const m = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):(\d{1,5})$/.exec(text);
    if (!m || Number(m[2]) > 65535) throw new InputError('prometheus: expected a loopback HOST:PORT such as "127.0.0.1:9464"');
    prometheus = { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  }

  const l = root.limits === undefined ? {} : obj(root.limits, 'limits');
  onlyKnown(l, Object.keys(DEFAULT_LIMITS), 'limits');
  const limits: HostLimits = {
    maxFrameBytes: positive(l, 'maxFrameBytes', 'limits', DEFAULT_LIMITS.maxFrameBytes),
    readTimeoutMs: positive(l, 'readTimeoutMs', 'limits', DEFAULT_LIMITS.readTimeoutMs),
    helloTimeoutMs: positive(l, 'helloTimeoutMs', 'limits', DEFAULT_LIMITS.helloTimeoutMs),
    maxDecisionsPerSec: positive(l, 'maxDecisionsPerSec', 'limits', DEFAULT_LIMITS.maxDecisionsPerSec),
    maxHeartbeatsPerSec: positive(l, 'maxHeartbeatsPerSec', 'limits', DEFAULT_LIMITS.maxHeartbeatsPerSec),
    maxThrottledBeforeClose: positive(l, 'maxThrottledBeforeClose', 'limits', DEFAULT_LIMITS.maxThrottledBeforeClose),
    maxProtocolErrors: positive(l, 'maxProtocolErrors', 'limits', DEFAULT_LIMITS.maxProtocolErrors),
    maxPagesPerDecision: positive(l, 'maxPagesPerDecision', 'limits', DEFAULT_LIMITS.maxPagesPerDecision),
  };
  return {
    vms,
    vsockListen,
    dramNodes,
    cxlNodes,
    dramPoolPages,
    migrationBytesPerSec: rate === undefined ? Infinity : (rate as number) * 1024 * 1024,
    statusSocket: str(root, 'statusSocket', 'host.json', true) ?? '/run/vtier/host-status.sock',
    prometheus,
    limits,
  };
}

export function readHostConfig(path: string): HostConfig {
  let text: string;
  try {
    text = readSmallFile(path, { maxBytes: MAX_CONFIG_BYTES, what: 'config' });
  } catch (err) {
    throw new InputError((err as Error).message);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InputError(`config ${path}: not JSON (${(err as Error).message})`);
  }
  return parseHostConfig(value);
}
