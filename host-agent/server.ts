// The host agent: serves the guest agents of the configured VMs. Identity comes from the
// transport (the vsock CID, or the socket that only one VM was given), never from the
// payload. Each VM's connection is isolated: a hostile or broken guest is throttled or
// disconnected without affecting the others. Decisions go to the VM's migrator; the
// report goes back to the guest.
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { FrameDecoder, encodeMessage, PROTOCOL_VERSION, HOST_REFUSALS, type HostRefusal, type DecisionsMessage, type HelloMessage, type Message, type ReportMessage } from '../src/protocol/index.js';
import { emptyRuns, type PageRuns } from '../src/samples.js';
import type { MovePagesFn } from '../native/addon.js';
import { connect as transportConnect, listen as transportListen, type PeerIdentity, type TransportServer } from '../transport/index.js';
import type { HostConfig, VmConfig } from './config.js';
import { LocalProcessTranslator } from './local-target.js';
import { FixedBudget, SharedPool, TokenBucket, VmMigrator, MOVE_FAILURES, MOVE_LATENCY_BUCKETS_S, type DramBudget, type MigrationReport, type MoveFailure } from './migrator.js';
import { defaultTierNodes, readNumaTopology, type NumaTopology } from './numa.js';
import { QemuTarget } from './qemu-target.js';
import { isAnonymousFile, mappedFiles, readPidfile, readProcMaps } from './layout.js';
import { processGone } from './migrator.js';
import { pagesOutside } from './translate.js';
import { safeText } from './text.js';
import { InputError } from '../src/util/units.js';

const AGENT_VERSION = process.env.npm_package_version ?? '0.1.0';
const MAX_REPORT_RUNS = 65_536;
/** A guest that does not read its reports is disconnected past this much queued output. */
const MAX_WRITE_BACKLOG = 4 * 1024 * 1024;
/** Connections of one VM still waiting for their hello; more are refused. */
const MAX_PENDING_SESSIONS = 4;
/** Decisions of one VM in the agent at once: one running, one queued. */
const MAX_DECISIONS_IN_FLIGHT = 2;
/** maxThrottledBeforeClose counts the throttles of one connection within this window. */
const THROTTLE_WINDOW_MS = 10_000;

export interface VmStatus {
  name: string;
  connected: boolean;
  peer?: string;
  source?: string;
  target: 'qemu' | 'local';
  state: 'attaching' | 'ready' | 'gone' | 'error';
  pid?: number;
  lastError?: string;
  totalPages: number;
  dramPages: number;
  cxlPages: number;
  dramBudgetPages: number;
  promotedBytesPerSec: number;
  demotedBytesPerSec: number;
  promotedPages: number;
  demotedPages: number;
  failures: Record<MoveFailure, number>;
  decisions: number;
  throttled: number;
  protocolErrors: number;
  refusedConnections: number;
  retryPending: number;
  /** RAM pages the guest's hello declared that the host's layout does not have (should be 0). */
  ramMismatchPages: number;
  /** move_pages calls made on this VM's process: moves and placement queries. */
  moveCalls: number;
  queryCalls: number;
  /** Runs of guest decisions refused (outside RAM, malformed, too many pages). */
  refusedRuns: number;
  /** move_pages wall time in move mode (cumulative buckets, MOVE_LATENCY_BUCKETS_S). */
  moveLatency: { buckets: number[]; sumSeconds: number; count: number };
  crossNodeMoves: boolean;
}

export interface HostStatus {
  pid: number;
  /** vtier and Node versions of the agent (build info). */
  version: string;
  nodeVersion: string;
  startedAt: string;
  dramNodes: number[];
  cxlNodes: number[];
  nodeSplit: string;
  crossNodeMoves: boolean;
  notes: string[];
  unknownPeers: number;
  /** The agent's own memory (process.memoryUsage()): where growth is, JS heap or native. */
  memory?: { rssBytes: number; heapUsedBytes: number; heapTotalBytes: number; externalBytes: number; arrayBuffersBytes: number };
  vms: VmStatus[];
}

interface Session {
  stream: Duplex;
  peer: string;
  hello?: HelloMessage;
  closed: boolean;
}

