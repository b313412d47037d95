// The guest agent loop: samples -> classifier -> `decisions` frames -> host, and back:
// `budget` resizes the hot set, `report` tells the classifier what actually moved. The
// loop never waits for the host: while it is away the agent keeps sampling and
// classifying (decisions it cannot send are undone in the classifier, since nothing
// moved), and the transport reconnects with backoff. At most one decisions message is in
// flight: an epoch that ends while the host is still migrating the previous one is undone
// too, and proposed again (from fresher counts) once the report is in.
import { EventEmitter } from 'node:events';
import { Classifier, type ClassifierOptions, type EpochDecision } from '../src/classifier/index.js';
import {
  DEFAULT_LIMITS,
  FAILURE_REASONS,
  PAGE_SIZE,
  PROTOCOL_VERSION,
  type FailureReason,
  type Message,
  type ProtocolLimits,
  type ReportMessage,
} from '../src/protocol/index.js';
import { totalPages, type PageRuns, type PageSamples } from '../src/samples.js';
import { ReconnectingClient, type BackoffOptions } from '../transport/reconnect.js';
import type { TransportSpec } from '../transport/spec.js';
import type { GuestSampleSource } from './replay-source.js';

export const AGENT_VERSION = '0.1.0';

/** Classifier settings that follow from the sample source. A DAMON batch is one whole
 *  aggregation (every monitored region, weighted by its access count): counts are halved
 *  once per batch, an exponential average over aggregations, instead of every 2 M page
 *  samples (a rule for PEBS-like streams, which on DAMON halves mid-aggregation on a large
 *  guest and only every ~8 aggregations on a 1 GiB one: a moved hot set then took over 40 s
 *  to win back DRAM). */
export function classifierDefaultsFor(source: string): Omit<ClassifierOptions, 'dramBudgetPages' | 'ramRanges'> {
  return source === 'damon' ? { coolEachIngest: true, coolEverySamples: 0 } : {};
}

export interface GuestAgentOptions {
  connect: string | TransportSpec;
  source: GuestSampleSource;
  /** Sample source name sent in hello (damon, faults, pebs, ibs, replay). */
  sourceName: string;
  /** Guest RAM in page frames (/proc/iomem System RAM, or the trace header). */
  ramRanges: PageRuns;
  epochMs: number;
  /** DRAM pages to plan for until the host grants a budget; without it no decisions are made before the grant. */
  dramBudgetPages?: number;
  vmName?: string;
  backoff?: BackoffOptions;
  /** Heartbeat period while connected (default 1000 ms). */
  heartbeatMs?: number;
  /** Give up on a report after this long (the host may drop decisions it throttles); default 30 s. */
  reportTimeoutMs?: number;
  limits?: Partial<ProtocolLimits>;
  /** Extra classifier tunables (budget and RAM ranges come from above). */
  classifier?: Omit<ClassifierOptions, 'dramBudgetPages' | 'ramRanges'>;
}

export type HostState = 'connecting' | 'handshake' | 'connected' | 'reconnecting' | 'stopped';

export interface GuestStatus {
  epoch: number;
  host: HostState;
  hostVmName: string | null;
  /** Sample weight (reads + writes) per second over the last status interval. */
  samplesPerSec: number;
  samples: number;
  sampleRuns: number;
  hotPages: number;
  dramPagesPlanned: number;
  budgetPages: number | null;
  budgetFrom: 'host' | 'local' | 'none';
  decisionsSent: number;
  /** Epochs whose decisions could not be sent (host away); undone in the classifier. */
  decisionsUnsent: number;
  /** Epochs whose decisions waited on an earlier report; undone and proposed again later. */
  decisionsDeferred: number;
  /** Runs cut from a decision above the per-message run limit (proposed again later). */
  runsCut: number;
  /** Sent decisions that got no report in time, or that the host answered with an error. */
  decisionsLost: number;
  pagesRequested: { promote: number; demote: number };
  reports: number;
  moved: { promote: number; demote: number };
  failed: Record<FailureReason, number>;
  /** Host-reported placement of this VM, from the last report. */
  hostDramPages: number | null;
  hostCxlPages: number | null;
  crossNodeMoves: boolean | null;
  hostNotes: string[];
  hostErrors: number;
  lastHostError: string | null;
  connects: number;
}

interface InFlight {
  epoch: number;
  promote: PageRuns;
  demote: PageRuns;
  sentAtMs: number;
}

