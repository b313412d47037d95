// Shared placement step for score-ranking policies (oracle, lru, vtmm, memtis): keep the
// top-`capacity` pages by an integer score in DRAM, breaking ties in favour of pages already
// there (moving an equal page buys nothing), promote hottest-first within a page budget and
// demote coldest-first only as much as the promotions need. Counting sort: O(pages + maxScore).
import { CXL, DRAM, PageList, type Migrations } from './policy.js';

export interface PlanOptions {
  capacity: number;
  dramUsed: number;
  /** Most pages to promote this epoch. */
  budgetPages: number;
  /** CXL pages scoring below this are never promoted (no evidence they are hot). */
  minPromoteScore: number;
}

// One reusable buffer per memory size: a 10 GiB memory's order array is 10 MB, and
// allocating (and zeroing) it for every policy every epoch dominated the step.
const buffers = new Map<number, Uint32Array>();
function scratch(pages: number): Uint32Array {
  let b = buffers.get(pages);
  if (!b) {
    if (buffers.size > 4) buffers.clear();
    b = new Uint32Array(pages);
    buffers.set(pages, b);
  }
  return b;
}

/** Moves that make DRAM hold exactly the pages marked in `want` (at most `capacity` of them),
 *  demoting unwanted pages only as far as the promotions need room. One pass, no sorting. */
export function planToSet(want: Uint8Array, tier: Uint8Array, capacity: number, dramUsed: number): Migrations {
  const promote = new PageList(1024);
  for (let p = 0; p < tier.length; p++) if (want[p] === 1 && tier[p] === CXL) promote.push(p);
  const demote = new PageList(1024);
  let need = dramUsed + promote.count - capacity;
  for (let p = 0; p < tier.length && need > 0; p++) {
    if (want[p] === 0 && tier[p] === DRAM) {
      demote.push(p);
      need--;
    }
  }
  if (need > 0) promote.count -= need;
  return { promote, demote };
}

export function planByScore(score: ArrayLike<number>, maxScore: number, tier: Uint8Array, o: PlanOptions): Migrations {
  const pages = tier.length;
  const keys = 2 * (maxScore + 1);
  const start = new Uint32Array(keys + 1);
  for (let p = 0; p < pages; p++) start[keys - 1 - (2 * score[p] + tier[p])]++;
  // Exclusive prefix sums: bucket 0 is the highest key (hottest, incumbent first).
  let sum = 0;
  for (let k = 0; k < keys; k++) {
    const c = start[k];
    start[k] = sum;
    sum += c;
  }
  const order = scratch(pages);
  for (let p = 0; p < pages; p++) order[start[keys - 1 - (2 * score[p] + tier[p])]++] = p;

  const promote = new PageList(1024);
  const selected = Math.min(o.capacity, pages);
  for (let i = 0; i < selected && promote.count < o.budgetPages; i++) {
    const p = order[i];
    if (tier[p] === CXL) {
      if (score[p] < o.minPromoteScore) break;
      promote.push(p);
    }
  }
  const demote = new PageList(1024);
  let need = o.dramUsed + promote.count - o.capacity;
  for (let i = pages - 1; i >= selected && need > 0; i--) {
    const p = order[i];
    if (tier[p] === DRAM) {
      demote.push(p);
      need--;
    }
  }
  if (need > 0) promote.count -= need; // cannot happen: pages outside the top hold the excess
  return { promote, demote };
}