class VmState {
  migrator?: VmMigrator;
  /** Connections that have not said a valid hello yet (they evict nobody). */
  readonly pending = new Set<Session>();
  /** Per VM, not per connection: reconnecting does not buy a fresh allowance. */
  readonly flood: TokenBucket;
  readonly beats: TokenBucket;
  /** Decisions accepted and not yet answered (running or queued). */
  inFlight = 0;
  private chain: Promise<unknown> = Promise.resolve();
  qemu?: QemuTarget;
  local?: LocalProcessTranslator;
  state: VmStatus['state'] = 'attaching';
  lastError?: string;
  session?: Session;
  counters = { decisions: 0, throttled: 0, protocolErrors: 0, refusedConnections: 0 };
  reattachTimer?: NodeJS.Timeout;
  /** Sample source of the last guest that said hello (kept after it disconnects). */
  lastSource?: string;
  /** Guest-declared RAM pages outside the host's view of the VM (should be 0). */
  ramMismatchPages = 0;
  /** Last attach error already logged (log once per distinct error, not every retry). */
  loggedError?: string;
  /** The process and RAM files (dev:inode) of the last attachment the agent accepted. They
   *  stay this VM's claim in every state (gone, error, re-attaching) until another
   *  attachment of this VM is accepted: a VM that is briefly away does not free its RAM
   *  file for someone else's QEMU to map. */
  owned?: { pid: number; files: Set<string> };
  constructor(
    readonly cfg: VmConfig,
    limits: HostConfig['limits'],
  ) {
    this.flood = new TokenBucket(limits.maxDecisionsPerSec);
    this.beats = new TokenBucket(limits.maxHeartbeatsPerSec);
  }

  /** Runs `fn` after everything queued before it for this VM: decisions, placement
   *  refreshes and re-targets never overlap on the migrator's shared buffers. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => {});
    return run;
  }
}

export interface HostServerOptions {
  config: HostConfig;
  /** The move_pages seam (tests inject faults here). */
  movePages?: MovePagesFn;
  /** With an injected movePages: how to tell the target process is gone (default: /proc
   *  with the real syscall, never with an injected one). */
  processGone?: (pid: number) => boolean;
  topology?: NumaTopology;
  /** Retry interval while a VM's QEMU is not reachable. */
  reattachMs?: number;
  /** How often QEMU's memory layout is re-read to catch hotplug (0 = events only). */
  layoutPollMs?: number;
  /** The listen function (default: transport/listen). Tests stand in for AF_VSOCK here,
   *  which must not be opened on the development machines. */
  listen?: typeof transportListen;
  log?: (line: string) => void;
}

export interface HostServerEvents {
  /** A VM's target was attached (layout known, placement read from the kernel). */
  ready: [name: string];
  report: [name: string, report: MigrationReport];
  'connection-closed': [name: string | undefined, reason: string];
}

export class HostServer extends EventEmitter<HostServerEvents> {
  readonly config: HostConfig;
  readonly dramNodes: number[];
  readonly cxlNodes: number[];
  readonly nodeSplit: string;
  private readonly vms = new Map<string, VmState>();
  private readonly byCid = new Map<number, VmState>();
  private readonly servers: TransportServer[] = [];
  private readonly pool?: SharedPool;
  private readonly rate: TokenBucket;
  private readonly movePagesFn?: MovePagesFn;
  private readonly processGoneFn?: (pid: number) => boolean;
  private readonly reattachMs: number;
  private readonly layoutPollMs: number;
  private readonly listenFn: typeof transportListen;
  private readonly log: (line: string) => void;
  private unknownPeers = 0;
  private stopped = false;
  readonly startedAt = new Date().toISOString();

  constructor(o: HostServerOptions) {
    super();
    this.config = o.config;
    if (o.config.dramNodes && o.config.cxlNodes) {
      // A node that does not exist would turn every move into an error (or, for CXL, make
      // demotion silently impossible): refused at load, naming the nodes that do exist.
      const topology = o.topology ?? readNumaTopology();
      const present = new Set(topology.nodes.map((n) => n.id));
      if (present.size > 0) {
        for (const [what, list] of [['dramNodes', o.config.dramNodes], ['cxlNodes', o.config.cxlNodes]] as const) {
          const missing = list.filter((n) => !present.has(n));
          if (missing.length > 0) throw new InputError(`${what}: node ${missing.join(',')} does not exist on this host (nodes: ${[...present].sort((a, b) => a - b).join(',')})`);
        }
      }
      this.dramNodes = o.config.dramNodes;
      this.cxlNodes = o.config.cxlNodes;
      this.nodeSplit = 'config';
    } else {
      const split = defaultTierNodes(o.topology ?? readNumaTopology());
      this.dramNodes = split.dramNodes;
      this.cxlNodes = split.cxlNodes;
      this.nodeSplit = split.how;
    }
    this.pool = o.config.dramPoolPages !== undefined ? new SharedPool(o.config.dramPoolPages) : undefined;
    this.rate = new TokenBucket(o.config.migrationBytesPerSec);
    this.movePagesFn = o.movePages;
    this.processGoneFn = o.processGone;
    this.reattachMs = o.reattachMs ?? 2000;
    this.layoutPollMs = o.layoutPollMs ?? 5000;
    this.listenFn = o.listen ?? transportListen;
    // Every line is escaped at the source, whatever it carries (QMP error descriptions,
    // memory-region names, guest strings): one event is one line, and no escape sequence
    // reaches a terminal. Escaping twice changes nothing, so sinks may escape again.
    const sink = o.log ?? (() => {});
    this.log = (line) => sink(safeText(line, 4096));
    for (const cfg of o.config.vms) {
      const vm = new VmState(cfg, o.config.limits);
      this.vms.set(cfg.name, vm);
      if (cfg.identity.kind === 'vsock') this.byCid.set(cfg.identity.cid, vm);
    }
  }

