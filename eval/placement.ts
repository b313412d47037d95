// Where the workload's true hot set sits, as the kernel reports it: a move_pages(2) placement
// query (nodes = NULL) on the hot pages' virtual addresses in the workload process, each
// page's node mapped to its tier by the host agent's DRAM/CXL split. This is what the demo and
// the comparison show as "hot set on DRAM": independent of vtier's own bookkeeping, so a
// policy that claims moves it did not make cannot score.
import { movePages, MPOL_MF_MOVE } from '../native/addon.js';
import type { Truth } from '../guest-agent/workload.js';

export interface HotPlacement {
  /** Hot pages asked about (all of them, or an even subset of at most `maxPages`). */
  queried: number;
  onDram: number;
  onCxl: number;
  /** Not present, or on a node that is neither (should not happen). */
  other: number;
  /** onDram / (onDram + onCxl); null when none was placed. */
  dramShare: number | null;
}

export interface TierSplit {
  dramNodes: readonly number[];
  cxlNodes: readonly number[];
}

/** Virtual addresses of the truth's hot pages (an even subset when there are more than maxPages). */
export function hotPageAddresses(truth: Truth, maxPages = 1 << 16): Float64Array {
  const base = truth.meta.regionAddr;
  if (typeof base !== 'number' || !Number.isSafeInteger(base) || base <= 0) {
    throw new Error('the truth file has no regionAddr (a workload built before placement queries): rebuild with npm run build');
  }
  const count = truth.hotPages;
  const step = count > maxPages ? count / maxPages : 1;
  const n = Math.min(count, maxPages);
  const out = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const page = (truth.hotFirstPage + Math.floor(k * step)) % truth.pages;
    out[k] = base + page * truth.pageSize;
  }
  return out;
}

export async function queryHotPlacement(pid: number, truth: Truth, split: TierSplit, maxPages?: number): Promise<HotPlacement> {
  const addresses = hotPageAddresses(truth, maxPages);
  const { status } = await movePages(pid, addresses, null, MPOL_MF_MOVE);
  let onDram = 0;
  let onCxl = 0;
  let other = 0;
  for (let i = 0; i < status.length; i++) {
    const node = status[i];
    if (split.dramNodes.includes(node)) onDram++;
    else if (split.cxlNodes.includes(node)) onCxl++;
    else other++;
  }
  const placed = onDram + onCxl;
  return { queried: addresses.length, onDram, onCxl, other, dramShare: placed > 0 ? onDram / placed : null };
}

/** Moves every page of the workload's region to `node` (move_pages, in chunks): the starting
 *  layout "all on the CXL node" made after a normal first touch, so the workload keeps the
 *  default memory policy (a numactl policy would hide its memory from NUMA balancing, which
 *  skips VMAs whose policy lacks MPOL_F_MOF). Returns how many pages ended on `node`. */
export async function moveRegion(pid: number, truth: Truth, node: number): Promise<{ pages: number; onNode: number }> {
  const base = truth.meta.regionAddr;
  if (typeof base !== 'number' || !Number.isSafeInteger(base) || base <= 0) throw new Error('the truth file has no regionAddr: rebuild with npm run build');
  const CHUNK = 1 << 16;
  let onNode = 0;
  for (let first = 0; first < truth.pages; first += CHUNK) {
    const n = Math.min(CHUNK, truth.pages - first);
    const addresses = new Float64Array(n);
    for (let k = 0; k < n; k++) addresses[k] = base + (first + k) * truth.pageSize;
    const { status } = await movePages(pid, addresses, new Int32Array(n).fill(node), MPOL_MF_MOVE);
    for (let k = 0; k < n; k++) if (status[k] === node) onNode++;
  }
  return { pages: truth.pages, onNode };
}
