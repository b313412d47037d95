import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultTierNodes, readNumaTopology } from '../host-agent/numa.js';

function fakeSys(nodes: Array<{ id: number; cpus: string; kb: number }>, tiers: Record<number, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'vtier-sys-'));
  for (const n of nodes) {
    const dir = join(root, 'devices/system/node', `node${n.id}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'cpulist'), `${n.cpus}\n`);
    writeFileSync(join(dir, 'meminfo'), `Node ${n.id} MemTotal:       ${n.kb} kB\nNode ${n.id} MemFree: 1 kB\n`);
  }
  for (const [tier, list] of Object.entries(tiers)) {
    const dir = join(root, 'devices/virtual/memory_tiering', `memory_tier${tier}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'nodelist'), `${list}\n`);
  }
  return root;
}

describe('readNumaTopology', () => {
  it('reads a two-socket host with a CXL expander', () => {
    const root = fakeSys(
      [
        { id: 0, cpus: '0-3,8', kb: 1024 },
        { id: 1, cpus: '4-7', kb: 2048 },
        { id: 2, cpus: '', kb: 4096 },
      ],
      { 4: '0-1', 22: '2' },
    );
    try {
      const topo = readNumaTopology(root);
      expect(topo.nodes).toEqual([
        { id: 0, cpus: [0, 1, 2, 3, 8], memTotalBytes: 1024 * 1024, cpuless: false },
        { id: 1, cpus: [4, 5, 6, 7], memTotalBytes: 2048 * 1024, cpuless: false },
        { id: 2, cpus: [], memTotalBytes: 4096 * 1024, cpuless: true },
      ]);
      expect(topo.memoryTiers).toEqual([
        { tier: 4, nodes: [0, 1] },
        { tier: 22, nodes: [2] },
      ]);
      expect(defaultTierNodes(topo)).toEqual({ dramNodes: [0, 1], cxlNodes: [2], how: 'memory-tiers' });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('falls back to CPU-less nodes without memory tiers, and to one tier otherwise', () => {
    const root = fakeSys(
      [
        { id: 0, cpus: '0-1', kb: 1024 },
        { id: 1, cpus: '', kb: 1024 },
      ],
      {},
    );
    try {
      expect(defaultTierNodes(readNumaTopology(root))).toEqual({ dramNodes: [0], cxlNodes: [1], how: 'cpuless-nodes' });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
    expect(defaultTierNodes(readNumaTopology('/nonexistent'))).toEqual({ dramNodes: [0], cxlNodes: [], how: 'single-tier' });
  });

  it('reads this machine', () => {
    const topo = readNumaTopology();
    expect(topo.nodes.length).toBeGreaterThanOrEqual(1);
    expect(topo.nodes[0].memTotalBytes).toBeGreaterThan(0);
    expect(topo.nodes.some((n) => n.cpus.length > 0)).toBe(true);
  });
});