function sliceRuns(runs: PageRuns, start: number, end: number): PageRuns {
  const to = Math.min(end, runs.count);
  const from = Math.min(start, to);
  return { count: to - from, gpaPfn: runs.gpaPfn.slice(from, to), pages: runs.pages.slice(from, to) };
}

function ramPageCount(ram: PageRuns): number {
  return totalPages(ram);
}

export interface GuestAgentEvents {
  epoch: [decision: EpochDecision, sent: boolean];
  report: [report: ReportMessage];
  budget: [pages: number];
  connected: [];
  disconnected: [];
  'host-error': [message: Message & { type: 'error' }];
}

export class GuestAgent extends EventEmitter<GuestAgentEvents> {
  readonly classifier: Classifier;
  readonly client: ReconnectingClient;
  private readonly options: GuestAgentOptions;
  private readonly ramPages: number;
  private readonly maxRuns: number;
  private epochTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private heartbeatSeq = 0;
  private budgetPages: number | null;
  private budgetFrom: GuestStatus['budgetFrom'];
  private handshakeDone = false;
  private state: HostState = 'connecting';
  private hostVmName: string | null = null;
  private inFlight: InFlight | null = null;
  private readonly reportTimeoutMs: number;
  private lastDecision: EpochDecision | null = null;
  private samples = 0;
  private sampleRuns = 0;
  private rateWindow = { atMs: performance.now(), samples: 0, perSec: 0 };
  private readonly counts = {
    decisionsSent: 0,
    decisionsUnsent: 0,
    decisionsDeferred: 0,
    runsCut: 0,
    decisionsLost: 0,
    requestedPromote: 0,
    requestedDemote: 0,
    reports: 0,
    movedPromote: 0,
    movedDemote: 0,
    hostErrors: 0,
  };
  private readonly failed = Object.fromEntries(FAILURE_REASONS.map((r) => [r, 0])) as Record<FailureReason, number>;
  private lastReport: ReportMessage | null = null;
  private lastHostError: string | null = null;
  private running = false;

  constructor(options: GuestAgentOptions) {
    super();
    this.options = options;
    this.ramPages = ramPageCount(options.ramRanges);
    if (this.ramPages === 0) throw new TypeError('ramRanges: the guest has no RAM ranges');
    const maxRamRanges = options.limits?.maxRamRanges ?? DEFAULT_LIMITS.maxRamRanges;
    if (options.ramRanges.count > maxRamRanges) {
      throw new TypeError(`ramRanges: ${options.ramRanges.count} ranges exceed the protocol limit of ${maxRamRanges}`);
    }
    this.maxRuns = options.limits?.maxRunsPerList ?? DEFAULT_LIMITS.maxRunsPerList;
    this.reportTimeoutMs = options.reportTimeoutMs ?? 30_000;
    this.budgetPages = options.dramBudgetPages ?? null;
    this.budgetFrom = options.dramBudgetPages !== undefined ? 'local' : 'none';
    this.classifier = new Classifier({
      ...classifierDefaultsFor(options.sourceName),
      ...options.classifier,
      ramRanges: options.ramRanges,
      // Until a budget is known the classifier only ingests; decide() is not called.
      dramBudgetPages: this.clampBudget(options.dramBudgetPages ?? this.ramPages),
    });
    this.client = new ReconnectingClient(options.connect, { peerSide: 'host', limits: options.limits, ...options.backoff });
    this.client.on('connected', () => this.onConnected());
    this.client.on('disconnected', () => this.onDisconnected());
    this.client.on('reconnecting', () => {
      if (this.running) this.state = 'reconnecting';
    });
    this.client.on('message', (message) => this.onMessage(message));
    options.source.onBatch((_tNs, batch) => this.ingest(batch));
  }

  private clampBudget(pages: number): number {
    return Math.max(1, Math.min(this.ramPages, Math.floor(pages)));
  }

