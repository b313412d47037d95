// The demo report's account of the loop it ran, built from a demo summary (pure).
import { describe, expect, it } from 'vitest';
import { demoLoopSection } from '../eval/report-demo.js';
import type { DemoSummary } from '../eval/demo.js';

function summary(over: Partial<DemoSummary> = {}): DemoSummary {
  return {
    source: 'damon',
    sourceNotes: [],
    workload: { pattern: 'hotspot', accessesPerSec: null, sizeBytes: 512 * 2 ** 20, hotFrac: 0.1, hotProb: 1, thp: true, pid: 10, residentPages: 131072, hotPages: 13107 },
    durationS: 15.7,
    epochs: 28,
    samples: 1000,
    final: { precision: 0.98, recall: 0.97, f1: 0.975, hotPages: 13000, truthPages: 13107 } as DemoSummary['final'],
    bestRecall: { value: 0.98, atS: 14.3 },
    recallConvergedS: null,
    monitoredHotShare: null,
    decisionsSent: 21,
    reports: 20,
    pagesRequested: { promote: 14242, demote: 10513 },
    moved: { promote: 9000, demote: 8000 },
    failed: { ENOENT: 0, EBUSY: 3, ENOMEM: 0, EACCES: 0, other: 0 } as DemoSummary['failed'],
    hostDramPages: 100,
    hostCxlPages: 50,
    crossNodeMoves: true,
    hostNotes: [],
    tiers: { dramNodes: [0], cxlNodes: [1], how: 'cpuless', firstTouch: 'cxl', firstTouchMovedPages: 131072 },
    hotPlacement: { start: { queried: 13107, onDram: 0, onCxl: 13107, other: 0, dramShare: 0 }, end: { queried: 13107, onDram: 12800, onCxl: 307, other: 0, dramShare: 12800 / 13107 } },
    interrupted: false,
    sampling: { source: 'damon', damonMode: 'own', kdamond: 'kdamond.0', owner: 'vtier (configured for this run, restored after)', sampleUs: 5000, aggrUs: 100_000, event: null, samplePeriod: null, epochMs: 500, batches: 157 },
    ...over,
  };
}

describe('demo report: the loop it ran', () => {
  const rows = (s: unknown): Record<string, string> => Object.fromEntries(demoLoopSection(s)!.table.rows.map(([k, v]) => [k, v]));

  it('says which source ran, its intervals, decisions and the pages moved each way', () => {
    const section = demoLoopSection(summary())!;
    expect(section).toMatchObject({ id: 'demo-loop', title: 'The loop it ran', open: true });
    const r = rows(summary());
    expect(r['source used']).toBe('damon (own mode, kdamond.0; owner: vtier (configured for this run, restored after))');
    expect(r.intervals).toBe('sampling 5 ms, aggregation 100 ms: set by vtier for this run; classifier epoch 500 ms');
    expect(r['decisions sent']).toBe('21; 20 answered by a host report (1 still being moved when the run ended)');
    expect(r['pages moved']).toBe('promoted 9000 (to DRAM), demoted 8000 (to CXL)');
    expect(r['pages not moved']).toBe('EBUSY 3');
    expect(r['true hot set on DRAM']).toMatch(/^0\.0% after the first touch, 97\.7% at the end/);
    expect(r.accuracy).toMatch(/recall >= 0\.9 never \(not within this run\)/);
  });

  it('marks an interrupted run partial, and a page source by its epoch', () => {
    const s = summary({ interrupted: true, sampling: { source: 'faults', damonMode: null, kdamond: null, owner: null, sampleUs: null, aggrUs: null, event: 'tp_btf/page_fault_user (every user page fault)', samplePeriod: 1, epochMs: 500, batches: 3 } });
    expect(demoLoopSection(s)!.title).toBe('The loop it ran — partial (interrupted)');
    expect(rows(s).run).toBe('partial (interrupted) after 15.7 s');
    expect(rows(s)['source used']).toBe('faults (tp_btf/page_fault_user (every user page fault))');
    expect(rows(s).intervals).toBe('classifier epoch 500 ms, sample period 1 event(s)');
    expect(rows(summary({ sampling: null }))['source used']).toBe('damon (the sampler did not start)');
  });

  it('is no section for results that are not a demo’s', () => {
    for (const other of [null, [], { runs: [] }, { decisionsSent: 3 }, 'demo']) expect(demoLoopSection(other)).toBeNull();
  });
});
