// The `vtier demo` report's account of the loop it ran, from the demo's summary.json: the
// source really used and its intervals, how long the run was in batches, decisions sent and
// answered, pages moved each way (and why not), where the true hot set sat at the start and
// at the end, and whether the run was cut short. The placement over time and the accuracy
// series are plotted from observations.csv by the other sections.
import type { DemoSummary } from './demo.js';

export interface DemoLoopSection {
  id: string;
  title: string;
  caption: string;
  table: { columns: string[]; rows: string[][] };
  /** The table is the content: shown, not folded. */
  open: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A demo summary (as runDemo returns it, plus the CLI's warnings), or null for anything else. */
function asDemoSummary(summary: unknown): (DemoSummary & { warnings?: unknown }) | null {
  if (!isObject(summary)) return null;
  const s = summary as Record<string, unknown>;
  if (typeof s.decisionsSent !== 'number' || !isObject(s.moved) || !isObject(s.workload) || typeof s.interrupted !== 'boolean') return null;
  return summary as unknown as DemoSummary;
}

const ms = (us: number | null): string => (us === null ? '?' : us >= 1_000_000 ? `${Number((us / 1e6).toPrecision(4))} s` : `${Number((us / 1000).toPrecision(4))} ms`);
const pct = (v: number | null | undefined): string => (v === null || v === undefined ? 'unknown' : `${(v * 100).toFixed(1)}%`);
const f3 = (v: number): string => v.toFixed(3);

/** The source in words: "damon (observe: kdamond.0, someone else's)". */
function sourceText(s: DemoSummary): string {
  const p = s.sampling;
  if (!p) return `${s.source} (the sampler did not start)`;
  if (p.source === 'damon') return `damon (${p.damonMode ?? '?'} mode${p.kdamond ? `, ${p.kdamond}` : ''}${p.owner ? `; owner: ${p.owner}` : ''})`;
  return `${p.source}${p.event ? ` (${p.event})` : ''}`;
}

function intervalsText(s: DemoSummary): string {
  const p = s.sampling;
  if (!p) return '–';
  if (p.source === 'damon') {
    const whose = p.damonMode === 'observe' ? ": its owner's, vtier changes nothing" : ': set by vtier for this run';
    return `sampling ${ms(p.sampleUs)}, aggregation ${ms(p.aggrUs)}${whose}; classifier epoch ${p.epochMs} ms`;
  }
  return `classifier epoch ${p.epochMs} ms${p.samplePeriod !== null ? `, sample period ${p.samplePeriod} event(s)` : ''}`;
}

/** The loop section of a demo report; null when the results are not a demo's. */
export function demoLoopSection(summary: unknown): DemoLoopSection | null {
  const s = asDemoSummary(summary);
  if (!s) return null;
  const rows: string[][] = [];
  const add = (fact: string, value: string): void => {
    rows.push([fact, value]);
  };
  add('run', s.interrupted ? `partial (interrupted) after ${s.durationS.toFixed(1)} s` : `complete: ${s.durationS.toFixed(1)} s after the workload was ready`);
  add('source used', sourceText(s));
  add('intervals', intervalsText(s));
  if (s.sampling) add('batches', `${s.sampling.batches} delivered (${s.sampling.source === 'damon' ? 'one per DAMON aggregation' : 'one per epoch'}); ${s.epochs} classifier epochs`);
  const w = s.workload;
  add('workload', `${w.pattern}, ${(w.sizeBytes / 2 ** 20).toFixed(0)} MiB${w.thp ? ' (THP)' : ''}, hot fraction ${w.hotFrac}, ${(w.hotProb * 100).toFixed(0)}% of accesses to it; ${w.residentPages} pages resident, true hot set ${w.hotPages} pages`);
  add(
    'accuracy',
    s.final
      ? `last epoch: precision ${f3(s.final.precision)}, recall ${f3(s.final.recall)}, F1 ${f3(s.final.f1)}; ` +
          `${s.bestRecall ? `best recall ${f3(s.bestRecall.value)} at ${s.bestRecall.atS.toFixed(1)} s; ` : ''}recall >= 0.9 ${s.recallConvergedS === null ? 'never (not within this run)' : `from ${s.recallConvergedS} s`}`
      : 'no epoch was scored (no samples reached the classifier)',
  );
  if (s.monitoredHotShare !== null && s.monitoredHotShare !== undefined) add('monitored', `the observed kdamond's target ranges hold ${pct(s.monitoredHotShare)} of the true hot set (the ceiling on recall)`);
  add('decisions sent', `${s.decisionsSent}; ${s.reports} answered by a host report${s.reports < s.decisionsSent ? ` (${s.decisionsSent - s.reports} still being moved when the run ended)` : ''}`);
  add('pages requested', `promote ${s.pagesRequested.promote}, demote ${s.pagesRequested.demote}`);
  add('pages moved', `promoted ${s.moved.promote} (to DRAM), demoted ${s.moved.demote} (to CXL)`);
  const failed = Object.entries(s.failed ?? {}).filter(([, n]) => n > 0);
  add('pages not moved', failed.length ? failed.map(([reason, n]) => `${reason} ${n}`).join(', ') : 'none reported');
  if (s.crossNodeMoves === false) add('moves', 'single NUMA node: no move can change node here; the host agent translated and queried every page and pretended nothing');
  else if (s.crossNodeMoves === true) add('moves', 'across NUMA nodes (move_pages)');
  const tiers = s.tiers;
  if (tiers && tiers.cxlNodes.length > 0) {
    add('tiers', `DRAM nodes ${tiers.dramNodes.join(',')}, CXL nodes ${tiers.cxlNodes.join(',')} (${tiers.how}); first touch ${tiers.firstTouch}${tiers.firstTouchMovedPages ? `: ${tiers.firstTouchMovedPages} pages moved to CXL before the agents started` : ''}`);
    const { start, end } = s.hotPlacement ?? { start: null, end: null };
    add('true hot set on DRAM', `${pct(start?.dramShare)} after the first touch, ${pct(end?.dramShare)} at the end (kernel placement, move_pages query on ${end?.queried ?? start?.queried ?? 0} pages); every second's value is in the placement plot when there is one`);
  } else if (tiers) {
    add('tiers', 'one memory tier: no placement to track');
  }
  if (s.hostDramPages !== null || s.hostCxlPages !== null) add('host placement', `DRAM ${s.hostDramPages ?? '?'} pages, CXL ${s.hostCxlPages ?? '?'} pages (last report)`);
  for (const note of s.hostNotes ?? []) add('host note', note);
  for (const note of s.sourceNotes ?? []) add('source note', note);
  return {
    id: 'demo-loop',
    title: s.interrupted ? 'The loop it ran — partial (interrupted)' : 'The loop it ran',
    caption: 'Sample source -> classifier (guest agent) -> decisions -> host agent (move_pages on the workload) -> reports back, as this run did it.',
    table: { columns: ['fact', 'value'], rows },
    open: true,
  };
}
