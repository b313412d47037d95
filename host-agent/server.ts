// The host agent: serves the guest agents of the configured VMs. Identity comes from the
// transport (the vsock CID, or the socket that only one VM was given), never from the
// payload. Each VM's connection is isolated: a hostile or broken guest is throttled or
// disconnected without affecting the others. Decisions go to the VM's migrator; the
// report goes back to the guest.
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { FrameDecoder, encodeMessage, PROTOCOL_VERSION, type DecisionsMessage, type HelloMessage, type Message, type ReportMessage } from '../src/protocol/index.js';
import { emptyRuns, type PageRuns } from '../src/samples.js';
import type { MovePagesFn } from '../native/addon.js';
import { connect as transportConnect, listen as transportListen, type PeerIdentity, type TransportServer } from '../transport/index.js';
import type { HostConfig, VmConfig } from './config.js';
import { LocalProcessTranslator } from './local-target.js';
import { FixedBudget, SharedPool, TokenBucket, VmMigrator, MOVE_FAILURES, type DramBudget, type MigrationReport, type MoveFailure } from './migrator.js';
import { defaultTierNodes, readNumaTopology, type NumaTopology } from './numa.js';
import { QemuTarget } from './qemu-target.js';
import { readPidfile } from './layout.js';
import { pagesOutside } from './translate.js';

const AGENT_VERSION = process.env.npm_package_version ?? '0.1.0';
const MAX_REPORT_RUNS = 65_536;
/** A guest that does not read its reports is disconnected past this much queued output. */
const MAX_WRITE_BACKLOG = 4 * 1024 * 1024;

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
  crossNodeMoves: boolean;
}

export interface HostStatus {
  pid: number;
  startedAt: string;
  dramNodes: number[];
  cxlNodes: number[];
  nodeSplit: string;
  crossNodeMoves: boolean;
  notes: string[];
  unknownPeers: number;
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
  constructor(readonly cfg: VmConfig) {}
}

