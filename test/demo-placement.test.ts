// The demo on a tiered machine: its "guest frames" are the machine's own, so a move gives the
// page a frame on the other node, while the host's report names the frame the decision named.
// resyncPlacement rebuilds the classifier's placement from where the workload's frames are now;
// without it a hot set that moves (workload shift) is never followed: the DRAM budget stays full
// of stale marks and every demotion names a frame the workload has left.
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Classifier, type EpochDecision } from '../src/classifier/index.js';
import { classifierDefaultsFor } from '../guest-agent/run.js';
import { runsFrom, samplesFrom, type PageRuns } from '../src/samples.js';
import { framesInRanges, readRegionFrames, resyncPlacement } from '../eval/demo.js';
import type { Truth } from '../guest-agent/workload.js';
import { TruthScorer } from '../eval/truth-scorer.js';

const PAGE = 4096;
// Frames [0, 4096) are the DRAM node, [4096, 8192) the CXL node.
const DRAM_RANGES = [{ start: 0, end: 4096 * PAGE }];
const RAM = runsFrom([[0, 8192]]);
const BUDGET = 64;

function frames(runs: PageRuns): number[] {
  const out: number[] = [];
  for (let i = 0; i < runs.count; i++) for (let p = 0; p < runs.pages[i]; p++) out.push(runs.gpaPfn[i] + p);
  return out;
}

/** The workload: 512 pages first touched on the CXL node (frames 4096 + i), a 64-page hot block. */
class World {
  frameOf = Array.from({ length: 512 }, (_, i) => 4096 + i);
  nextDramFrame = 100;
  nextCxlFrame = 6000;
  hotFirst = 0;
  /** Frames named in decisions that the workload no longer has (refused as outside-ram). */
  outsideRam = 0;
  readonly hotPages = 64;

  samples() {
    const rows: Array<[number, number, number, number]> = [];
    for (let i = 0; i < this.hotPages; i++) rows.push([this.frameOf[this.hotFirst + i], 1, 20, 0]);
    // A cold page here and there: the rest of the region is touched rarely.
    for (let i = 0; i < 512; i += 37) rows.push([this.frameOf[i], 1, 1, 0]);
    return samplesFrom(rows.sort((a, b) => a[0] - b[0]));
  }

  /** The host's move, as the local-process target does it: frames the workload does not have
   *  are refused (outside-ram), frames already on the target node come back as "already", and
   *  promotions stop at the DRAM budget (the host counts the pages it finds on DRAM). Each
   *  moved page gets a new frame on the target node. */
  move(runs: PageRuns, toDram: boolean, budget = Infinity): { moved: PageRuns; already: PageRuns } {
    const moved: number[] = [];
    const already: number[] = [];
    let room = budget - this.dramPages();
    for (const f of frames(runs)) {
      const page = this.frameOf.indexOf(f);
      if (page < 0) {
        this.outsideRam++;
        continue;
      }
      if (f < 4096 === toDram) {
        already.push(f);
        continue;
      }
      if (toDram && room-- <= 0) continue;
      this.frameOf[page] = toDram ? this.nextDramFrame++ : this.nextCxlFrame++;
      moved.push(f);
    }
    const asRuns = (list: number[]) => runsFrom(list.sort((a, b) => a - b).map((f) => [f, 1]));
    return { moved: asRuns(moved), already: asRuns(already) };
  }

  dramPages(): number {
    return this.frameOf.filter((f) => f < 4096).length;
  }

  hotOnDram(): number {
    let n = 0;
    for (let i = 0; i < this.hotPages; i++) if (this.frameOf[this.hotFirst + i] < 4096) n++;
    return n / this.hotPages;
  }
}

/** The guest agent's loop, as guest-agent/run.ts does it: decide (assumed carried out), the
 *  host's report (undo, then the reported frames' placement), then the demo's resync. */
function runEpochs(c: Classifier, world: World, epochs: number, resync: boolean): EpochDecision | null {
  let last: EpochDecision | null = null;
  for (let e = 0; e < epochs; e++) {
    c.ingest(world.samples());
    const d: EpochDecision = c.decide();
    last = d;
    c.setPlacement(d.promote, 'cxl');
    c.setPlacement(d.demote, 'dram');
    const demoted = world.move(d.demote, false);
    const promoted = world.move(d.promote, true, BUDGET);
    c.setPlacement(promoted.moved, 'dram');
    c.setPlacement(demoted.moved, 'cxl');
    c.setPlacement(promoted.already, 'dram');
    c.setPlacement(demoted.already, 'cxl');
    if (resync) resyncPlacement(c, RAM, framesInRanges(Float64Array.from(world.frameOf), DRAM_RANGES));
  }
  return last;
}

function shiftRun(resync: boolean) {
  const c = new Classifier({ ...classifierDefaultsFor('damon'), dramBudgetPages: BUDGET, ramRanges: RAM });
  const world = new World();
  runEpochs(c, world, 20, resync);
  const before = world.hotOnDram();
  const outsideBefore = world.outsideRam;
  world.hotFirst = 64; // the shift: the next block, no page in common
  const last = runEpochs(c, world, 40, resync);
  return { before, after: world.hotOnDram(), outsideRam: world.outsideRam, outsideBefore, plannedDram: last!.stats.dramPages, dram: world.dramPages() };
}

