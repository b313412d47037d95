// The share of the workload's accesses served from DRAM, from the kernel's placement and the
// truth's expected per-page shares: sum of share over pages on a DRAM node / sum of share over
// placed pages. For hotspot and shift with every access on the hot set this equals the hot
// set's share on DRAM (`hot_dram_share`); for zipf it does not (rank 0 alone takes ~8% of the
// accesses of a 512 MiB region, the top 10% of ranks about 80%), so the lab records both.
// The query covers the hot block page by page and the tail (the pages outside it with a
// non-zero share) in groups of consecutive ranks, each group asked through its first page and
// weighted by the group's summed share, so a query stays bounded on large regions.
import { movePages, MPOL_MF_MOVE } from '../native/addon.js';
import type { Truth } from '../guest-agent/workload.js';
import type { TierSplit } from './placement.js';

export interface AccessSharePlan {
  /** Region page indices to ask about. */
  pages: Uint32Array;
  /** The expected share of accesses each one stands for. */
  weights: Float64Array;
}

type ShareTruth = Pick<Truth, 'pages' | 'share' | 'hotFirstPage' | 'hotPages'>;

/** Which pages to query and what each weighs; `maxTail` bounds the tail's queries. */
export function accessSharePlan(truth: ShareTruth, maxTail = 1 << 14): AccessSharePlan {
  const { pages, share, hotFirstPage, hotPages } = truth;
  const chosen: number[] = [];
  const weights: number[] = [];
  for (let k = 0; k < hotPages; k++) {
    const page = (hotFirstPage + k) % pages;
    if (share[page] > 0) {
      chosen.push(page);
      weights.push(share[page]);
    }
  }
  let tail = 0;
  for (let k = hotPages; k < pages; k++) if (share[(hotFirstPage + k) % pages] > 0) tail++;
  const group = Math.max(1, Math.ceil(tail / Math.max(1, maxTail)));
  let inGroup = 0;
  for (let k = hotPages; k < pages; k++) {
    const page = (hotFirstPage + k) % pages;
    if (!(share[page] > 0)) continue;
    if (inGroup === 0) {
      chosen.push(page);
      weights.push(0);
    }
    weights[weights.length - 1] += share[page];
    inGroup = (inGroup + 1) % group;
  }
  return { pages: Uint32Array.from(chosen), weights: Float64Array.from(weights) };
}

/** Access-weighted share on DRAM from the nodes the kernel reported for the plan's pages (a
 *  negative status: not present); null when no page with a weight is on either tier. */
export function accessWeightedDramShare(plan: AccessSharePlan, status: ArrayLike<number>, split: TierSplit): number | null {
  let onDram = 0;
  let placed = 0;
  for (let i = 0; i < plan.pages.length; i++) {
    const node = status[i];
    const w = plan.weights[i];
    if (split.dramNodes.includes(node)) {
      onDram += w;
      placed += w;
    } else if (split.cxlNodes.includes(node)) placed += w;
  }
  return placed > 0 ? onDram / placed : null;
}

/** The move_pages placement query (nodes = NULL: nothing moves) for the plan, in chunks. */
export async function queryAccessShare(pid: number, truth: Truth, split: TierSplit, maxTail?: number): Promise<number | null> {
  const base = truth.meta.regionAddr;
  if (typeof base !== 'number' || !Number.isSafeInteger(base) || base <= 0) throw new Error('the truth file has no regionAddr: rebuild with npm run build');
  const plan = accessSharePlan(truth, maxTail);
  const status = new Int32Array(plan.pages.length);
  const CHUNK = 1 << 16;
  for (let first = 0; first < plan.pages.length; first += CHUNK) {
    const n = Math.min(CHUNK, plan.pages.length - first);
    const addresses = new Float64Array(n);
    for (let k = 0; k < n; k++) addresses[k] = base + plan.pages[first + k] * truth.pageSize;
    const res = await movePages(pid, addresses, null, MPOL_MF_MOVE);
    status.set(Int32Array.from(res.status), first);
  }
  return accessWeightedDramShare(plan, status, split);
}