  start(): this {
    if (this.running) return this;
    this.running = true;
    this.client.start();
    this.epochTimer = setInterval(() => this.runEpoch(), this.options.epochMs);
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.options.heartbeatMs ?? 1000);
    return this;
  }

  private ingest(batch: PageSamples): void {
    this.classifier.ingest(batch);
    this.sampleRuns += batch.count;
    for (let i = 0; i < batch.count; i++) this.samples += batch.reads[i] + batch.writes[i];
  }

  private onConnected(): void {
    this.state = 'handshake';
    this.handshakeDone = false;
    const hello: Message = {
      type: 'hello',
      protocolVersion: PROTOCOL_VERSION,
      agentVersion: AGENT_VERSION,
      pageSize: PAGE_SIZE,
      ramRanges: this.options.ramRanges,
      source: this.options.sourceName,
      epochMs: this.options.epochMs,
      ...(this.options.vmName ? { vmName: this.options.vmName } : {}),
    };
    this.client.send(hello);
  }

  private onDisconnected(): void {
    this.handshakeDone = false;
    // A report for what was sent will not come on a new connection.
    this.loseInFlight();
    if (this.running) this.state = 'reconnecting';
    this.emit('disconnected');
  }

  private onMessage(message: Message): void {
    switch (message.type) {
      case 'welcome':
        this.handshakeDone = true;
        this.state = 'connected';
        this.hostVmName = message.vmName;
        this.emit('connected');
        break;
      case 'budget':
        this.budgetPages = message.dramBudgetPages;
        this.budgetFrom = 'host';
        this.classifier.setBudget(this.clampBudget(message.dramBudgetPages));
        this.emit('budget', message.dramBudgetPages);
        break;
      case 'report':
        this.applyReport(message);
        break;
      case 'error':
        this.counts.hostErrors++;
        this.lastHostError = `${message.code}: ${message.message}`;
        // The host refused or dropped something (e.g. a throttled decision): no report will come.
        this.loseInFlight();
        this.emit('host-error', message);
        break;
      default:
        break;
    }
  }

  private applyReport(report: ReportMessage): void {
    this.counts.reports++;
    this.lastReport = report;
    this.counts.movedPromote += report.promote.moved;
    this.counts.movedDemote += report.demote.moved;
    for (const reason of FAILURE_REASONS) this.failed[reason] += report.promote.failed[reason] + report.demote.failed[reason];
    if (this.inFlight && this.inFlight.epoch === report.epoch) {
      // decide() assumed every move happened: undo that, then record what the host moved.
      this.undo(this.inFlight.promote, this.inFlight.demote);
      this.inFlight = null;
    }
    this.classifier.setPlacement(report.promoted, 'dram');
    this.classifier.setPlacement(report.demoted, 'cxl');
    // Pages that were already where the decision wanted them: the classifier's guess about
    // their tier was wrong, and without this it would propose them again every epoch.
    if (report.alreadyDram) this.classifier.setPlacement(report.alreadyDram, 'dram');
    if (report.alreadyCxl) this.classifier.setPlacement(report.alreadyCxl, 'cxl');
    this.emit('report', report);
  }

  /** Tells the classifier that proposed moves did not happen. */
  private undo(promote: PageRuns, demote: PageRuns): void {
    if (promote.count > 0) this.classifier.setPlacement(promote, 'cxl');
    if (demote.count > 0) this.classifier.setPlacement(demote, 'dram');
  }

  /** The in-flight decision will get no report: assume nothing moved (a late report still
   *  records what did, since it lists the moved runs). */
  private loseInFlight(): void {
    if (!this.inFlight) return;
    this.undo(this.inFlight.promote, this.inFlight.demote);
    this.inFlight = null;
    this.counts.decisionsLost++;
  }

  /** One classifier epoch; public so a caller (or a test) can force one. */
  runEpoch(): EpochDecision | null {
    if (this.budgetPages === null) return null;
    if (this.inFlight && performance.now() - this.inFlight.sentAtMs > this.reportTimeoutMs) this.loseInFlight();
    const decision = this.classifier.decide();
    this.lastDecision = decision;
    const { promote, demote, epoch } = decision;
    if (promote.count === 0 && demote.count === 0) {
      this.emit('epoch', decision, false);
      return decision;
    }
    if (!this.handshakeDone || !this.client.connected) {
      // Nothing moved: tell the classifier so a later epoch proposes these again.
      this.undo(promote, demote);
      this.counts.decisionsUnsent++;
      this.emit('epoch', decision, false);
      return decision;
    }
    if (this.inFlight) {
      this.undo(promote, demote);
      this.counts.decisionsDeferred++;
      this.emit('epoch', decision, false);
      return decision;
    }
    // One message per epoch: runs beyond the limit are undone and come back next epoch.
    const sent = { promote: sliceRuns(promote, 0, this.maxRuns), demote: sliceRuns(demote, 0, this.maxRuns) };
    const cut = promote.count - sent.promote.count + demote.count - sent.demote.count;
    if (cut > 0) {
      this.undo(sliceRuns(promote, this.maxRuns, promote.count), sliceRuns(demote, this.maxRuns, demote.count));
      this.counts.runsCut += cut;
    }
    this.client.send({ type: 'decisions', epoch, ...sent });
    this.inFlight = { epoch, ...sent, sentAtMs: performance.now() };
    this.counts.decisionsSent++;
    this.counts.requestedPromote += totalPages(sent.promote);
    this.counts.requestedDemote += totalPages(sent.demote);
    this.emit('epoch', decision, true);
    return decision;
  }

  private heartbeat(): void {
    if (this.handshakeDone) this.client.send({ type: 'heartbeat', seq: ++this.heartbeatSeq, tMs: Math.floor(performance.now()) });
  }

  /** Reports still outstanding for sent decisions (0 or 1). */
  get pendingReports(): number {
    return this.inFlight ? 1 : 0;
  }

  status(): GuestStatus {
    const now = performance.now();
    const elapsedMs = now - this.rateWindow.atMs;
    if (elapsedMs >= 250) {
      this.rateWindow.perSec = ((this.samples - this.rateWindow.samples) * 1000) / elapsedMs;
      this.rateWindow = { atMs: now, samples: this.samples, perSec: this.rateWindow.perSec };
    }
    const stats = this.lastDecision?.stats;
    return {
      epoch: this.lastDecision?.epoch ?? 0,
      host: this.running ? this.state : 'stopped',
      hostVmName: this.hostVmName,
      samplesPerSec: Math.round(this.rateWindow.perSec),
      samples: this.samples,
      sampleRuns: this.sampleRuns,
      hotPages: stats?.hotPages ?? 0,
      dramPagesPlanned: stats?.dramPages ?? 0,
      budgetPages: this.budgetPages,
      budgetFrom: this.budgetFrom,
      decisionsSent: this.counts.decisionsSent,
      decisionsUnsent: this.counts.decisionsUnsent,
      decisionsDeferred: this.counts.decisionsDeferred,
      runsCut: this.counts.runsCut,
      decisionsLost: this.counts.decisionsLost,
      pagesRequested: { promote: this.counts.requestedPromote, demote: this.counts.requestedDemote },
      reports: this.counts.reports,
      moved: { promote: this.counts.movedPromote, demote: this.counts.movedDemote },
      failed: { ...this.failed },
      hostDramPages: this.lastReport?.dramPages ?? null,
      hostCxlPages: this.lastReport?.cxlPages ?? null,
      crossNodeMoves: this.lastReport?.crossNodeMoves ?? null,
      hostNotes: this.lastReport?.notes ?? [],
      hostErrors: this.counts.hostErrors,
      lastHostError: this.lastHostError,
      connects: this.client.connects,
    };
  }

  /** Waits until every sent decision has its report, or the timeout passes. */
  async drain(timeoutMs: number): Promise<boolean> {
    const until = performance.now() + timeoutMs;
    while (this.pendingReports > 0 && this.client.connected && performance.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return this.pendingReports === 0;
  }

  /** Stops sampling, the epoch loop and the connection. */
  async stop(): Promise<GuestStatus> {
    if (this.epochTimer) clearInterval(this.epochTimer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.epochTimer = this.heartbeatTimer = null;
    await this.options.source.stop();
    this.client.stop();
    const status = this.status();
    this.running = false;
    this.state = 'stopped';
    return { ...status, host: 'stopped' };
  }
}

/** A count in 4 significant characters: 950, 12.3k, 4.5M, 1.2G. */
export const compact = (n: number): string =>
  n >= 1e9 ? `${(n / 1e9).toFixed(1)}G` : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : String(Math.round(n));

/** The live status line: epoch, rate, hot set, budget, decisions, outcome, host. */
export function formatStatusLine(s: GuestStatus): string {
  const failed = FAILURE_REASONS.reduce((n, r) => n + s.failed[r], 0);
  const budget = s.budgetPages === null ? 'none yet' : `${compact(s.budgetPages)} pages (${s.budgetFrom})`;
  const host =
    s.host === 'connected' ? `connected${s.hostVmName ? ` as ${s.hostVmName}` : ''}` : s.host === 'handshake' ? 'handshake' : s.host;
  const parts = [
    `epoch ${s.epoch}`,
    `${compact(s.samplesPerSec)} samples/s`,
    `hot ${compact(s.hotPages)}`,
    `budget ${budget}`,
    `sent ${s.decisionsSent}${s.decisionsUnsent ? ` (+${s.decisionsUnsent} unsent)` : ''}`,
    `moved ${compact(s.moved.promote + s.moved.demote)} failed ${compact(failed)}`,
    `host ${host}`,
  ];
  if (s.crossNodeMoves === false) parts.push('host cannot move across nodes');
  return parts.join(' | ');
}