  get crossNodeMoves(): boolean {
    return this.dramNodes.length > 0 && this.cxlNodes.length > 0;
  }

  /** Attaches every VM's target (retrying in the background when QEMU is not up yet) and
   *  opens the listeners. Resolves once listening. */
  async start(): Promise<void> {
    for (const vm of this.vms.values()) void this.attach(vm);
    for (const vm of this.vms.values()) {
      const id = vm.cfg.identity;
      if (id.kind === 'listen') {
        const server = await this.listenFn(id.spec);
        server.on('connection', (stream: Duplex, peer: PeerIdentity) => this.accept(vm, stream, describePeer(peer)));
        server.on('error', (err: Error) => this.log(`${vm.cfg.name}: listener error: ${err.message}`));
        this.servers.push(server);
      } else if (id.kind === 'serial') {
        void this.serialLoop(vm, id.path, 0);
      }
    }
    if (this.config.vsockListen) {
      const server = await this.listenFn(this.config.vsockListen);
      server.on('connection', (stream: Duplex, peer: PeerIdentity) => {
        const vm = peer.cid !== undefined ? this.byCid.get(peer.cid) : undefined;
        if (!vm) {
          this.unknownPeers++;
          this.log(`dropped connection from unknown vsock CID ${peer.cid}`);
          stream.on('error', () => {});
          stream.destroy();
          return;
        }
        this.accept(vm, stream, describePeer(peer));
      });
      this.servers.push(server);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.servers) s.close();
    for (const vm of this.vms.values()) {
      clearTimeout(vm.reattachTimer);
      vm.session?.stream.destroy();
      for (const p of vm.pending) p.stream.destroy();
      vm.qemu?.detach();
      vm.migrator?.detach();
    }
  }

