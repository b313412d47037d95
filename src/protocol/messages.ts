// The vtier guest <-> host messages: their shapes, limits and strict validation.
// The wire form is a msgpack map with string keys; page runs travel as packed binary
// columns (see runs.ts). Decoding checks every field's type and range; unknown extra
// keys are ignored so a later minor revision can add optional fields.
import type { PageRuns } from '../samples.js';
import { checkRuns, packRuns, unpackRuns } from './runs.js';

export const PROTOCOL_VERSION = 1;
/** The only page size protocol version 1 speaks: frames are GPA >> 12. */
export const PAGE_SIZE = 4096;

export interface ProtocolLimits {
  /** Largest frame body in bytes (the u32 length prefix excluded). */
  maxFrameBytes: number;
  /** Runs per promote/demote/moved list. */
  maxRunsPerList: number;
  /** Runs in hello.ramRanges. */
  maxRamRanges: number;
}

export const DEFAULT_LIMITS: ProtocolLimits = {
  maxFrameBytes: 1 << 20,
  maxRunsPerList: 65_536,
  maxRamRanges: 1024,
};

const MAX_SHORT_STRING = 256;
const MAX_MESSAGE_STRING = 1024;
const MAX_NOTES = 16;
const MAX_EPOCH_MS = 3_600_000;
const MAX_COUNT = Number.MAX_SAFE_INTEGER;

/** Guest -> host, first message on every connection. */
export interface HelloMessage {
  type: 'hello';
  protocolVersion: number;
  /** vtier version of the guest agent, e.g. "0.1.0". */
  agentVersion: string;
  /** Bytes per page; 4096 in protocol version 1. */
  pageSize: number;
  /** The guest's "System RAM" ranges from /proc/iomem, as page runs. */
  ramRanges: PageRuns;
  /** Sample source the guest runs (e.g. "damon", "faults", "replay"). */
  source: string;
  /** Classifier epoch length in milliseconds. */
  epochMs: number;
  /** Name the guest believes it has; the host checks it against the transport identity. */
  vmName?: string;
}

/** Host -> guest, answers a hello it accepts. */
export interface WelcomeMessage {
  type: 'welcome';
  protocolVersion: number;
  agentVersion: string;
  /** The name the host knows this VM by (from the transport identity). */
  vmName: string;
}

/** Host -> guest: DRAM pages the guest may keep hot. Sent after welcome and on change. */
export interface BudgetMessage {
  type: 'budget';
  dramBudgetPages: number;
}

/** Guest -> host: one classifier epoch's placement requests. */
export interface DecisionsMessage {
  type: 'decisions';
  epoch: number;
  /** Runs to move to DRAM. */
  promote: PageRuns;
  /** Runs to move to the slow tier (CXL). */
  demote: PageRuns;
}

export const FAILURE_REASONS = ['ENOENT', 'EBUSY', 'ENOMEM', 'EACCES', 'other'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];
/** Why the host refused pages before calling move_pages (all counted in `failed.other`). */
export const HOST_REFUSALS = ['budget', 'rate-limited', 'outside-ram', 'no-target-node', 'vm-gone'] as const;
export type HostRefusal = (typeof HOST_REFUSALS)[number];

/** What became of one direction (promote or demote) of a decisions message. */
export interface MoveOutcome {
  /** Pages the host tried to move. */
  tried: number;
  /** Pages the kernel reports on the target node afterwards. */
  moved: number;
  /** Pages not moved, by reason (move_pages per-page status). */
  failed: Record<FailureReason, number>;
  /** Pages already on the target tier (nothing moved). Optional: older hosts omit it. */
  already?: number;
  /** The host's refusals before move_pages, by reason; their sum is part of `failed.other`.
   *  Optional: older hosts omit it (and only itemise them in notes). */
  refused?: Record<HostRefusal, number>;
}

/** Host -> guest: the outcome of a decisions message. */
export interface ReportMessage {
  type: 'report';
  /** Epoch of the decisions message this answers. */
  epoch: number;
  promote: MoveOutcome;
  demote: MoveOutcome;
  /** Pages of the VM currently on DRAM nodes / on CXL nodes (kernel truth). */
  dramPages: number;
  cxlPages: number;
  /** Runs that now sit in DRAM / in CXL because of this decision (what moved). */
  promoted: PageRuns;
  demoted: PageRuns;
  /** Runs of this decision found already on DRAM / on CXL (nothing moved). Optional (older
   *  hosts omit them); without them the guest would keep proposing pages that are in place. */
  alreadyDram?: PageRuns;
  alreadyCxl?: PageRuns;
  /** False when the host cannot move pages between tiers (e.g. a single NUMA node). */
  crossNodeMoves: boolean;
  /** Short human-readable notes, e.g. "single NUMA node: cross-node moves not possible here". */
  notes: string[];
}

/** Either direction; keeps idle connections observable. */
export interface HeartbeatMessage {
  type: 'heartbeat';
  seq: number;
  /** Sender's monotonic clock in milliseconds. */
  tMs: number;
}