describe('demo placement on a tiered machine (moves change frames)', () => {
  it('follows a hot set that moves, every demotion naming a frame the workload has, the plan matching the kernel', () => {
    const r = shiftRun(true);
    expect(r.before).toBe(1);
    expect(r.after).toBe(1);
    expect(r.outsideRam).toBe(0);
    expect(r.plannedDram).toBe(r.dram);
  });

  it('without the resync the classifier plans with frames the workload left (what the fix removes)', () => {
    const r = shiftRun(false);
    // Demotions name the frames the hot pages had before they were promoted.
    expect(r.outsideRam).toBeGreaterThanOrEqual(64);
  });

  it('framesInRanges keeps exactly the present frames inside the ranges, as sorted runs', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -1, max: 10_000 }), { maxLength: 200 }), fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 10_000 }), (list, a, b) => {
        const ranges = [{ start: Math.min(a, b) * PAGE, end: Math.max(a, b) * PAGE }];
        const got = frames(framesInRanges(Float64Array.from(list), ranges));
        const want = [...new Set(list.filter((f) => f >= Math.min(a, b) && f < Math.max(a, b)))].sort((x, y) => x - y);
        expect(got).toEqual(want);
      }),
    );
  });

  it('readRegionFrames reads the region pages of a pagemap in truth order (-1 absent), null when every frame is hidden', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtier-demo-placement-'));
    try {
      const base = 0x7f0000000000;
      const pages = 4;
      // A sparse file: only the region's entries are written.
      const entry = (pfn: number | null) => {
        const b = Buffer.alloc(8);
        if (pfn !== null) b.writeBigUInt64LE((1n << 63n) | BigInt(pfn));
        return b;
      };
      const pid = 4242;
      const procDir = join(dir, String(pid));
      mkdirSync(procDir);
      const fd = openSync(join(procDir, 'pagemap'), 'w');
      const body = Buffer.concat([entry(11), entry(null), entry(0x1234567), entry(5)]);
      writeSync(fd, body, 0, body.length, (base / PAGE) * 8);
      closeSync(fd);
      const truth = { meta: { regionAddr: base }, pageSize: PAGE, pages } as unknown as Truth;
      expect(Array.from(readRegionFrames(pid, truth, dir)!)).toEqual([11, -1, 0x1234567, 5]);
      writeFileSync(join(procDir, 'pagemap'), Buffer.alloc(0));
      const fd2 = openSync(join(procDir, 'pagemap'), 'w');
      writeSync(fd2, Buffer.alloc(pages * 8), 0, pages * 8, (base / PAGE) * 8);
      closeSync(fd2);
      expect(readRegionFrames(pid, truth, dir)).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('TruthScorer.updateFrames: the hot frames and the clip follow frames read after a move', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtier-demo-truth-'));
    try {
      const pages = 8;
      const meta = JSON.stringify({ generation: 3, timestampMs: 1, pattern: 'shift', pageSize: PAGE, pages, hotFirstPage: 6, hotPages: 3, pid: 1, thp: false, pfnKnown: true, regionAddr: 0x10000000 });
      const head = Buffer.alloc(16);
      head.write('VTIERTRU', 0, 'latin1');
      head.writeUInt32LE(1, 8);
      head.writeUInt32LE(Buffer.byteLength(meta), 12);
      const pad = Buffer.alloc((8 - ((16 + Buffer.byteLength(meta)) % 8)) % 8);
      const pfns = Buffer.alloc(pages * 8);
      const shares = Buffer.alloc(pages * 8);
      for (let i = 0; i < pages; i++) {
        pfns.writeBigUInt64LE(BigInt(5000 + i), i * 8);
        shares.writeDoubleLE(1 / pages, i * 8);
      }
      const path = join(dir, 'truth.bin');
      writeFileSync(path, Buffer.concat([head, Buffer.from(meta), pad, pfns, shares]));
      const scorer = new TruthScorer(path);
      // The hot block wraps: pages 6, 7, 0.
      expect(Array.from(scorer.current.hotPfns)).toEqual([5000, 5006, 5007]);
      const moved = Float64Array.from([10, 5001, 5002, 5003, 5004, 5005, 11, -1]);
      scorer.updateFrames(moved);
      expect(Array.from(scorer.current.hotPfns)).toEqual([10, 11]);
      expect(scorer.generation).toBe(3);
      expect(scorer.residentPages).toBe(7);
      const clipped = scorer.clip(samplesFrom([[10, 2, 1, 0], [5000, 1, 1, 0], [5007, 1, 1, 0]]));
      expect(frames({ count: clipped.count, gpaPfn: clipped.gpaPfn, pages: clipped.pages })).toEqual([10, 11]);
      expect(scorer.score(runsFrom([[10, 2]])).recall).toBe(1);
      expect(() => scorer.updateFrames(new Float64Array(3))).toThrow(/3 frames for a 8-page region/);
      // An unchanged truth file does not undo it (the next one the workload writes replaces it).
      expect(scorer.refresh()).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