  /** Waits until `name` is attached (tests, `host run` startup). */
  whenReady(name: string, timeoutMs = 60_000): Promise<void> {
    const vm = this.vms.get(name);
    if (!vm) return Promise.reject(new Error(`no VM named ${name}`));
    if (vm.state === 'ready') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name}: not attached within ${timeoutMs} ms (${vm.lastError ?? 'no error'})`)), timeoutMs);
      const onReady = (n: string) => {
        if (n !== name) return;
        clearTimeout(timer);
        this.off('ready', onReady);
        resolve();
      };
      this.on('ready', onReady);
    });
  }

  private budgetFor(vm: VmState): DramBudget {
    if (vm.cfg.dramBudgetPages !== undefined) return new FixedBudget(vm.cfg.dramBudgetPages);
    return this.pool!;
  }

  private async attach(vm: VmState): Promise<void> {
    if (this.stopped) return;
    clearTimeout(vm.reattachTimer);
    vm.state = 'attaching';
    try {
      const target = vm.cfg.target;
      let pid: number;
      let translator;
      if (target.kind === 'qemu') {
        // The pid claim first, whatever QMP will say: a pid two pidfiles name is refused for
        // both VMs, in whichever order they attach.
        this.checkClaims(vm, readPidfile(target.pidfile), new Set());
        vm.qemu ??= this.newQemu(vm, target.qmpPath, target.pidfile);
        const a = await vm.qemu.attach();
        if (this.stopped) {
          // Stopped while QMP answered: an attachment made now would hold QEMU's QMP socket
          // (one client at a time) for ever.
          vm.qemu.detach();
          return;
        }
        pid = a.pid;
        translator = a.translator;
        const files = ramFiles(a.layout.ranges);
        try {
          this.checkClaims(vm, pid, files);
        } catch (err) {
          vm.qemu.detach();
          throw err;
        }
        vm.owned = { pid, files };
      } else {
        pid = target.pid ?? readPidfile(target.pidfile!);
        if (pid === process.pid) throw new Error(`pid ${pid} is this agent itself: refusing`);
        this.checkClaims(vm, pid, new Set());
        vm.owned = { pid, files: new Set() };
        vm.local = new LocalProcessTranslator(pid);
        vm.local.rebuild();
        translator = vm.local;
      }
      if (vm.migrator) {
        const m = vm.migrator;
        await vm.serial(() => m.refreshPlacement({ pid, translator }));
        m.stats.lastError = undefined;
      } else {
        vm.migrator = new VmMigrator({
          name: vm.cfg.name,
          pid,
          translator,
          dramNodes: this.dramNodes,
          cxlNodes: this.cxlNodes,
          budget: this.budgetFor(vm),
          rateLimiter: this.rate,
          movePages: this.movePagesFn,
          processGone: this.processGoneFn,
          maxPagesPerDecision: this.config.limits.maxPagesPerDecision,
        });
        vm.migrator.on('gone', (err) => {
          vm.state = 'gone';
          vm.lastError = err.message;
          this.log(err.message);
          this.scheduleReattach(vm);
        });
        const m = vm.migrator;
        await vm.serial(() => m.refreshPlacement());
      }
      vm.state = 'ready';
      vm.lastError = undefined;
      vm.loggedError = undefined;
      this.log(`${vm.cfg.name}: attached (pid ${pid}, ${vm.migrator.totalPages} pages, ${vm.migrator.dramPages} on DRAM, ${vm.migrator.cxlPages} on CXL)`);
      this.sendBudgets();
      this.emit('ready', vm.cfg.name);
    } catch (err) {
      vm.state = (vm.state as VmStatus['state']) === 'gone' ? 'gone' : 'error';
      vm.lastError = (err as Error).message;
      if (vm.loggedError !== vm.lastError) {
        vm.loggedError = vm.lastError;
        this.log(`${vm.cfg.name}: not attached: ${vm.lastError} (retrying every ${this.reattachMs} ms)`);
      }
      this.scheduleReattach(vm);
    }
  }

  /** Which pids and RAM files a VM stands for, in whatever state it is: the process and
   *  files of its last accepted attachment (while that process lives), and the pid its
   *  pidfile names now (read safely; unreadable = no claim). */
  private claimsOf(vm: VmState): { pids: Set<number>; files: Set<string> } {
    const pids = new Set<number>();
    const files = new Set<string>();
    if (vm.owned) {
      if (!processGone(vm.owned.pid)) pids.add(vm.owned.pid);
      for (const f of vm.owned.files) files.add(f);
    }
    const t = vm.cfg.target;
    if (t.kind === 'local' && t.pid !== undefined) pids.add(t.pid);
    if (t.pidfile) {
      try {
        pids.add(readPidfile(t.pidfile));
      } catch {
        /* no claim */
      }
    }
    return { pids, files };
  }

  /** The files the process a VM's pidfile names maps now (a QEMU that has not been
   *  accepted yet still claims what it maps). */
  private liveFiles(vm: VmState): Set<string> {
    const t = vm.cfg.target;
    if (t.kind !== 'qemu') return new Set();
    try {
      return mappedFiles(readProcMaps(readPidfile(t.pidfile)));
    } catch {
      return new Set();
    }
  }

  /** Refuses a pid or a RAM file that another VM also claims. A pid named by two VMs is
   *  refused for both (the agent cannot tell which pidfile lies). A RAM file another VM
   *  was accepted with first stays that VM's: only the newcomer is refused (a QEMU that
   *  remaps a neighbour's RAM file cannot take it, nor stop the neighbour's service). A
   *  file neither VM was accepted with but both processes map is refused to each of them
   *  when it tries. Runs at attach, on every layout poll and before each decision. */
  private checkClaims(vm: VmState, pid: number, files: Set<string>): void {
    for (const other of this.vms.values()) {
      if (other === vm) continue;
      const claims = this.claimsOf(other);
      if (claims.pids.has(pid)) {
        const reason = `pid ${pid} is claimed by both ${vm.cfg.name} and ${other.cfg.name}: refusing both`;
        if (other.state === 'ready') this.refuse(other, reason);
        throw new Error(reason);
      }
      let live: Set<string> | undefined;
      for (const f of files) {
        const mine = vm.owned?.files.has(f) ?? false;
        if (claims.files.has(f)) {
          if (!mine) throw new Error(`RAM file ${f} (dev:inode) belongs to ${other.cfg.name}, which was attached with it first: refusing ${vm.cfg.name}`);
          const reason = `RAM file ${f} (dev:inode) is claimed by both ${vm.cfg.name} and ${other.cfg.name}: refusing both`;
          if (other.state === 'ready') this.refuse(other, reason);
          throw new Error(reason);
        }
        if (mine) continue;
        live ??= this.liveFiles(other);
        if (live.has(f)) throw new Error(`RAM file ${f} (dev:inode) is mapped for both ${vm.cfg.name} and ${other.cfg.name}, and neither held it first: refusing ${vm.cfg.name}`);
      }
    }
  }

  /** Before a decision's moves (and after them): the accepted layout still maps the same
   *  RAM files at the same addresses, and no other VM claims this VM's pid or files.
   *  Returns why not, or undefined ('gone' processes are left to the migrator). */
  private ownershipProblem(vm: VmState, pid: number): string | undefined {
    if (!vm.qemu) return undefined;
    const drift = vm.qemu.checkMappings();
    if (drift === 'gone') return undefined;
    if (drift) return `RAM mapping changed under the accepted layout (${drift}): refusing until it is re-read and re-checked`;
    try {
      this.checkClaims(vm, pid, vm.owned?.files ?? new Set());
    } catch (err) {
      return (err as Error).message;
    }
    return undefined;
  }

  /** Stops serving an attached VM's target (its decisions are answered "not attached"). */
  private refuse(vm: VmState, reason: string): void {
    vm.state = 'error';
    vm.lastError = reason;
    vm.qemu?.detach();
    this.log(`${vm.cfg.name}: ${reason}`);
    this.scheduleReattach(vm);
  }

  private newQemu(vm: VmState, qmpPath: string, pidfile: string): QemuTarget {
    const q = new QemuTarget(qmpPath, pidfile, 10_000, this.layoutPollMs);
    q.on('layout', (a) => {
      const files = ramFiles(a.layout.ranges);
      try {
        this.checkClaims(vm, a.pid, files);
      } catch (err) {
        this.refuse(vm, (err as Error).message);
        return;
      }
      vm.owned = { pid: a.pid, files };
      const m = vm.migrator;
      if (m) void vm.serial(() => m.refreshPlacement({ pid: a.pid, translator: a.translator })).catch(() => {});
      this.log(`${vm.cfg.name}: memory layout changed, ${a.layout.ranges.length} RAM ranges`);
    });
    // Every poll re-checks ownership, even when the layout did not change.
    q.on('checked', (a) => {
      if (vm.state !== 'ready') return;
      try {
        this.checkClaims(vm, a.pid, ramFiles(a.layout.ranges));
      } catch (err) {
        this.refuse(vm, (err as Error).message);
      }
    });
    q.on('invalid', (err) => {
      if (vm.state === 'ready') this.refuse(vm, `memory layout no longer readable (${err.message}): refusing until it is`);
    });
    q.on('exit', () => {
      vm.state = 'gone';
      vm.lastError = 'QEMU exited (QMP closed); waiting for it to come back';
      this.log(`${vm.cfg.name}: ${vm.lastError}`);
      this.scheduleReattach(vm);
    });
    return q;
  }

  private scheduleReattach(vm: VmState): void {
    if (this.stopped) return;
    clearTimeout(vm.reattachTimer);
    vm.reattachTimer = setTimeout(() => void this.attach(vm), this.reattachMs);
    vm.reattachTimer.unref();
  }

  private async serialLoop(vm: VmState, path: string, attempt: number): Promise<void> {
    if (this.stopped) return;
    try {
      const stream = await transportConnect({ kind: 'unix', path });
      this.accept(vm, stream, `serial:${path}`);
      stream.once('close', () => setTimeout(() => void this.serialLoop(vm, path, 0), 500).unref());
    } catch {
      const delay = Math.min(10_000, 250 * 2 ** Math.min(attempt, 6));
      setTimeout(() => void this.serialLoop(vm, path, attempt + 1), delay).unref();
    }
  }

  private sendBudgets(): void {
    for (const vm of this.vms.values()) {
      if (vm.session?.hello && vm.migrator) this.send(vm, vm.session, { type: 'budget', dramBudgetPages: vm.migrator.budget.grantPages(vm.migrator) });
    }
  }

  private send(vm: VmState, s: Session, msg: Message): void {
    if (s.closed || s.stream.destroyed) return;
    if (s.stream.writableLength > MAX_WRITE_BACKLOG) {
      this.closeSession(vm, s, 'guest does not read its reports');
      return;
    }
    s.stream.write(encodeMessage(msg, { maxFrameBytes: Math.max(this.config.limits.maxFrameBytes, 1 << 20) }));
  }

  private closeSession(vm: VmState | undefined, s: Session, reason: string, error?: { code: string; message: string }): void {
    if (s.closed) return;
    if (error && vm) this.send(vm, s, { type: 'error', code: error.code, message: error.message.slice(0, 1024) });
    s.closed = true;
    s.stream.end();
    const t = setTimeout(() => s.stream.destroy(), 200);
    t.unref();
    if (vm && vm.session === s) vm.session = undefined;
    vm?.pending.delete(s);
    this.log(`${vm?.cfg.name ?? '?'}: connection ${s.peer} closed: ${safeText(reason, 256)}`);
    this.emit('connection-closed', vm?.cfg.name, reason);
  }

  /** A connection whose identity the transport established as `vm`. It evicts the VM's
   *  established connection only once it has said a valid hello. */
  private accept(vm: VmState, stream: Duplex, peer: string): void {
    const s: Session = { stream, peer: safeText(peer, 128), closed: false };
    // First of all: a peer gone mid-write (EPIPE) must never become an unhandled 'error'.
    stream.on('error', () => {});
    const limits = this.config.limits;
    if (vm.pending.size >= MAX_PENDING_SESSIONS) {
      vm.counters.refusedConnections++;
      this.closeSession(vm, s, `${MAX_PENDING_SESSIONS} connections already waiting for their hello`, { code: 'busy', message: 'too many connections waiting for hello' });
      return;
    }
    vm.pending.add(s);
    const decoder = new FrameDecoder({ from: 'guest', maxFrameBytes: limits.maxFrameBytes });
    let partialTimer: NodeJS.Timeout | undefined;
    let errors = 0;
    // Throttles that count towards closing this connection, over a sliding 10 s window: a
    // guest at its rate limit is throttled now and then by timer jitter, and over hours a
    // lifetime count closed it as a flooder (losing the decisions it had in flight).
    let throttledHere = 0;
    let throttleWindowStart = performance.now();
    const helloTimer = setTimeout(() => this.closeSession(vm, s, 'no hello', { code: 'hello-timeout', message: `no hello within ${limits.helloTimeoutMs} ms` }), limits.helloTimeoutMs);
    helloTimer.unref();

    /** A dropped message. `guestFault` false: dropped because the agent is still busy with
     *  this VM's earlier decisions, which is no reason to close the guest. */
    const throttle = (what: string, guestFault = true): void => {
      vm.counters.throttled++;
      if (vm.counters.throttled % 16 === 1) this.send(vm, s, { type: 'error', code: 'throttled', message: what });
      if (!guestFault) return;
      const now = performance.now();
      if (now - throttleWindowStart > THROTTLE_WINDOW_MS) {
        throttleWindowStart = now;
        throttledHere = 0;
      }
      if (++throttledHere > limits.maxThrottledBeforeClose) this.closeSession(vm, s, 'flood', { code: 'flood', message: 'too many messages; closing' });
    };

    const onHello = (msg: HelloMessage): void => {
      if (msg.protocolVersion !== PROTOCOL_VERSION) {
        this.closeSession(vm, s, 'protocol version', { code: 'unsupported-version', message: `protocol version ${msg.protocolVersion} unsupported (host speaks ${PROTOCOL_VERSION})` });
        return;
      }
      if (msg.vmName !== undefined && msg.vmName !== vm.cfg.name) {
        vm.counters.refusedConnections++;
        this.closeSession(vm, s, `hello claims VM "${safeText(msg.vmName, 64)}"`, {
          code: 'identity-mismatch',
          message: `this connection belongs to VM "${vm.cfg.name}" (by transport identity), not "${msg.vmName.slice(0, 64)}"`,
        });
        return;
      }
      clearTimeout(helloTimer);
      vm.pending.delete(s);
      const old = vm.session;
      if (old && !old.closed) {
        // The guest agent restarted (or someone else holds this VM's socket): the newcomer
        // proved itself with a valid hello, so it takes over; say so in the log.
        this.closeSession(vm, old, `replaced by ${s.peer}, which said a valid hello`);
        this.log(`${vm.cfg.name}: connection ${old.peer} evicted by ${s.peer} (valid hello, source ${safeText(msg.source, 32)})`);
      }
      vm.session = s;
      s.hello = msg;
      vm.lastSource = safeText(msg.source, 32);
      const table = vm.qemu?.attachment?.translator.table;
      vm.ramMismatchPages = table ? pagesOutside(table, msg.ramRanges) : 0;
      if (vm.ramMismatchPages > 0) {
        this.log(`${vm.cfg.name}: the guest declares ${vm.ramMismatchPages} pages of RAM that QEMU's layout does not have (wrong VM on this socket, or a stale layout?)`);
      }
      this.send(vm, s, { type: 'welcome', protocolVersion: PROTOCOL_VERSION, agentVersion: AGENT_VERSION, vmName: vm.cfg.name });
      if (vm.migrator) this.send(vm, s, { type: 'budget', dramBudgetPages: vm.migrator.budget.grantPages(vm.migrator) });
    };

    const onMessage = (msg: Message): void => {
      if (!s.hello) {
        if (msg.type !== 'hello') {
          this.closeSession(vm, s, 'message before hello', { code: 'hello-first', message: 'the first message must be hello' });
          return;
        }
        onHello(msg);
        return;
      }
      switch (msg.type) {
        case 'decisions':
          // Per VM: one decision running and one queued at most, whatever the connection.
          if (vm.flood.take(1, 1) < 1) {
            throttle(`decisions dropped: more than ${limits.maxDecisionsPerSec}/s`);
            return;
          }
          if (vm.inFlight >= MAX_DECISIONS_IN_FLIGHT) {
            throttle('decisions dropped: the previous ones are still in progress', false);
            return;
          }
          vm.counters.decisions++;
          vm.inFlight++;
          void vm
            .serial(() => this.decide(vm, msg))
            .then(
              (report) => this.send(vm, s, report),
              (err: Error) => this.send(vm, s, { type: 'error', code: 'internal', message: err.message.slice(0, 1024) }),
            )
            .finally(() => vm.inFlight--);
          return;
        case 'heartbeat':
          if (vm.beats.take(1, 1) < 1) {
            throttle(`heartbeats dropped: more than ${limits.maxHeartbeatsPerSec}/s`);
            return;
          }
          this.send(vm, s, { type: 'heartbeat', seq: msg.seq, tMs: Math.floor(performance.now()) });
          return;
        case 'error':
          if (vm.beats.take(1, 1) < 1) return;
          this.log(`${vm.cfg.name}: guest error ${safeText(msg.code, 64)}: ${safeText(msg.message, 256)}`);
          return;
        case 'hello':
          this.closeSession(vm, s, 'second hello', { code: 'invalid-field', message: 'hello may be sent once per connection' });
          return;
        default:
          return;
      }
    };

    stream.on('data', (chunk: Buffer) => {
      if (s.closed) return;
      for (const result of decoder.push(chunk)) {
        if (s.closed) return;
        if (result.ok) {
          onMessage(result.message);
          continue;
        }
        vm.counters.protocolErrors++;
        errors++;
        if (result.error.code === 'frame-too-large') {
          this.closeSession(vm, s, result.error.message, { code: result.error.code, message: result.error.message });
          return;
        }
        this.send(vm, s, { type: 'error', code: result.error.code, message: result.error.message.slice(0, 1024) });
        if (!s.hello || errors >= limits.maxProtocolErrors) {
          this.closeSession(vm, s, `protocol errors (${result.error.code})`);
          return;
        }
      }
      // A sender holding half a frame is given readTimeoutMs to finish it.
      if (decoder.idle) {
        clearTimeout(partialTimer);
        partialTimer = undefined;
      } else if (!partialTimer) {
        partialTimer = setTimeout(() => this.closeSession(vm, s, 'partial frame timeout', { code: 'read-timeout', message: `frame not completed within ${limits.readTimeoutMs} ms` }), limits.readTimeoutMs);
        partialTimer.unref();
      }
    });
    stream.on('error', () => {});
    stream.on('close', () => {
      clearTimeout(helloTimer);
      clearTimeout(partialTimer);
      vm.pending.delete(s);
      if (!s.closed) {
        s.closed = true;
        if (vm.session === s) vm.session = undefined;
        this.emit('connection-closed', vm.cfg.name, 'peer closed');
      }
    });
  }

  private notAttachedReport(vm: VmState, msg: DecisionsMessage): ReportMessage {
    const m = vm.migrator;
    const pages = (r: PageRuns) => {
      let n = 0;
      for (let i = 0; i < r.count; i++) n += r.pages[i];
      return n;
    };
    const outcome = (n: number) => ({ tried: 0, moved: 0, failed: { ENOENT: 0, EBUSY: 0, ENOMEM: 0, EACCES: 0, other: n } });
    return {
      type: 'report',
      epoch: msg.epoch,
      promote: outcome(pages(msg.promote)),
      demote: outcome(pages(msg.demote)),
      dramPages: m?.dramPages ?? 0,
      cxlPages: m?.cxlPages ?? 0,
      promoted: emptyRuns(0),
      demoted: emptyRuns(0),
      crossNodeMoves: this.crossNodeMoves,
      notes: [`${vm.cfg.name} not attached (${vm.state}): ${(vm.lastError ?? 'waiting for QEMU').slice(0, 900)}`],
    };
  }

  private async decide(vm: VmState, msg: DecisionsMessage): Promise<ReportMessage> {
    const m = vm.migrator;
    if (!m || vm.state !== 'ready') return this.notAttachedReport(vm, msg);
    const before = this.ownershipProblem(vm, m.pid);
    if (before) {
      this.refuse(vm, before);
      return this.notAttachedReport(vm, msg);
    }
    if (vm.local) {
      // Frames move when pages move: re-read the process's pagemap before each round.
      vm.local.rebuild();
      await m.refreshPlacement({ pid: m.pid, translator: vm.local });
    }
    const r = await m.apply(msg.epoch, msg.promote, msg.demote);
    // A remap during the moves: the pages moved may not have been this VM's, and where they
    // are now is not this guest's to know.
    const after = m.gone ? undefined : this.ownershipProblem(vm, m.pid);
    if (after) {
      this.refuse(vm, after);
      return this.notAttachedReport(vm, msg);
    }
    this.emit('report', vm.cfg.name, r);
    return toReportMessage(r);
  }

  status(): HostStatus {
    const vms: VmStatus[] = [];
    for (const vm of this.vms.values()) {
      const m = vm.migrator;
      const rates = m?.rates() ?? { promotedBytesPerSec: 0, demotedBytesPerSec: 0 };
      const failures = m ? { ...m.stats.failures } : (Object.fromEntries(MOVE_FAILURES.map((f) => [f, 0])) as Record<MoveFailure, number>);
      vms.push({
        name: vm.cfg.name,
        connected: Boolean(vm.session && !vm.session.closed && vm.session.hello),
        peer: vm.session?.peer,
        source: vm.session?.hello?.source ?? vm.lastSource,
        target: vm.cfg.target.kind,
        state: vm.state,
        pid: m?.pid,
        lastError: vm.lastError ?? m?.stats.lastError,
        totalPages: m?.totalPages ?? 0,
        dramPages: m?.dramPages ?? 0,
        cxlPages: m?.cxlPages ?? 0,
        dramBudgetPages: m ? m.budget.grantPages(m) : vm.cfg.dramBudgetPages ?? 0,
        promotedBytesPerSec: rates.promotedBytesPerSec,
        demotedBytesPerSec: rates.demotedBytesPerSec,
        promotedPages: m?.stats.promotedPages ?? 0,
        demotedPages: m?.stats.demotedPages ?? 0,
        failures,
        ...vm.counters,
        retryPending: m?.retryPending ?? 0,
        ramMismatchPages: vm.ramMismatchPages,
        moveCalls: m?.stats.moveCalls ?? 0,
        queryCalls: m?.stats.queryCalls ?? 0,
        refusedRuns: m?.stats.refusedRuns ?? 0,
        moveLatency: m ? { ...m.stats.moveLatency, buckets: [...m.stats.moveLatency.buckets] } : { buckets: MOVE_LATENCY_BUCKETS_S.map(() => 0), sumSeconds: 0, count: 0 },
        crossNodeMoves: this.crossNodeMoves,
      });
    }
    const notes: string[] = [];
    if (!this.crossNodeMoves) notes.push(this.dramNodes.length + this.cxlNodes.length <= 1 ? 'single NUMA node: cross-node moves not possible here' : 'no CXL node: demotions not possible');
    return {
      pid: process.pid,
      version: AGENT_VERSION,
      nodeVersion: process.versions.node,
      startedAt: this.startedAt,
      dramNodes: this.dramNodes,
      cxlNodes: this.cxlNodes,
      nodeSplit: this.nodeSplit,
      crossNodeMoves: this.crossNodeMoves,
      notes,
      unknownPeers: this.unknownPeers,
      memory: memoryNow(),
      vms,
    };
  }
}

