// Property tests: random sequences of ingest / placement / budget changes / decisions,
// checked against an independent model of which pages are in DRAM.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Classifier, type ClassifierOptions, type EpochDecision } from '../src/classifier/index.js';
import { runsFrom, samplesFrom, totalPages, type PageRuns, type PageSamples } from '../src/samples.js';

// Small enough to model page by page. Neither range ends on a 2 MiB boundary (RAM sizes
// need not be 2 MiB multiples), and there is a hole between them.
const RAM_PAGES = 3100;
const ram = runsFrom([[0, 1000], [2048, RAM_PAGES - 1000]]);
const inRam = (pfn: number): boolean => (pfn >= 0 && pfn < 1000) || (pfn >= 2048 && pfn < 2048 + RAM_PAGES - 1000);

type Op =
  | { kind: 'ingest'; rows: Array<[number, number, number, number]> }
  | { kind: 'place'; rows: Array<[number, number]>; tier: 'dram' | 'cxl' }
  | { kind: 'budget'; pages: number }
  | { kind: 'decide' };

// Mostly valid frames (clustered so counts build up), some hostile ones.
const pfnArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 999 }) },
  { weight: 6, arbitrary: fc.integer({ min: 2048, max: 2048 + RAM_PAGES - 1000 - 1 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 2047 }) },
  { weight: 1, arbitrary: fc.integer({ min: 2048 + RAM_PAGES - 1000, max: 6000 }) },
  { weight: 1, arbitrary: fc.double({ min: -1e20, max: 1e20 }) },
  { weight: 1, arbitrary: fc.constantFrom(Number.NaN, Infinity, -0, 2 ** 40, 2 ** 53, 0.5) },
);
const pagesArb = fc.oneof({ weight: 8, arbitrary: fc.constant(1) }, { weight: 2, arbitrary: fc.integer({ min: 0, max: 700 }) }, { weight: 1, arbitrary: fc.constant(0xffffffff) });
const weightArb = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 20 }) }, { weight: 1, arbitrary: fc.constant(0xffffffff) });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('ingest' as const), rows: fc.array(fc.tuple(pfnArb, pagesArb, weightArb, weightArb), { maxLength: 40 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('place' as const), rows: fc.array(fc.tuple(pfnArb, pagesArb), { maxLength: 4 }), tier: fc.constantFrom('dram' as const, 'cxl' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('budget' as const), pages: fc.integer({ min: 1, max: RAM_PAGES }) }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'decide' as const }) },
);

const optionsArb = fc.record({
  dramBudgetPages: fc.integer({ min: 1, max: RAM_PAGES }),
  hugePages: fc.boolean(),
  coolEveryEpochs: fc.integer({ min: 0, max: 3 }),
  coolEverySamples: fc.integer({ min: 0, max: 200 }),
  coolEachIngest: fc.boolean(),
  idleEpochsBeforeDemote: fc.integer({ min: 1, max: 4 }),
  migrationBudgetBytesPerEpoch: fc.option(fc.integer({ min: 0, max: 3000 * 4096 }), { nil: undefined }),
  unknownTier: fc.constantFrom('cxl' as const, 'dram' as const),
});

function* pagesOf(runs: PageRuns): Generator<number> {
  for (let i = 0; i < runs.count; i++) for (let p = 0; p < runs.pages[i]; p++) yield runs.gpaPfn[i] + p;
}

function asSamples(rows: Array<[number, number, number, number]>): PageSamples {
  return samplesFrom(rows);
}

