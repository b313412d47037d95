// Shared by the lab tests: is the lab ready (in CI it must be: setup.sh prepares it), the
// compiled CLI, and the checks that a run left nothing behind.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { labMissing } from '../../lab/cache.js';

export const CHECKOUT = join(import.meta.dirname, '..', '..');
export const VTIER = join(CHECKOUT, 'bin', 'vtier.js');

/** Why the lab tests cannot run here, or undefined. In CI a missing lab is a failure. */
export function labSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'the lab tests need root (QEMU memory files, BPF and DAMON inside)';
  const missing = labMissing();
  return missing.length > 0 ? `lab not ready: ${missing.join('; ')}` : undefined;
}

/**
 * What every lab test file starts with: the skip reason (a failure in CI, where setup.sh must
 * have prepared the lab), and results directories in the checkout (the guest mounts the
 * checkout, not /tmp) that are removed after the file.
 */
export function labTestFile(name: string): { skip: string | undefined; resultsDir: (tag: string) => string } {
  const skip = labSkipReason();
  if (skip && process.env.CI === 'true') throw new Error(`CI must run the lab tests: ${skip}`);
  if (skip) console.warn(`${name}: skipped: ${skip}`);
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return {
    skip,
    resultsDir: (tag) => {
      const dir = mkdtempSync(join(CHECKOUT, `results-test-${tag}-`));
      dirs.push(dir);
      return dir;
    },
  };
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

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
  pid: number;
}

/** Runs the compiled CLI without blocking the test worker (a lab run lasts minutes: spawnSync
 *  would starve vitest's RPC); kills it with SIGKILL after `timeoutMs`. */
export function runCli(args: string[], timeoutMs: number): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [VTIER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, pid: child.pid ?? 0 });
    });
  });
}