function memoryNow(): NonNullable<HostStatus['memory']> {
  const m = process.memoryUsage();
  return { rssBytes: m.rss, heapUsedBytes: m.heapUsed, heapTotalBytes: m.heapTotal, externalBytes: m.external, arrayBuffersBytes: m.arrayBuffers };
}

/** The files (dev:inode) backing a VM's RAM ranges. */
function ramFiles(ranges: Array<{ file?: string }>): Set<string> {
  const out = new Set<string>();
  for (const r of ranges) if (r.file && !isAnonymousFile(r.file)) out.add(r.file);
  return out;
}

function describePeer(peer: PeerIdentity): string {
  if (peer.cid !== undefined) return `vsock cid ${peer.cid}`;
  if (peer.pid !== undefined) return `${peer.via} (pid ${peer.pid})`;
  return peer.remoteAddress ? `${peer.via} from ${peer.remoteAddress}` : peer.via;
}

function capRuns(r: PageRuns): PageRuns {
  return r.count <= MAX_REPORT_RUNS ? r : { count: MAX_REPORT_RUNS, gpaPfn: r.gpaPfn.subarray(0, MAX_REPORT_RUNS), pages: r.pages.subarray(0, MAX_REPORT_RUNS) };
}

/** The protocol's report: move_pages reasons as they are; host-side refusals (budget,
 *  rate limit, outside RAM, no target node, VM gone) under "other", itemised in notes. */