/** Runs the ops; checks every invariant against a page-level model; returns the decisions. */
function run(options: Omit<ClassifierOptions, 'ramRanges'>, ops: Op[]): EpochDecision[] {
  const c = new Classifier({ ...options, ramRanges: ram });
  let budget = options.dramBudgetPages;
  // Model: which pages are in DRAM as far as the classifier can know. Pages of a sampled
  // chunk with no report are in unknownTier; that is only observable through dramPages,
  // so the model tracks reported and moved pages and checks the rest via the stats.
  const inDram = new Set<number>();
  const decisions: EpochDecision[] = [];
  for (const op of ops) {
    if (op.kind === 'ingest') c.ingest(asSamples(op.rows));
    else if (op.kind === 'place') {
      const runs = runsFrom(op.rows.map(([pfn, pages]) => [pfn, pages]));
      c.setPlacement(runs, op.tier);
      for (const [pfn, pages] of op.rows) {
        if (!(Number.isInteger(pfn) && pfn >= 0 && pages >= 1 && inRam(pfn) && inRam(pfn + pages - 1))) continue;
        if (pfn < 1000 && pfn + pages > 1000) continue; // spans the hole: rejected
        for (let p = pfn; p < pfn + pages; p++) op.tier === 'dram' ? inDram.add(p) : inDram.delete(p);
      }
    } else if (op.kind === 'budget') {
      c.setBudget(op.pages);
      budget = op.pages;
    } else {
      const d = c.decide();
      decisions.push(d);
      const promoted = new Set(pagesOf(d.promote));
      for (const p of pagesOf(d.demote)) {
        expect(promoted.has(p), `page ${p} promoted and demoted in epoch ${d.epoch}`).toBe(false);
        expect(inRam(p)).toBe(true);
        inDram.delete(p);
      }
      for (const p of promoted) {
        expect(inDram.has(p), `page ${p} promoted while in DRAM`).toBe(false);
        expect(inRam(p)).toBe(true);
        inDram.add(p);
      }
      expect(d.stats.promotedPages).toBe(promoted.size);
      expect(d.stats.dramPages).toBeLessThanOrEqual(budget);
      expect(d.stats.hotPages).toBeLessThanOrEqual(budget);
      expect(totalPages(c.hotRuns())).toBe(d.stats.hotPages);
      if (options.unknownTier === 'cxl') expect(inDram.size).toBe(d.stats.dramPages);
      else expect(inDram.size).toBeLessThanOrEqual(d.stats.dramPages);
      if (options.migrationBudgetBytesPerEpoch !== undefined) {
        const limit = Math.floor(options.migrationBudgetBytesPerEpoch / 4096);
        expect(d.stats.promotedPages + d.stats.demotedPages - d.stats.forcedDemotedPages).toBeLessThanOrEqual(limit);
      }
      // Runs come sorted and coalesced.
      for (const runs of [d.promote, d.demote]) {
        for (let i = 1; i < runs.count; i++) expect(runs.gpaPfn[i]).toBeGreaterThan(runs.gpaPfn[i - 1] + runs.pages[i - 1]);
      }
    }
  }
  return decisions;
}

const serialise = (decisions: EpochDecision[]): string =>
  JSON.stringify(decisions, (_k, v) => (ArrayBuffer.isView(v) ? Array.from(v as Float64Array) : v));

describe('classifier properties', () => {
  it('budget, no promote+demote overlap, never promotes a DRAM page, migration budget, sorted runs', () => {
    fc.assert(
      fc.property(optionsArb, fc.array(opArb, { maxLength: 40 }), (options, ops) => {
        run(options, [...ops, { kind: 'decide' }]);
      }),
      { numRuns: 300 },
    );
  });

  it('is deterministic: the same input gives the same decisions', () => {
    fc.assert(
      fc.property(optionsArb, fc.array(opArb, { maxLength: 30 }), (options, ops) => {
        expect(serialise(run(options, ops))).toBe(serialise(run(options, ops)));
      }),
      { numRuns: 100 },
    );
  });

  it('never throws on arbitrary sample batches, and counts what it rejects', () => {
    const columns = fc.record({
      count: fc.oneof(fc.integer({ min: -5, max: 50 }), fc.constantFrom(Number.NaN, 1.5, 2 ** 60)),
      gpaPfn: fc.array(fc.double(), { maxLength: 20 }).map((a) => new Float64Array(a)),
      pages: fc.array(fc.nat(), { maxLength: 20 }).map((a) => new Uint32Array(a)),
      reads: fc.array(fc.nat(), { maxLength: 20 }).map((a) => new Uint32Array(a)),
      writes: fc.array(fc.nat(), { maxLength: 20 }).map((a) => new Uint32Array(a)),
    });
    const hostile = fc.oneof(columns as fc.Arbitrary<unknown>, fc.anything());
    fc.assert(
      fc.property(fc.boolean(), fc.array(hostile, { maxLength: 5 }), (withRam, batches) => {
        const c = new Classifier({ dramBudgetPages: 64, ...(withRam ? { ramRanges: ram } : {}) });
        for (const batch of batches) {
          const before = c.stats();
          c.ingest(batch as PageSamples);
          const after = c.stats();
          // Every row of a well-formed batch is accepted or rejected; anything else is one rejection.
          const b = batch as { count?: unknown; gpaPfn?: unknown };
          const rows = b && typeof b === 'object' && b.gpaPfn instanceof Float64Array && Number.isSafeInteger(b.count) && (b.count as number) >= 0 ? (b.count as number) : -1;
          const seen = after.acceptedRuns + after.rejectedRuns - before.acceptedRuns - before.rejectedRuns;
          expect(seen).toBe(rows < 0 ? 1 : rows);
        }
        const d = c.decide();
        expect(d.stats.dramPages).toBeLessThanOrEqual(64);
      }),
      { numRuns: 300 },
    );
  });
});