export interface HostServerOptions {
  config: HostConfig;
  /** The move_pages seam (tests inject faults here). */
  movePages?: MovePagesFn;
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
    this.reattachMs = o.reattachMs ?? 2000;
    this.layoutPollMs = o.layoutPollMs ?? 5000;
    this.listenFn = o.listen ?? transportListen;
    this.log = o.log ?? (() => {});
    for (const cfg of o.config.vms) {
      const vm = new VmState(cfg);
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
        vm.qemu ??= this.newQemu(vm, target.qmpPath, target.pidfile);
        const a = await vm.qemu.attach();
        pid = a.pid;
        translator = a.translator;
      } else {
        pid = target.pid ?? readPidfile(target.pidfile!);
        vm.local = new LocalProcessTranslator(pid);
        vm.local.rebuild();
        translator = vm.local;
      }
      if (vm.migrator) {
        await vm.migrator.refreshPlacement({ pid, translator });
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
          maxPagesPerDecision: this.config.limits.maxPagesPerDecision,
        });
        vm.migrator.on('gone', (err) => {
          vm.state = 'gone';
          vm.lastError = err.message;
          this.log(err.message);
          this.scheduleReattach(vm);
        });
        await vm.migrator.refreshPlacement();
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

  private newQemu(vm: VmState, qmpPath: string, pidfile: string): QemuTarget {
    const q = new QemuTarget(qmpPath, pidfile, 10_000, this.layoutPollMs);
    q.on('layout', (a) => {
      void vm.migrator?.refreshPlacement({ pid: a.pid, translator: a.translator }).catch(() => {});
      this.log(`${vm.cfg.name}: memory layout changed, ${a.layout.ranges.length} RAM ranges`);
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
    this.log(`${vm?.cfg.name ?? '?'}: connection ${s.peer} closed: ${reason}`);
    this.emit('connection-closed', vm?.cfg.name, reason);
  }

  /** A connection whose identity the transport established as `vm`. */
  private accept(vm: VmState, stream: Duplex, peer: string): void {
    if (vm.session && !vm.session.closed) {
      // The guest agent restarted: the newer connection wins.
      this.closeSession(vm, vm.session, 'replaced by a new connection');
    }
    const s: Session = { stream, peer, closed: false };
    vm.session = s;
    const limits = this.config.limits;
    const decoder = new FrameDecoder({ from: 'guest', maxFrameBytes: limits.maxFrameBytes });
    const flood = new TokenBucket(limits.maxDecisionsPerSec);
    let busy = false;
    let queued: DecisionsMessage | undefined;
    let partialTimer: NodeJS.Timeout | undefined;
    let errors = 0;
    const helloTimer = setTimeout(() => this.closeSession(vm, s, 'no hello', { code: 'hello-timeout', message: `no hello within ${limits.helloTimeoutMs} ms` }), limits.helloTimeoutMs);
    helloTimer.unref();

    const run = async (msg: DecisionsMessage): Promise<void> => {
      busy = true;
      try {
        const report = await this.decide(vm, msg);
        this.send(vm, s, report);
      } catch (err) {
        this.send(vm, s, { type: 'error', code: 'internal', message: (err as Error).message.slice(0, 1024) });
      }
      busy = false;
      if (queued && !s.closed) {
        const next = queued;
        queued = undefined;
        void run(next);
      }
    };

    const onMessage = (msg: Message): void => {
      if (!s.hello) {
        if (msg.type !== 'hello') {
          this.closeSession(vm, s, 'message before hello', { code: 'hello-first', message: 'the first message must be hello' });
          return;
        }
        if (msg.protocolVersion !== PROTOCOL_VERSION) {
          this.closeSession(vm, s, 'protocol version', { code: 'unsupported-version', message: `protocol version ${msg.protocolVersion} unsupported (host speaks ${PROTOCOL_VERSION})` });
          return;
        }
        if (msg.vmName !== undefined && msg.vmName !== vm.cfg.name) {
          vm.counters.refusedConnections++;
          this.closeSession(vm, s, `hello claims VM "${msg.vmName}"`, {
            code: 'identity-mismatch',
            message: `this connection belongs to VM "${vm.cfg.name}" (by transport identity), not "${msg.vmName.slice(0, 64)}"`,
          });
          return;
        }
        clearTimeout(helloTimer);
        s.hello = msg;
        vm.lastSource = msg.source;
        const table = vm.qemu?.attachment?.translator.table;
        vm.ramMismatchPages = table ? pagesOutside(table, msg.ramRanges) : 0;
        if (vm.ramMismatchPages > 0) {
          this.log(`${vm.cfg.name}: the guest declares ${vm.ramMismatchPages} pages of RAM that QEMU's layout does not have (wrong VM on this socket, or a stale layout?)`);
        }
        this.send(vm, s, { type: 'welcome', protocolVersion: PROTOCOL_VERSION, agentVersion: AGENT_VERSION, vmName: vm.cfg.name });
        if (vm.migrator) this.send(vm, s, { type: 'budget', dramBudgetPages: vm.migrator.budget.grantPages(vm.migrator) });
        return;
      }
      switch (msg.type) {
        case 'decisions':
          if (flood.take(1, 1) < 1 || (busy && queued)) {
            vm.counters.throttled++;
            if (vm.counters.throttled % 16 === 1) this.send(vm, s, { type: 'error', code: 'throttled', message: `decisions dropped: more than ${limits.maxDecisionsPerSec}/s or one still in progress` });
            if (++throttledHere > limits.maxThrottledBeforeClose) this.closeSession(vm, s, 'decision flood', { code: 'flood', message: 'too many decisions messages; closing' });
            return;
          }
          vm.counters.decisions++;
          if (busy) queued = msg;
          else void run(msg);
          return;
        case 'heartbeat':
          this.send(vm, s, { type: 'heartbeat', seq: msg.seq, tMs: Math.floor(performance.now()) });
          return;
        case 'error':
          this.log(`${vm.cfg.name}: guest error ${msg.code}: ${msg.message}`);
          return;
        case 'hello':
          this.closeSession(vm, s, 'second hello', { code: 'invalid-field', message: 'hello may be sent once per connection' });
          return;
        default:
          return;
      }
    };
    let throttledHere = 0;

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
      if (!s.closed) {
        s.closed = true;
        if (vm.session === s) vm.session = undefined;
        this.emit('connection-closed', vm.cfg.name, 'peer closed');
      }
    });
  }

  private async decide(vm: VmState, msg: DecisionsMessage): Promise<ReportMessage> {
    const m = vm.migrator;
    if (!m || vm.state !== 'ready') {
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
    if (vm.local) {
      // Frames move when pages move: re-read the process's pagemap before each round.
      vm.local.rebuild();
      await m.refreshPlacement({ pid: m.pid, translator: vm.local });
    }
    const r = await m.apply(msg.epoch, msg.promote, msg.demote);
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
        crossNodeMoves: this.crossNodeMoves,
      });
    }
    const notes: string[] = [];
    if (!this.crossNodeMoves) notes.push(this.dramNodes.length + this.cxlNodes.length <= 1 ? 'single NUMA node: cross-node moves not possible here' : 'no CXL node: demotions not possible');
    return {
      pid: process.pid,
      startedAt: this.startedAt,
      dramNodes: this.dramNodes,
      cxlNodes: this.cxlNodes,
      nodeSplit: this.nodeSplit,
      crossNodeMoves: this.crossNodeMoves,
      notes,
      unknownPeers: this.unknownPeers,
      vms,
    };
  }
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
