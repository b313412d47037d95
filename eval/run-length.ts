// How long a measured run must be for its scores to mean something: one rule for `vtier demo`
// and `vtier eval accuracy`. A sampler delivers one batch per DAMON aggregation (page sources:
// one per epoch), and the classifier only learns from batches. A run of fewer than two holds no
// second look at any page: refused. A run of a few has not settled (demo --duration 10s under
// an observed kdamond aggregating every 5 s: two batches, recall 0.18): warned, with the
// duration that gives enough.
import { InputError } from '../src/util/units.js';
import { DAMON_OWN_DEFAULTS } from '../guest-agent/damon.js';

/** Fewest batches a run may hold. */
export const MIN_BATCHES = 2;
/** Fewer batches than this and the scores are an early look, not a result: warned. */
export const ADVISED_BATCHES = 10;

/** The batch interval in force for a source, and whose it is. */
export interface BatchCadence {
  ms: number;
  /** What one batch is, for messages: "DAMON aggregation (the owner's, observed)", "epoch (--epoch)". */
  unit: string;
}

/** A source as resolved before a run (eval/accuracy.ts ResolvedSource has this shape). */
export interface CadenceSource {
  source: string;
  damonMode?: 'own' | 'observe';
  observed?: { aggrUs: number };
}

/**
 * Time between two scored batches of `source`: an observed kdamond's aggregation interval is
 * its owner's, our own kdamond's is `ownAggrUs` (DAMON's default unless a run sets it), a page
 * source's is the classifier epoch; the classifier never scores more often than once an epoch.
 */
export function batchCadence(source: CadenceSource, epochMs: number, ownAggrUs: number = DAMON_OWN_DEFAULTS.aggrUs): BatchCadence {
  if (source.source !== 'damon') return { ms: epochMs, unit: 'classifier epoch (--epoch)' };
  const observed = source.damonMode === 'observe';
  const aggrMs = (observed ? source.observed?.aggrUs ?? DAMON_OWN_DEFAULTS.aggrUs : ownAggrUs) / 1000;
  if (aggrMs <= epochMs) return { ms: epochMs, unit: 'classifier epoch (--epoch; DAMON aggregates more often)' };
  return { ms: aggrMs, unit: observed ? "DAMON aggregation (the observed kdamond's interval, set by its owner)" : 'DAMON aggregation (our own kdamond)' };
}

export interface RunLength {
  /** Whole batches the run holds. */
  batches: number;
  cadence: BatchCadence;
  /** Set when the run holds fewer than ADVISED_BATCHES batches. */
  warning: string | null;
}

const seconds = (ms: number): string => `${Number((ms / 1000).toPrecision(3))} s`;

/** The run-length verdict without throwing: `refusal` is set below MIN_BATCHES. */
export function assessRunLength(option: string, text: string, durationMs: number, cadence: BatchCadence): RunLength & { refusal: string | null } {
  const batches = Math.floor(durationMs / cadence.ms);
  const advised = `${option} ${Math.ceil((ADVISED_BATCHES * cadence.ms) / 1000)}s or more`;
  const refusal =
    batches < MIN_BATCHES
      ? `${option}: ${text} holds ${batches} batch(es), one per ${cadence.unit} of ${seconds(cadence.ms)}; at least ${MIN_BATCHES} are needed to score anything (${advised} gives ${ADVISED_BATCHES})`
      : null;
  const warning =
    refusal === null && batches < ADVISED_BATCHES
      ? `${option} ${text} holds only ${batches} batches, one per ${cadence.unit} of ${seconds(cadence.ms)}: the classifier has barely started and its scores are an early look, not a result; ${advised} gives ${ADVISED_BATCHES}`
      : null;
  return { batches, cadence, warning, refusal };
}

/**
 * Checks a run of `durationMs` against the batch cadence: throws InputError (a usage error)
 * below MIN_BATCHES, returns a warning below ADVISED_BATCHES. `option` and `text` name the
 * duration as the user gave it ("--duration", "10s").
 */
export function checkRunLength(option: string, text: string, durationMs: number, cadence: BatchCadence): RunLength {
  const { refusal, ...verdict } = assessRunLength(option, text, durationMs, cadence);
  if (refusal) throw new InputError(refusal);
  return verdict;
}
