// KVM or TCG. /dev/kvm existing is not enough: on these machines it is a PVM kvm that cannot
// start a normal guest (QEMU dies on a failed MSR write). So the probe boots the lab kernel
// for real with -accel kvm into the initramfs's probe mode, which prints a marker and powers
// off; KVM is used only if the marker arrives. The answer is kept for the process.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { labCacheDir, type GuestKernel } from './cache.js';
import type { LabAccel } from './qemu-args.js';

export type AccelChoice = 'auto' | LabAccel;

export interface AccelDecision {
  accel: LabAccel;
  reason: string;
}

const PROBE_MARKER = 'VTIER-LAB-PROBE-OK';
const PROBE_TIMEOUT_MS = 30_000;
let cached: AccelDecision | null = null;

export async function probeKvm(kernel: GuestKernel, initrd: string): Promise<AccelDecision> {
  if (!existsSync('/dev/kvm')) return { accel: 'tcg', reason: 'TCG: no /dev/kvm' };
  const dir = mkdtempSync(join(labCacheDir(), 'probe-'));
  const log = join(dir, 'console.log');
  try {
    const args = [
      '-machine', 'q35', '-accel', 'kvm', '-cpu', 'host', '-m', '256M', '-smp', '1',
      '-kernel', kernel.vmlinuz, '-initrd', initrd,
      '-append', 'console=ttyS0 rdinit=/init panic=-1 vtier.mode=probe',
      '-serial', `file:${log}`, '-display', 'none', '-nodefaults', '-no-reboot',
    ];
    const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
    const code = await new Promise<number | null>((resolveExit) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), PROBE_TIMEOUT_MS);
      child.on('error', () => undefined);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolveExit(c);
      });
    });
    const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
    if (text.includes(PROBE_MARKER)) return { accel: 'kvm', reason: 'KVM: /dev/kvm booted the probe guest' };
    const why = stderr.trim().split('\n').find((l) => l.trim() !== '') ?? (code === null ? `no boot within ${PROBE_TIMEOUT_MS / 1000} s` : `QEMU exited with ${code}`);
    return { accel: 'tcg', reason: `TCG: /dev/kvm cannot start a guest here (${why.replace(/^qemu-system-x86_64: /, '')})` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function resolveAccel(choice: AccelChoice, kernel: GuestKernel, initrd: string): Promise<AccelDecision> {
  if (choice === 'tcg') return { accel: 'tcg', reason: 'TCG: chosen with --accel tcg' };
  cached ??= await probeKvm(kernel, initrd);
  if (choice === 'kvm' && cached.accel !== 'kvm') throw new Error(`--accel kvm: ${cached.reason}`);
  return cached;
}