/** Either direction: the peer rejected something (the connection may close after). */
export interface ErrorMessage {
  type: 'error';
  /** Machine-readable code, e.g. "unknown-type", "invalid-field", "unsupported-version". */
  code: string;
  message: string;
}

export type Message =
  | HelloMessage
  | WelcomeMessage
  | BudgetMessage
  | DecisionsMessage
  | ReportMessage
  | HeartbeatMessage
  | ErrorMessage;
export type MessageType = Message['type'];
export type Side = 'guest' | 'host';

/** Which side may send each message type. */
export const SENDERS: Record<MessageType, readonly Side[]> = {
  hello: ['guest'],
  welcome: ['host'],
  budget: ['host'],
  decisions: ['guest'],
  report: ['host'],
  heartbeat: ['guest', 'host'],
  error: ['guest', 'host'],
};

export type ProtocolErrorCode =
  | 'frame-too-large'
  | 'empty-frame'
  | 'bad-msgpack'
  | 'not-a-map'
  | 'unknown-type'
  | 'wrong-direction'
  | 'invalid-field';

/** A rejected frame or message. Framing is intact after each; the peer answers with
 *  an `error` message and decides whether to close. */
export class ProtocolError extends Error {
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

// ---- validation helpers: each returns the value or throws ProtocolError ------------------

type Wire = Record<string, unknown>;

function invalid(message: string): never {
  throw new ProtocolError('invalid-field', message);
}

function uint(obj: Wire, key: string, max = MAX_COUNT, min = 0): number {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isInteger(v)) invalid(`${key}: expected an integer`);
  if (v < min || v > max) invalid(`${key}: ${v} outside [${min}, ${max}]`);
  return v;
}

function str(obj: Wire, key: string, maxLength: number, optional = false): string | undefined {
  const v = obj[key];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string') invalid(`${key}: expected a string`);
  if (v.length > maxLength) invalid(`${key}: longer than ${maxLength} characters`);
  return v;
}

function bool(obj: Wire, key: string): boolean {
  const v = obj[key];
  if (typeof v !== 'boolean') invalid(`${key}: expected a boolean`);
  return v;
}

function map(v: unknown, key: string): Wire {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) invalid(`${key}: expected a map`);
  return v as Wire;
}

function runs(obj: Wire, key: string, maxRuns: number): PageRuns {
  const r = unpackRuns(obj[key], key, maxRuns);
  if (typeof r === 'string') invalid(r);
  return r;
}

function outcome(v: unknown, key: string): MoveOutcome {
  const o = map(v, key);
  const f = map(o.failed, `${key}.failed`);
  const failed = {} as Record<FailureReason, number>;
  for (const reason of FAILURE_REASONS) failed[reason] = uint(f, reason);
  const out: MoveOutcome = { tried: uint(o, 'tried'), moved: uint(o, 'moved'), failed };
  if (o.already !== undefined) out.already = uint(o, 'already');
  if (o.refused !== undefined) {
    const r = map(o.refused, `${key}.refused`);
    const refused = {} as Record<HostRefusal, number>;
    let sum = 0;
    for (const reason of HOST_REFUSALS) sum += refused[reason] = uint(r, reason);
    if (sum > failed.other) invalid(`${key}.refused: ${sum} pages refused, more than failed.other (${failed.other})`);
    out.refused = refused;
  }
  return out;
}

/** Validates a decoded msgpack value and builds the typed message. Throws ProtocolError. */
export function messageFromWire(value: unknown, limits: ProtocolLimits = DEFAULT_LIMITS): Message {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new ProtocolError('not-a-map', 'a message must be a msgpack map');
  }
  const w = value as Wire;
  const type = w.type;
  if (typeof type !== 'string') throw new ProtocolError('unknown-type', 'type: expected a string');
  switch (type) {
    case 'hello': {
      const pageSize = uint(w, 'pageSize');
      if (pageSize !== PAGE_SIZE) invalid(`pageSize: ${pageSize} unsupported (protocol version 1 uses ${PAGE_SIZE})`);
      const msg: HelloMessage = {
        type,
        protocolVersion: uint(w, 'protocolVersion', 0xffff, 1),
        agentVersion: str(w, 'agentVersion', MAX_SHORT_STRING)!,
        pageSize,
        ramRanges: runs(w, 'ramRanges', limits.maxRamRanges),
        source: str(w, 'source', MAX_SHORT_STRING)!,
        epochMs: uint(w, 'epochMs', MAX_EPOCH_MS, 1),
      };
      const vmName = str(w, 'vmName', MAX_SHORT_STRING, true);
      if (vmName !== undefined) msg.vmName = vmName;
      return msg;
    }
    case 'welcome':
      return {
        type,
        protocolVersion: uint(w, 'protocolVersion', 0xffff, 1),
        agentVersion: str(w, 'agentVersion', MAX_SHORT_STRING)!,
        vmName: str(w, 'vmName', MAX_SHORT_STRING)!,
      };
    case 'budget':
      return { type, dramBudgetPages: uint(w, 'dramBudgetPages', 2 ** 52) };
    case 'decisions':
      return {
        type,
        epoch: uint(w, 'epoch'),
        promote: runs(w, 'promote', limits.maxRunsPerList),
        demote: runs(w, 'demote', limits.maxRunsPerList),
      };
    case 'report': {
      const notesValue = w.notes;
      if (!Array.isArray(notesValue)) invalid('notes: expected an array');
      if (notesValue.length > MAX_NOTES) invalid(`notes: more than ${MAX_NOTES}`);
      const notes = notesValue.map((note, i) => {
        if (typeof note !== 'string' || note.length > MAX_MESSAGE_STRING) invalid(`notes[${i}]: expected a string of at most ${MAX_MESSAGE_STRING} characters`);
        return note;
      });
      return {
        type,
        epoch: uint(w, 'epoch'),
        promote: outcome(w.promote, 'promote'),
        demote: outcome(w.demote, 'demote'),
        dramPages: uint(w, 'dramPages', 2 ** 52),
        cxlPages: uint(w, 'cxlPages', 2 ** 52),
        promoted: runs(w, 'promoted', limits.maxRunsPerList),
        demoted: runs(w, 'demoted', limits.maxRunsPerList),
        ...(w.alreadyDram !== undefined ? { alreadyDram: runs(w, 'alreadyDram', limits.maxRunsPerList) } : {}),
        ...(w.alreadyCxl !== undefined ? { alreadyCxl: runs(w, 'alreadyCxl', limits.maxRunsPerList) } : {}),
        crossNodeMoves: bool(w, 'crossNodeMoves'),
        notes,
      };
    }
    case 'heartbeat':
      return { type, seq: uint(w, 'seq'), tMs: uint(w, 'tMs') };
    case 'error':
      return { type, code: str(w, 'code', 64)!, message: str(w, 'message', MAX_MESSAGE_STRING)! };
    default:
      throw new ProtocolError('unknown-type', `unknown message type "${type.slice(0, 64)}"`);
  }
}

