// Shared by the tests that load BPF programs into the running kernel: why they cannot run here,
// and whether they skip. In CI (CI=true) they must run, so a missing prerequisite fails them.
import { existsSync } from 'node:fs';
import { builtPath } from '../../native/addon.js';

/** Why BPF tests cannot run on this machine, or undefined. `needs` names what root is for. */
export function bpfUnavailable(needs = 'bpf()'): string | undefined {
  if (process.getuid?.() !== 0) return `needs root for ${needs}`;
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'kernel has no BTF';
  if (!existsSync(builtPath('Release', 'vtier_native.node'))) return 'addon not built (npm run build:native)';
  if (!existsSync(builtPath('bpf', 'sampler.bpf.o'))) return 'BPF object not built (npm run build:bpf)';
  return undefined;
}

/** The skip decision of a BPF test file, said once on stderr when a prerequisite is missing. */
export function bpfTestGuard(file: string, needs?: string): { skip: boolean; reason: string | undefined } {
  const reason = bpfUnavailable(needs);
  const skip = reason !== undefined && process.env.CI !== 'true';
  if (reason) console.warn(`${file}: ${skip ? 'skipping' : 'CI=true, running anyway'}: ${reason}`);
  return { skip, reason };
}
