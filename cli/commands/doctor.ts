// `vtier doctor`: what this machine offers vtier (kernel, BTF, bpf(), PMU, DAMON, NUMA,
// vsock, QEMU, THP) and which sample source to use. It reports; missing features are
// not failures. Only a failure of doctor itself exits non-zero.
import type { Command } from 'commander';
import { action, examples } from '../command.js';
import { printResult, type OutputOptions } from '../output.js';
import { formatBytes } from '../../src/util/units.js';
import { labReadiness } from './lab.js';
import { bpfFact, btfFact, hostFact, kernelFact, numaBalancingFact, qemuFact, thpFact, vsockFact } from '../../guest-agent/facts.js';
import { detectPmu } from '../../guest-agent/perf-attr.js';
import { damonStatus } from '../../guest-agent/damon.js';
import { readNumaTopology } from '../../host-agent/numa.js';
import { recommendSource } from '../../guest-agent/sampler.js';

export type CheckStatus = 'ok' | 'warn' | 'missing' | 'error';

export interface DoctorCheck {
  name: string;
  status: CheckStatus;
  value: string;
  detail: string;
}

/** Runs a probe; a probe that throws becomes an 'error' row, never a doctor failure. */
function probe<T>(fn: () => T): { value?: T; error?: string } {
  try {
    return { value: fn() };
  } catch (err) {
    return { error: (err as Error).message?.split('\n')[0] ?? String(err) };
  }
}

