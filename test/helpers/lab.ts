// Shared by the lab tests: is the lab ready (in CI it must be: setup.sh prepares it), the
// compiled CLI, and the checks that a run left nothing behind.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { labMissing } from '../../lab/cache.js';

export const CHECKOUT = join(import.meta.dirname, '..', '..');
export const VTIER = join(CHECKOUT, 'bin', 'vtier.js');

/** Why the lab tests cannot run here, or undefined. In CI a missing lab is a failure. */
export function labSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'the lab tests need root (QEMU memory files, BPF and DAMON inside)';
  const missing = labMissing();
  return missing.length > 0 ? `lab not ready: ${missing.join('; ')}` : undefined;
}

/** Pids of processes whose command line mentions `needle` (our QEMU names the results dir). */
export function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'latin1').includes(needle)) pids.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return pids;
}

/** Memory files of lab runs still in /dev/shm. */
export function labMemFiles(): string[] {
  return readdirSync('/dev/shm').filter((n) => n.startsWith('vtier-lab-'));
}
