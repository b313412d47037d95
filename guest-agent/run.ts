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
  HOST_REFUSALS,
  PAGE_SIZE,
  PROTOCOL_VERSION,
  type FailureReason,
  type HostRefusal,
  type Message,
  type ProtocolLimits,
  type ReportMessage,
} from '../src/protocol/index.js';
import { runsFrom, totalPages, type PageRuns, type PageSamples } from '../src/samples.js';
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
  /** A target process (guest run --pid): send only frames the source has sampled, which a
   *  pid-filtered source delivers for that process alone. The classifier moves whole runs
   *  and 2 MiB regions, whose other frames belong to other processes: the host would refuse
   *  them (outside-ram) or skip them. Those parts are undone and counted as notTargetPages. */
  sampledFramesOnly?: boolean;
  /** Extra classifier tunables (budget and RAM ranges come from above). */
  classifier?: Omit<ClassifierOptions, 'dramBudgetPages' | 'ramRanges'>;
}

export type HostState = 'connecting' | 'handshake' | 'connected' | 'reconnecting' | 'stopped';

/** Every reason a page was not moved: move_pages' (FAILURE_REASONS) and the host's refusals
 *  before move_pages (HOST_REFUSALS), the same names as the host agent's status counters. */
export const NOT_MOVED_REASONS = [...FAILURE_REASONS, ...HOST_REFUSALS] as const;
export type NotMovedReason = FailureReason | HostRefusal;

/** Host notes that restate one report's counts; the cumulative counters replace them. */
const MAX_HOST_NOTES = 32;
const COUNT_NOTE = /^(not moved \(host\):|already on target tier:)/;

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
  /** Cumulative over the run (every report, not the last one): pages sent in decisions ... */
  pagesRequested: { promote: number; demote: number };
  reports: number;
  /** ... pages the host moved ... */
  moved: { promote: number; demote: number };
  /** ... pages that were already on the target tier ... */
  alreadyInPlace: { promote: number; demote: number };
  /** ... and pages not moved, by reason ('other': what the host did not itemise). */
  failed: Record<NotMovedReason, number>;
  /** Pages of decisions left out because the target process was never sampled there
   *  (sampledFramesOnly); not requested. */
  notTargetPages: number;
  /** Host-reported placement of this VM, from the last report. */
  hostDramPages: number | null;
  hostCxlPages: number | null;
  crossNodeMoves: boolean | null;
  /** Every distinct note the host sent this run, except per-report counts (see above). */
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

/** Splits runs into the parts whose frames are in `frames` and the rest (both as runs). */
function splitRuns(runs: PageRuns, frames: Set<number>): { inside: PageRuns; outside: PageRuns } {
  const inside: Array<[number, number]> = [];
  const outside: Array<[number, number]> = [];
  for (let i = 0; i < runs.count; i++) {
    let start = runs.gpaPfn[i];
    let inSet = frames.has(start);
    const end = runs.gpaPfn[i] + runs.pages[i];
    for (let p = start + 1; p <= end; p++) {
      const here = p < end && frames.has(p);
      if (p === end || here !== inSet) {
        (inSet ? inside : outside).push([start, p - start]);
        start = p;
        inSet = here;
      }
    }
  }
  return { inside: runsFrom(inside), outside: runsFrom(outside) };
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
    alreadyPromote: 0,
    alreadyDemote: 0,
    notTargetPages: 0,
    hostErrors: 0,
  };
  /** Frames the source delivered (sampledFramesOnly). */
  private readonly sampledFrames = new Set<number>();
  private readonly failed = Object.fromEntries(NOT_MOVED_REASONS.map((r) => [r, 0])) as Record<NotMovedReason, number>;
  private readonly hostNotes = new Set<string>();
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
    if (this.options.sampledFramesOnly) {
      for (let i = 0; i < batch.count; i++) for (let p = 0; p < batch.pages[i]; p++) this.sampledFrames.add(batch.gpaPfn[i] + p);
    }
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
    this.counts.alreadyPromote += report.promote.already ?? 0;
    this.counts.alreadyDemote += report.demote.already ?? 0;
    for (const outcome of [report.promote, report.demote]) {
      for (const reason of FAILURE_REASONS) this.failed[reason] += outcome.failed[reason];
      // The host's refusals are part of 'other': count them under their own names.
      for (const reason of HOST_REFUSALS) {
        const n = outcome.refused?.[reason] ?? 0;
        this.failed[reason] += n;
        this.failed.other -= n;
      }
    }
    const structured = report.promote.refused !== undefined && report.demote.refused !== undefined;
    for (const note of report.notes) {
      // Bounded: notes that carry a number differ from report to report.
      if (!(structured && COUNT_NOTE.test(note)) && this.hostNotes.size < MAX_HOST_NOTES) this.hostNotes.add(note);
    }
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
    const { epoch } = decision;
    let { promote, demote } = decision;
    if (this.options.sampledFramesOnly) {
      const p = splitRuns(promote, this.sampledFrames);
      const d = splitRuns(demote, this.sampledFrames);
      this.undo(p.outside, d.outside);
      this.counts.notTargetPages += totalPages(p.outside) + totalPages(d.outside);
      promote = p.inside;
      demote = d.inside;
    }
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
      alreadyInPlace: { promote: this.counts.alreadyPromote, demote: this.counts.alreadyDemote },
      failed: { ...this.failed },
      notTargetPages: this.counts.notTargetPages,
      hostDramPages: this.lastReport?.dramPages ?? null,
      hostCxlPages: this.lastReport?.cxlPages ?? null,
      crossNodeMoves: this.lastReport?.crossNodeMoves ?? null,
      hostNotes: [...this.hostNotes],
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

  /** Stops sampling, the epoch loop and the connection. With `drainMs`, waits (that long at
   *  most) for the report of a decision still in flight first, so the guest's counters and
   *  the host's cover the same decisions. */
  async stop(drainMs = 0): Promise<GuestStatus> {
    if (this.epochTimer) clearInterval(this.epochTimer);
    this.epochTimer = null;
    await this.options.source.stop();
    if (drainMs > 0) await this.drain(drainMs);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
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
  const failed = NOT_MOVED_REASONS.reduce((n, r) => n + s.failed[r], 0);
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
