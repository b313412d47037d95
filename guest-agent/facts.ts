// Facts about this machine that decide which parts of vtier can run: kernel, BTF, bpf()
// permission, NUMA balancing, THP, vsock devices, QEMU. Each probe is cheap and reads
// only, except the bpf() check, which really creates (and at once removes) a 1-entry map
// because reading capabilities does not tell whether a LSM or sysctl forbids bpf().
import { execFile } from 'node:child_process';
import { probeBpfMapCreate } from '../native/addon.js';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { cpus, hostname, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

function readTrim(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export interface KernelFact {
  release: string;
  version: string;
}

export function kernelFact(): KernelFact {
  return { release: release(), version: readTrim('/proc/version') ?? 'unknown' };
}

export interface BtfFact {
  present: boolean;
  path: string;
  bytes: number;
}

export function btfFact(path = '/sys/kernel/btf/vmlinux'): BtfFact {
  try {
    return { present: true, path, bytes: statSync(path).size };
  } catch {
    return { present: false, path, bytes: 0 };
  }
}

export interface BpfFact {
  /** bpf(BPF_MAP_CREATE) succeeded (true), failed (false) or could not be tried (null). */
  ok: boolean | null;
  how: string;
  detail: string;
  /** kernel.unprivileged_bpf_disabled (0 allowed, 1/2 root only), or null if unknown. */
  unprivilegedDisabled: number | null;
}

/** Tries a real bpf() call: BPF_MAP_CREATE of a 1-entry array through the addon, closed
 *  at once (nothing pinned, no bpffs needed). `probe` is the seam for tests. */
export function bpfFact(probe: () => void = probeBpfMapCreate): BpfFact {
  const unprivText = readTrim('/proc/sys/kernel/unprivileged_bpf_disabled');
  const unprivilegedDisabled = unprivText === undefined ? null : Number(unprivText);
  const how = 'bpf(BPF_MAP_CREATE), array of 1 entry';
  try {
    probe();
    return { ok: true, how, detail: 'BPF_MAP_CREATE allowed', unprivilegedDisabled };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (e.code === 'ENOADDON') return { ok: null, how, detail: e.message ?? 'native addon not built', unprivilegedDisabled };
    const hint = e.code === 'EPERM' ? ' (run as root, or grant CAP_BPF + CAP_PERFMON)' : '';
    return { ok: false, how, detail: `bpf() refused: ${e.message ?? e.code}${hint}`, unprivilegedDisabled };
  }
}

export interface NumaBalancingFact {
  /** kernel.numa_balancing: 0 off, 1 normal, 2 memory tiering, 3 both; null when absent. */
  value: number | null;
  mode: 'off' | 'normal' | 'tiering' | 'normal+tiering' | 'unsupported' | 'unknown';
}

export function numaBalancingFact(path = '/proc/sys/kernel/numa_balancing'): NumaBalancingFact {
  const text = readTrim(path);
  if (text === undefined) return { value: null, mode: 'unsupported' };
  const value = Number(text);
  const modes = ['off', 'normal', 'tiering', 'normal+tiering'] as const;
  return { value, mode: modes[value] ?? 'unknown' };
}

export interface VsockFact {
  /** /dev/vsock exists (guest side, or host loopback). Never opened. */
  vsock: boolean;
  /** /dev/vhost-vsock exists (host side: QEMU can give guests a vsock device). Never opened. */
  vhostVsock: boolean;
}

export function vsockFact(devRoot = '/dev'): VsockFact {
  const exists = (name: string) => {
    try {
      return statSync(join(devRoot, name)).isCharacterDevice();
    } catch {
      return false;
    }
  };
  return { vsock: exists('vsock'), vhostVsock: exists('vhost-vsock') };
}

export interface QemuFact {
  present: boolean;
  binary: string;
  version?: string;
  kvm: boolean;
}

export async function qemuFact(binary = 'qemu-system-x86_64'): Promise<QemuFact> {
  let kvm = false;
  try {
    kvm = statSync('/dev/kvm').isCharacterDevice();
  } catch {
    /* no KVM */
  }
  try {
    const { stdout } = await run(binary, ['--version'], { timeout: 5000 });
    const version = /version\s+(\S+)/.exec(stdout)?.[1] ?? stdout.split('\n')[0];
    return { present: true, binary, version, kvm };
  } catch {
    return { present: false, binary, kvm };
  }
}

export interface ThpFact {
  /** The bracketed choice of /sys/kernel/mm/transparent_hugepage/enabled. */
  enabled: string;
  defrag: string;
}

function bracketed(text: string | undefined): string {
  return (text && /\[([^\]]+)\]/.exec(text)?.[1]) ?? 'unsupported';
}

export function thpFact(dir = '/sys/kernel/mm/transparent_hugepage'): ThpFact {
  return { enabled: bracketed(readTrim(join(dir, 'enabled'))), defrag: bracketed(readTrim(join(dir, 'defrag'))) };
}

export interface HostFact {
  hostname: string;
  cpus: number;
  memTotalBytes: number;
  /** The CPU says it runs under a hypervisor (the `hypervisor` cpuinfo flag). */
  virtualized: boolean;
  root: boolean;
}

export function hostFact(): HostFact {
  const cpuinfo = readTrim('/proc/cpuinfo') ?? '';
  return {
    hostname: hostname(),
    cpus: cpus().length,
    memTotalBytes: totalmem(),
    virtualized: /^flags\s*:.*\bhypervisor\b/m.test(cpuinfo),
    root: process.getuid?.() === 0,
  };
}