export function toReportMessage(r: MigrationReport): ReportMessage {
  const direction = (d: MigrationReport['promote']) => ({
    tried: d.tried,
    moved: d.moved,
    failed: {
      ENOENT: d.failed.ENOENT,
      EBUSY: d.failed.EBUSY,
      ENOMEM: d.failed.ENOMEM,
      EACCES: d.failed.EACCES,
      other: d.failed.other + d.failed.budget + d.failed['rate-limited'] + d.failed['outside-ram'] + d.failed['no-target-node'] + d.failed['vm-gone'],
    },
    already: d.already,
    refused: Object.fromEntries(HOST_REFUSALS.map((f) => [f, d.failed[f]])) as Record<HostRefusal, number>,
  });
  const notes = [...r.notes];
  const host: string[] = [];
  for (const f of ['budget', 'rate-limited', 'outside-ram', 'no-target-node', 'vm-gone'] as const) {
    const n = r.promote.failed[f] + r.demote.failed[f];
    if (n > 0) host.push(`${f} ${n}`);
  }
  if (host.length > 0) notes.push(`not moved (host): ${host.join(', ')}`);
  if (r.promote.already + r.demote.already > 0) notes.push(`already on target tier: promote ${r.promote.already}, demote ${r.demote.already}`);
  if ([r.promoted, r.demoted, r.alreadyDram, r.alreadyCxl].some((runs) => runs.count > MAX_REPORT_RUNS)) notes.push('moved run lists truncated');
  return {
    type: 'report',
    epoch: r.epoch,
    promote: direction(r.promote),
    demote: direction(r.demote),
    dramPages: r.dramPages,
    cxlPages: r.cxlPages,
    promoted: capRuns(r.promoted),
    demoted: capRuns(r.demoted),
    alreadyDram: capRuns(r.alreadyDram),
    alreadyCxl: capRuns(r.alreadyCxl),
    crossNodeMoves: r.crossNodeMoves,
    notes: notes.slice(0, 16).map((n) => n.slice(0, 1024)),
  };
}