export async function gatherDoctor() {
  const bpf = bpfFact();
  const qemu = await qemuFact();
  const kernel = kernelFact();
  const btf = btfFact();
  const host = hostFact();
  const pmu = probe(() => detectPmu());
  const damon = probe(() => damonStatus());
  const numa = probe(() => readNumaTopology());
  const numaBalancing = numaBalancingFact();
  const vsock = vsockFact();
  const thp = thpFact();
  const recommendation = probe(() => recommendSource({ pmu: pmu.value, damon: damon.value }));
  // Inside a lab VM the lab is the machine itself; on a host, its readiness (and whether
  // /dev/kvm really boots a guest: a real, short boot of the lab kernel).
  const lab = process.env.VTIER_LAB ? null : await labReadiness(qemu.present);

  const checks: DoctorCheck[] = [];
  const add = (name: string, status: CheckStatus, value: string, detail = '') => checks.push({ name, status, value, detail });

  add('kernel', 'ok', kernel.release, host.virtualized ? 'running under a hypervisor (guest)' : 'bare metal or hypervisor hidden');
  add('BTF', btf.present ? 'ok' : 'missing', btf.present ? formatBytes(btf.bytes) : 'absent', btf.present ? btf.path : `${btf.path} missing: CO-RE BPF programs cannot load (need CONFIG_DEBUG_INFO_BTF)`);
  add(
    'bpf()',
    bpf.ok === true ? 'ok' : bpf.ok === false ? 'missing' : 'warn',
    bpf.ok === true ? 'allowed' : bpf.ok === false ? 'refused' : 'unknown',
    `${bpf.detail} (${bpf.how})${bpf.unprivilegedDisabled !== null ? `; unprivileged_bpf_disabled=${bpf.unprivilegedDisabled}` : ''}`,
  );
  if (pmu.value) {
    const hw = pmu.value.kind !== 'none';
    add('PMU', hw ? 'ok' : 'warn', pmu.value.kind, hw ? pmu.value.detail : `${pmu.value.detail}; pebs/ibs cannot run, faults and damon can`);
  } else add('PMU', 'error', 'error', pmu.error!);
  if (damon.value) {
    const d = damon.value;
    const ops = [d.paddr && 'paddr', d.vaddr && 'vaddr'].filter(Boolean).join('+') || 'none';
    add('DAMON', !d.available ? 'missing' : d.busy ? 'warn' : 'ok', d.available ? `${ops}${d.busy ? ', busy' : ''}` : 'absent', d.busy ? `${d.detail}; vtier observes the running kdamond (--damon-mode observe)` : d.detail);
  } else add('DAMON', 'error', 'error', damon.error!);
  if (numa.value) {
    const { nodes, memoryTiers } = numa.value;
    const cpuless = nodes.filter((n) => n.cpuless).map((n) => n.id);
    const nodeText = nodes.map((n) => `node ${n.id}: ${n.cpuless ? 'no CPUs' : `${n.cpus.length} CPUs`}, ${formatBytes(n.memTotalBytes)}`).join('; ');
    const tiers = memoryTiers.map((t) => `tier ${t.tier}: nodes ${t.nodes.join(',')}`).join('; ');
    add(
      'NUMA',
      nodes.length > 1 ? 'ok' : 'warn',
      `${nodes.length} node${nodes.length === 1 ? '' : 's'}${cpuless.length ? `, CPU-less: ${cpuless.join(',')}` : ''}`,
      `${nodeText}${tiers ? `; memory tiers: ${tiers}` : ''}${nodes.length <= 1 ? '; one node: pages cannot move between tiers here' : ''}`,
    );
  } else add('NUMA', 'error', 'error', numa.error!);
  add(
    'numa_balancing',
    numaBalancing.mode === 'unsupported' ? 'missing' : 'ok',
    numaBalancing.value === null ? 'absent' : `${numaBalancing.value} (${numaBalancing.mode})`,
    numaBalancing.mode === 'tiering' || numaBalancing.mode === 'normal+tiering' ? 'AutoNUMA memory tiering is active: it migrates pages too' : 'AutoNUMA tiering comparison uses numa_balancing=2',
  );
  add(
    'vsock',
    vsock.vsock || vsock.vhostVsock ? 'ok' : 'warn',
    [vsock.vsock && '/dev/vsock', vsock.vhostVsock && '/dev/vhost-vsock'].filter(Boolean).join(', ') || 'absent',
    'device nodes checked with stat only (never opened); without vsock use virtio-serial, unix or tcp transport',
  );
  add('QEMU', qemu.present ? 'ok' : 'warn', qemu.present ? qemu.version ?? 'present' : 'absent', `${qemu.binary}${qemu.present ? '' : ' not found'}; /dev/kvm ${qemu.kvm ? 'present' : 'absent'}`);
  if (lab === null) add('lab', 'ok', 'inside', 'this is a lab VM (vtier lab): guest kernel of our own, its own DAMON and NUMA nodes');
  else if (lab.ready) add('lab', 'ok', 'ready', `guest kernel ${lab.kernel}; ${lab.accel ?? 'accelerator not probed'}; vtier lab run, vtier demo --on lab`);
  else add('lab', 'warn', 'not ready', lab.missing.join('; '));
  add('THP', thp.enabled === 'unsupported' ? 'missing' : 'ok', thp.enabled, `defrag ${thp.defrag}; vtier workload --thp uses MADV_HUGEPAGE`);
  if (recommendation.value) {
    const r = recommendation.value;
    add('recommended', 'ok', `${r.source}${r.damonMode ? ` (${r.damonMode})` : ''}`, r.why);
  } else add('recommended', 'error', 'error', recommendation.error!);

  return {
    kernel,
    btf,
    bpf,
    pmu: pmu.value ?? { kind: 'unknown', detail: pmu.error },
    damon: damon.value ?? { available: false, detail: damon.error },
    numa: numa.value
      ? { ...numa.value, cpulessNodes: numa.value.nodes.filter((n) => n.cpuless).map((n) => n.id) }
      : { nodes: [], memoryTiers: [], cpulessNodes: [], error: numa.error },
    numaBalancing,
    vsock,
    qemu,
    lab: lab ?? { inside: true },
    thp,
    host,
    recommendation: recommendation.value ?? { source: null, why: recommendation.error },
    checks,
  };
}

export type DoctorReport = Awaited<ReturnType<typeof gatherDoctor>>;

const MARKS: Record<CheckStatus, string> = { ok: 'ok', warn: 'warn', missing: 'MISSING', error: 'ERROR' };

export function formatDoctor(report: DoctorReport): string {
  const rows = report.checks;
  const nameWidth = Math.max(...rows.map((r) => r.name.length));
  const markWidth = Math.max(...rows.map((r) => MARKS[r.status].length));
  const valueWidth = Math.max(...rows.map((r) => r.value.length));
  return rows
    .map((r) => `${MARKS[r.status].padEnd(markWidth)}  ${r.name.padEnd(nameWidth)}  ${r.value.padEnd(valueWidth)}  ${r.detail}`.trimEnd())
    .join('\n');
}

export function registerDoctor(program: Command): void {
  const cmd = program
    .command('doctor')
    .description('check what this machine offers vtier (BPF, PMU, DAMON, NUMA, vsock, QEMU, THP) and recommend a sample source');
  examples(cmd, ['vtier doctor', 'vtier doctor --json | jq .recommendation']);
  action<OutputOptions>(cmd, async (_args, options) => {
    const report = await gatherDoctor();
    printResult(options, report, () => formatDoctor(report));
  });
}