interface WireRunsLike {
  gpaPfn?: unknown;
}
const EMPTY_WIRE_RUNS = { gpaPfn: new Uint8Array(0), pages: new Uint8Array(0) };

function checkLocalRuns(r: PageRuns, field: string, maxRuns: number): void {
  const problem = checkRuns(r, field, maxRuns);
  if (problem) invalid(problem);
}

function outcomeToWire(o: MoveOutcome): Wire {
  const wire: Wire = { tried: o.tried, moved: o.moved, failed: { ...o.failed } };
  if (o.already !== undefined) wire.already = o.already;
  if (o.refused !== undefined) wire.refused = { ...o.refused };
  return wire;
}

/** Builds the wire form of a message. Runs the same checks as decoding (so a bug on the
 *  sending side shows up here, not as a rejected frame at the peer). Throws ProtocolError. */
export function messageToWire(msg: Message, limits: ProtocolLimits = DEFAULT_LIMITS): Wire {
  let wire: Wire;
  switch (msg.type) {
    case 'hello':
      checkLocalRuns(msg.ramRanges, 'ramRanges', limits.maxRamRanges);
      wire = { ...msg, ramRanges: packRuns(msg.ramRanges) };
      if (msg.vmName === undefined) delete wire.vmName;
      break;
    case 'decisions':
      checkLocalRuns(msg.promote, 'promote', limits.maxRunsPerList);
      checkLocalRuns(msg.demote, 'demote', limits.maxRunsPerList);
      wire = { type: msg.type, epoch: msg.epoch, promote: packRuns(msg.promote), demote: packRuns(msg.demote) };
      break;
    case 'report':
      checkLocalRuns(msg.promoted, 'promoted', limits.maxRunsPerList);
      checkLocalRuns(msg.demoted, 'demoted', limits.maxRunsPerList);
      if (msg.alreadyDram) checkLocalRuns(msg.alreadyDram, 'alreadyDram', limits.maxRunsPerList);
      if (msg.alreadyCxl) checkLocalRuns(msg.alreadyCxl, 'alreadyCxl', limits.maxRunsPerList);
      wire = {
        ...msg,
        promote: outcomeToWire(msg.promote),
        demote: outcomeToWire(msg.demote),
        promoted: packRuns(msg.promoted),
        demoted: packRuns(msg.demoted),
        ...(msg.alreadyDram ? { alreadyDram: packRuns(msg.alreadyDram) } : {}),
        ...(msg.alreadyCxl ? { alreadyCxl: packRuns(msg.alreadyCxl) } : {}),
      };
      if (!msg.alreadyDram) delete wire.alreadyDram;
      if (!msg.alreadyCxl) delete wire.alreadyCxl;
      break;
    default:
      wire = { ...msg };
  }
  // Validate the scalar fields exactly as the peer will; the runs were checked above, so
  // empty columns stand in for them (re-decoding them would double the cost of encoding).
  const scalars: Wire = { ...wire };
  for (const key of ['ramRanges', 'promote', 'demote', 'promoted', 'demoted', 'alreadyDram', 'alreadyCxl']) {
    if (scalars[key] instanceof Object && (scalars[key] as WireRunsLike).gpaPfn instanceof Uint8Array) scalars[key] = EMPTY_WIRE_RUNS;
  }
  messageFromWire(scalars, limits);
  return wire;
}
