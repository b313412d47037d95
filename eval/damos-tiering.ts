// The kernel's own DAMON-based tiering, set up through DAMON sysfs the way the kernel's
// samples/damon/mtier.c sets it up: one kdamond per direction, each a paddr context over one
// node's physical range:
//   - promotion: watches the CXL node, DAMOS `migrate_hot` to the DRAM node for regions seen
//     accessed, only pages still young (a `young` filter), quota-limited;
//   - demotion: watches the DRAM node, DAMOS `migrate_cold` to the CXL node for regions idle
//     long enough, young pages excluded.
// mtier.c tunes both thresholds with quota goals on node 0's utilisation (`node_mem_used_bp` /
// `node_mem_free_bp`, Linux 6.16+). Older kernels (the lab's 6.12) refuse those metrics; the
// goals are then left out and the fixed thresholds below act alone, which `notes` says.
// Every write goes through the kernel-state journal (restored by the caller, also on Ctrl-C).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminDir, damonStatus, busyMessage } from '../guest-agent/damon.js';
import type { KernelStateJournal } from '../guest-agent/kernel-state.js';

const ULONG_MAX = '18446744073709551615';
const UINT_MAX = 4294967295;

export interface NodeRange {
  node: number;
  start: number;
  end: number;
}

/** A node's physical address range from its memory blocks (first block to last, inclusive). */
export function nodePhysRange(node: number, sysRoot = '/sys'): NodeRange {
  const dir = join(sysRoot, 'devices/system/node', `node${node}`);
  const blockBytes = Number.parseInt(readFileSync(join(sysRoot, 'devices/system/memory/block_size_bytes'), 'utf8').trim(), 16);
  const blocks = readdirSync(dir)
    .map((n) => /^memory(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  if (!(blockBytes > 0) || blocks.length === 0) throw new Error(`node ${node}: no memory blocks in ${dir}`);
  return { node, start: blocks[0] * blockBytes, end: (blocks[blocks.length - 1] + 1) * blockBytes };
}

export interface DamosTieringOptions {
  dramNode: number;
  cxlNode: number;
  /** DAMON intervals: mtier.c's 5 ms / 100 ms. */
  sampleUs?: number;
  aggrUs?: number;
  /** Bytes each scheme may migrate per quota interval (1 s). */
  quotaBytesPerSec?: number;
  /** Node 0 utilisation goals, as mtier.c (basis points). */
  usedGoalBp?: number;
  freeGoalBp?: number;
}

export interface DamosTieringInfo {
  kdamondPids: number[];
  ranges: NodeRange[];
  goals: 'node-mem' | 'none';
  notes: string[];
}

interface SchemeSpec {
  action: 'migrate_hot' | 'migrate_cold';
  targetNid: number;
  minAccesses: number;
  maxAccesses: number;
  minAgeAggr: number;
  /** true: act only on young pages (promotion); false: never on young pages (demotion). */
  youngOnly: boolean;
  goal: { metric: 'node_mem_used_bp' | 'node_mem_free_bp'; value: number; nid: number };
}

/** Configures and starts the two kdamonds. Fails before writing anything when DAMON is in use. */
export function startDamosTiering(journal: KernelStateJournal, options: DamosTieringOptions, sysRoot = '/sys'): DamosTieringInfo {
  const status = damonStatus(sysRoot);
  if (!status.available) throw new Error(`DAMON: ${status.detail}`);
  if (status.busy || status.configured > 0) throw new Error(busyMessage(status));
  const sampleUs = options.sampleUs ?? 5_000;
  const aggrUs = options.aggrUs ?? 100_000;
  const quotaBytes = options.quotaBytesPerSec ?? 256 << 20;
  const dram = nodePhysRange(options.dramNode, sysRoot);
  const cxl = nodePhysRange(options.cxlNode, sysRoot);
  const admin = adminDir(sysRoot);
  const kdamonds = join(admin, 'kdamonds');
  const notes: string[] = [];
  const contexts: Array<{ range: NodeRange; scheme: SchemeSpec }> = [
    {
      range: cxl,
      scheme: { action: 'migrate_hot', targetNid: options.dramNode, minAccesses: 1, maxAccesses: 4294967295, minAgeAggr: 0, youngOnly: true, goal: { metric: 'node_mem_used_bp', value: options.usedGoalBp ?? 9970, nid: options.dramNode } },
    },
    {
      range: dram,
      // Idle for 10 aggregations (1 s at 100 ms).
      scheme: { action: 'migrate_cold', targetNid: options.cxlNode, minAccesses: 0, maxAccesses: 0, minAgeAggr: 10, youngOnly: false, goal: { metric: 'node_mem_free_bp', value: options.freeGoalBp ?? 50, nid: options.dramNode } },
    },
  ];
  journal.set(join(kdamonds, 'nr_kdamonds'), contexts.length);
  let goals: DamosTieringInfo['goals'] = 'node-mem';
  contexts.forEach(({ range, scheme }, k) => {
    const kd = join(kdamonds, String(k));
    const ctx = join(kd, 'contexts', '0');
    journal.set(join(kd, 'contexts', 'nr_contexts'), 1);
    journal.set(join(ctx, 'operations'), 'paddr');
    journal.set(join(ctx, 'monitoring_attrs', 'intervals', 'sample_us'), sampleUs);
    journal.set(join(ctx, 'monitoring_attrs', 'intervals', 'aggr_us'), aggrUs);
    journal.set(join(ctx, 'monitoring_attrs', 'nr_regions', 'min'), 10);
    journal.set(join(ctx, 'monitoring_attrs', 'nr_regions', 'max'), 1000);
    journal.set(join(ctx, 'targets', 'nr_targets'), 1);
    const target = join(ctx, 'targets', '0');
    journal.set(join(target, 'regions', 'nr_regions'), 1);
    journal.set(join(target, 'regions', '0', 'start'), range.start);
    journal.set(join(target, 'regions', '0', 'end'), range.end);
    journal.set(join(ctx, 'schemes', 'nr_schemes'), 1);
    const s = join(ctx, 'schemes', '0');
    journal.set(join(s, 'action'), scheme.action);
    if (!existsSync(join(s, 'target_nid'))) throw new Error(`DAMOS ${scheme.action} needs target_nid (Linux 6.11+): not in ${s}`);
    journal.set(join(s, 'target_nid'), scheme.targetNid);
    // A new scheme's ranges are all 0 ([0, 0]: nothing matches): every bound is written.
    journal.set(join(s, 'access_pattern', 'sz', 'min'), 0);
    journal.set(join(s, 'access_pattern', 'sz', 'max'), ULONG_MAX);
    journal.set(join(s, 'access_pattern', 'nr_accesses', 'min'), scheme.minAccesses);
    journal.set(join(s, 'access_pattern', 'nr_accesses', 'max'), scheme.maxAccesses);
    journal.set(join(s, 'access_pattern', 'age', 'min'), scheme.minAgeAggr);
    journal.set(join(s, 'access_pattern', 'age', 'max'), UINT_MAX);
    journal.set(join(s, 'quotas', 'bytes'), quotaBytes);
    journal.set(join(s, 'quotas', 'reset_interval_ms'), 1000);
    journal.set(join(s, 'filters', 'nr_filters'), 1);
    journal.set(join(s, 'filters', '0', 'type'), 'young');
    // 6.14+ filters say allow or reject; before, a filter only rejects what it matches.
    if (existsSync(join(s, 'filters', '0', 'allow'))) {
      journal.set(join(s, 'filters', '0', 'matching'), 'Y');
      journal.set(join(s, 'filters', '0', 'allow'), scheme.youngOnly ? 'Y' : 'N');
    } else {
      journal.set(join(s, 'filters', '0', 'matching'), scheme.youngOnly ? 'N' : 'Y');
    }
    // mtier.c's auto-tuning: a goal on node 0 memory. 6.16+ knows these metrics; older
    // kernels refuse the write (EINVAL), and the goal directory is removed again.
    if (goals === 'node-mem') {
      try {
        journal.set(join(s, 'quotas', 'goals', 'nr_goals'), 1);
        const g = join(s, 'quotas', 'goals', '0');
        journal.set(join(g, 'target_metric'), scheme.goal.metric);
        journal.set(join(g, 'target_value'), scheme.goal.value);
        if (existsSync(join(g, 'nid'))) journal.set(join(g, 'nid'), scheme.goal.nid);
      } catch (err) {
        goals = 'none';
        journal.set(join(s, 'quotas', 'goals', 'nr_goals'), 0);
        notes.push(`this kernel has no node_mem_used_bp/node_mem_free_bp quota goals (Linux 6.16+): ${(err as Error).message.split('\n')[0]}; fixed thresholds (promote regions seen accessed, demote regions idle >= 1 s) and a ${quotaBytes >> 20} MiB/s quota per direction instead of mtier.c's auto-tuning`);
      }
    } else {
      journal.set(join(s, 'quotas', 'goals', 'nr_goals'), 0);
    }
  });
  const pids: number[] = [];
  contexts.forEach((_, k) => {
    journal.set(join(kdamonds, String(k), 'state'), 'on');
    pids.push(Number(readFileSync(join(kdamonds, String(k), 'pid'), 'utf8').trim()));
  });
  if (pids.some((p) => !(p > 0))) throw new Error(`DAMOS tiering: a kdamond did not start (pids ${pids.join(', ')})`);
  notes.unshift(`DAMOS tiering as samples/damon/mtier.c: kdamond ${pids[0]} migrate_hot node ${options.cxlNode} -> ${options.dramNode}, kdamond ${pids[1]} migrate_cold node ${options.dramNode} -> ${options.cxlNode}, young filters, ${sampleUs / 1000} ms / ${aggrUs / 1000} ms`);
  return { kdamondPids: pids, ranges: [cxl, dram], goals, notes };
}

/** Bytes DAMOS tried and applied, per scheme (stats/*), after `update_schemes_stats`. */
export function damosStats(journal: KernelStateJournal, sysRoot = '/sys'): Array<{ kdamond: number; triedBytes: number; appliedBytes: number }> {
  const kdamonds = join(adminDir(sysRoot), 'kdamonds');
  const out: Array<{ kdamond: number; triedBytes: number; appliedBytes: number }> = [];
  for (const k of [0, 1]) {
    const kd = join(kdamonds, String(k));
    try {
      journal.set(join(kd, 'state'), 'update_schemes_stats');
      const stats = join(kd, 'contexts', '0', 'schemes', '0', 'stats');
      out.push({
        kdamond: k,
        triedBytes: Number(readFileSync(join(stats, 'sz_tried'), 'utf8').trim()),
        appliedBytes: Number(readFileSync(join(stats, 'sz_applied'), 'utf8').trim()),
      });
    } catch {
      /* not running */
    }
  }
  return out;
}
