// NUMA topology and memory tiers as the kernel reports them in sysfs. The host agent uses
// it to tell DRAM nodes (with CPUs, top tier) from CXL nodes (CPU-less, lower tier) when the
// configuration does not list them, and `vtier doctor` prints it.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNodeList } from '../src/util/units.js';

export interface NumaNode {
  id: number;
  cpus: number[];
  memTotalBytes: number;
  /** True for memory-only nodes (a CXL expander shows up this way). */
  cpuless: boolean;
}

export interface MemoryTier {
  /** The kernel's tier id (memory_tierN): smaller = faster (DRAM is tier 4 by default). */
  tier: number;
  nodes: number[];
}

export interface NumaTopology {
  nodes: NumaNode[];
  memoryTiers: MemoryTier[];
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function parseList(text: string | undefined): number[] {
  const trimmed = (text ?? '').trim();
  return trimmed === '' ? [] : parseNodeList(trimmed, 'sysfs list');
}

/** Reads nodes from `<sysRoot>/devices/system/node` and tiers from
 *  `<sysRoot>/devices/virtual/memory_tiering`. A kernel without NUMA reports one node. */
export function readNumaTopology(sysRoot = '/sys'): NumaTopology {
  const nodeDir = join(sysRoot, 'devices/system/node');
  const nodes: NumaNode[] = [];
  const entries = existsSync(nodeDir) ? readdirSync(nodeDir) : [];
  for (const name of entries) {
    const match = /^node(\d+)$/.exec(name);
    if (!match) continue;
    const id = Number(match[1]);
    const cpus = parseList(readText(join(nodeDir, name, 'cpulist')));
    const meminfo = readText(join(nodeDir, name, 'meminfo')) ?? '';
    const total = /MemTotal:\s+(\d+)\s*kB/.exec(meminfo);
    nodes.push({ id, cpus, memTotalBytes: total ? Number(total[1]) * 1024 : 0, cpuless: cpus.length === 0 });
  }
  nodes.sort((a, b) => a.id - b.id);

  const tierDir = join(sysRoot, 'devices/virtual/memory_tiering');
  const memoryTiers: MemoryTier[] = [];
  const tierEntries = existsSync(tierDir) ? readdirSync(tierDir) : [];
  for (const name of tierEntries) {
    const match = /^memory_tier(\d+)$/.exec(name);
    if (!match) continue;
    memoryTiers.push({ tier: Number(match[1]), nodes: parseList(readText(join(tierDir, name, 'nodelist'))) });
  }
  memoryTiers.sort((a, b) => a.tier - b.tier);
  return { nodes, memoryTiers };
}

export interface TierNodes {
  dramNodes: number[];
  cxlNodes: number[];
  /** How the split was made, for status output. */
  how: 'memory-tiers' | 'cpuless-nodes' | 'single-tier';
}

/** The default DRAM / CXL split: the fastest memory tier is DRAM and the slower tiers are
 *  CXL when the kernel has several tiers; otherwise CPU-less nodes with memory are CXL. */
export function defaultTierNodes(topology: NumaTopology): TierNodes {
  const withMemory = topology.nodes.filter((n) => n.memTotalBytes > 0).map((n) => n.id);
  const tiers = topology.memoryTiers.filter((t) => t.nodes.length > 0);
  if (tiers.length >= 2) {
    const dramNodes = tiers[0].nodes.slice();
    const cxlNodes = tiers.slice(1).flatMap((t) => t.nodes).sort((a, b) => a - b);
    return { dramNodes, cxlNodes, how: 'memory-tiers' };
  }
  const cxlNodes = topology.nodes.filter((n) => n.cpuless && n.memTotalBytes > 0).map((n) => n.id);
  const dramNodes = withMemory.filter((id) => !cxlNodes.includes(id));
  if (cxlNodes.length > 0 && dramNodes.length > 0) return { dramNodes, cxlNodes, how: 'cpuless-nodes' };
  return { dramNodes: withMemory.length > 0 ? withMemory : [0], cxlNodes: [], how: 'single-tier' };
}
