// One lab VM from boot to power-off: builds the spec, starts QEMU, streams the command's output
// (the second serial port, a file QEMU writes and this tails), and ends in exactly one of:
// the command exited (its status, written by the guest to RESULTS/.lab/exit-status), a
// timeout, an interruption, a guest panic, or QEMU failing. Whatever happens, QEMU is stopped
// (SIGTERM, then SIGKILL) and its memory files and sockets are removed; the console log and
// the output log stay in the results directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { checkoutDir, labCacheDir, readGuestKernel, type GuestKernel } from './cache.js';
import { ensureInitramfs } from './initramfs.js';
import { checkLabPath, memFiles, qemuArgs, type LabAccel, type LabMode, type LabSpec } from './qemu-args.js';
import { resolveAccel, type AccelChoice } from './accel.js';
import { shellQuote } from './shell.js';

export const QEMU = 'qemu-system-x86_64';
/** Memory files live in /dev/shm (tmpfs: no disk writes, freed on removal). */
export const SHM_DIR = '/dev/shm';
const MEM_FILE_PREFIX = 'vtier-lab-';

export type LabEnd = 'exited' | 'timeout' | 'interrupted' | 'panic' | 'no-status' | 'qemu-failed';

export interface LabRunOptions {
  mode?: Exclude<LabMode, 'probe'>;
  nodes: 1 | 2;
  memBytes: number;
  cxlBytes: number;
  smp: number;
  /** Whole-run limit, boot included. */
  timeoutMs: number;
  /** Results directory on the host; created; mounted read-write at the same path inside. */
  resultsDir: string;
  /** argv of the command to run inside (mode run). */
  command?: string[];
  /** Working directory inside (the host's paths are the guest's: same root). */
  cwd?: string;
  /** Extra environment for the command. */
  env?: Record<string, string>;
  accel?: AccelChoice;
  /** Terminal size for `lab shell`. */
  tty?: { rows: number; cols: number };
  onOutput?: (chunk: Buffer) => void;
  /** Called once QEMU's pidfile and QMP socket exist (the host agent attaches then). */
  onStarted?: (vm: StartedLab) => Promise<void> | void;
  /** Called when stage 2 starts the command (boot done). */
  onBooted?: (bootMs: number) => void;
  signal?: AbortSignal;
}

export interface StartedLab {
  pid: number;
  qmpSocket: string;
  serialSocket: string;
  pidfile: string;
  memFiles: string[];
  runtimeDir: string;
}

export interface LabRunResult {
  end: LabEnd;
  /** The command's exit status (end = exited), else null. */
  exitStatus: number | null;
  accel: LabAccel;
  accelReason: string;
  kernel: string;
  nodes: 1 | 2;
  /** From QEMU start to stage 2 starting the command; null if it never did. */
  bootMs: number | null;
  wallMs: number;
  consoleLog: string;
  outputLog: string;
  resultsDir: string;
  /** Why the run did not end with the command's status, in words. */
  detail: string | null;
}

/** Removes memory files left by lab runs whose process is gone (`vtier-lab-<pid>-...`). */
export function removeStaleMemFiles(): string[] {
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(SHM_DIR);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = /^vtier-lab-(\d+)-/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || processAlive(pid)) continue;
    rmSync(join(SHM_DIR, name), { force: true });
    removed.push(name);
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Tails a file QEMU appends to, delivering new bytes in order. */
class FileTail {
  private offset = 0;
  constructor(
    private readonly path: string,
    private readonly deliver: (chunk: Buffer) => void,
  ) {}

  poll(): void {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      return;
    }
    try {
      const size = statSync(this.path).size;
      while (this.offset < size) {
        const buf = Buffer.alloc(Math.min(1 << 16, size - this.offset));
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        if (n <= 0) break;
        this.offset += n;
        this.deliver(buf.subarray(0, n));
      }
    } finally {
      closeSync(fd);
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function writeRunScript(controlDir: string, options: LabRunOptions): void {
  const command = options.command ?? [];
  if (command.length === 0) throw new Error('lab run: no command given');
  const lines = ['# written by vtier lab run: the command, as given on the host'];
  for (const [k, v] of Object.entries(options.env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`lab run: environment name "${k}" is not a shell variable name`);
    lines.push(`export ${k}=${shellQuote(v)}`);
  }
  lines.push(`cd ${shellQuote(options.cwd ?? checkoutDir())} || exit 126`);
  lines.push(`exec ${command.map(shellQuote).join(' ')}`);
  writeFileSync(join(controlDir, 'run.sh'), `${lines.join('\n')}\n`, { mode: 0o755 });
}

/** Boots a lab VM, runs the command (or a shell) inside and tears everything down. */
export async function runLab(options: LabRunOptions): Promise<LabRunResult> {
  const started = performance.now();
  const mode = options.mode ?? 'run';
  const kernel: GuestKernel = readGuestKernel();
  const initrd = ensureInitramfs(kernel);
  const accel = await resolveAccel(options.accel ?? 'auto', kernel, initrd);
  const resultsDir = resolve(options.resultsDir);
  const checkout = checkoutDir();
  checkLabPath(resultsDir, 'results dir');
  checkLabPath(checkout, 'checkout');
  mkdirSync(resultsDir, { recursive: true });
  const controlDir = join(resultsDir, '.lab');
  mkdirSync(controlDir, { recursive: true });
  for (const f of ['exit-status', 'exit-status.tmp', 'run.sh', 'tty']) rmSync(join(controlDir, f), { force: true });
  if (mode === 'run') writeRunScript(controlDir, options);
  if (mode === 'shell' && options.tty) writeFileSync(join(controlDir, 'tty'), `${options.tty.rows} ${options.tty.cols}\n`);

  removeStaleMemFiles();
  const runtimeDir = mkdtempSync(join(labCacheDir(), 'run-'));
  const consoleLog = join(resultsDir, 'console.log');
  const outputLog = join(resultsDir, 'output.log');
  for (const f of [consoleLog, outputLog]) writeFileSync(f, '');
  const spec: LabSpec = {
    mode,
    accel: accel.accel,
    nodes: options.nodes,
    memBytes: options.memBytes,
    cxlBytes: options.cxlBytes,
    smp: options.smp,
    kernel: kernel.vmlinuz,
    initrd,
    checkout,
    results: resultsDir,
    memPrefix: join(SHM_DIR, `${MEM_FILE_PREFIX}${process.pid}-${Date.now().toString(36)}`),
    qmpSocket: join(runtimeDir, 'qmp.sock'),
    serialSocket: join(runtimeDir, 'vtier.sock'),
    pidfile: join(runtimeDir, 'qemu.pid'),
    consoleLog,
    outputLog,
  };
  const args = qemuArgs(spec);
  writeFileSync(join(controlDir, 'qemu-args.json'), `${JSON.stringify([QEMU, ...args], null, 1)}\n`);

  let child: ChildProcess | null = null;
  let exited = false;
  let qemuStderr = '';
  let end: LabEnd | null = null;
  let detail: string | null = null;
  let bootMs: number | null = null;
  const finish = (why: LabEnd, text: string | null) => {
    if (end === null) {
      end = why;
      detail = text;
    }
  };
  const onAbort = () => finish('interrupted', 'interrupted: QEMU stopped');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();

  const output = new FileTail(outputLog, (chunk) => options.onOutput?.(chunk));
  let consoleText = '';
  const consoleTail = new FileTail(consoleLog, (chunk) => {
    // Only the stage-2 markers matter here; keep a bounded tail for panic detection.
    consoleText = (consoleText + chunk.toString('latin1')).slice(-64 * 1024);
    if (bootMs === null && /vtier-lab: (running|shell)/.test(consoleText)) {
      bootMs = performance.now() - started;
      options.onBooted?.(bootMs);
    }
  });

  try {
    if (end === null) {
      child = spawn(QEMU, args, {
        stdio: mode === 'shell' ? ['inherit', 'inherit', 'pipe'] : ['ignore', 'ignore', 'pipe'],
        // A run's QEMU sits in its own process group: the terminal's Ctrl-C reaches vtier,
        // which stops it in order. A shell's QEMU must own the terminal's foreground.
        detached: mode !== 'shell',
      });
      child.stderr?.on('data', (d: Buffer) => (qemuStderr = (qemuStderr + d.toString()).slice(-8192)));
      child.on('exit', () => (exited = true));
      child.on('error', (err) => {
        exited = true;
        qemuStderr += err.message;
      });
      const deadline = started + options.timeoutMs;
      // Started: pidfile and QMP socket present.
      while (!exited && end === null && !(existsSync(spec.pidfile) && existsSync(spec.qmpSocket))) {
        if (performance.now() > deadline) finish('timeout', `timed out after ${Math.round(options.timeoutMs / 1000)} s before QEMU was up`);
        await sleep(20);
      }
      if (!exited && end === null && options.onStarted) {
        const pid = Number(readFileSync(spec.pidfile, 'utf8').trim());
        await options.onStarted({ pid, qmpSocket: spec.qmpSocket, serialSocket: spec.serialSocket, pidfile: spec.pidfile, memFiles: memFiles(spec), runtimeDir });
      }
      while (!exited && end === null) {
        output.poll();
        consoleTail.poll();
        if (performance.now() > deadline) finish('timeout', `timed out after ${Math.round(options.timeoutMs / 1000)} s (--timeout)`);
        await sleep(100);
      }
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    if (child && !exited) await stopQemu(child, () => exited);
    output.poll();
    consoleTail.poll();
    for (const f of memFiles(spec)) rmSync(f, { force: true });
    rmSync(runtimeDir, { recursive: true, force: true });
  }

  let exitStatus: number | null = null;
  const statusFile = join(controlDir, 'exit-status');
  if (end === null) {
    if (existsSync(statusFile)) {
      exitStatus = Number(readFileSync(statusFile, 'utf8').trim());
      finish('exited', null);
    } else if (/Kernel panic/.test(consoleText)) {
      const line = /Kernel panic[^\n]*/.exec(consoleText)?.[0] ?? 'Kernel panic';
      finish('panic', `the guest kernel panicked (${line.trim()}); see ${consoleLog}`);
    } else if (qemuStderr.trim() !== '' && bootMs === null) {
      finish('qemu-failed', `QEMU failed: ${qemuStderr.trim().split('\n')[0]}`);
    } else {
      const stage = /vtier-lab: stage 1: ([^\n]*)/.exec(consoleText)?.[1];
      finish('no-status', stage ? `the guest could not start: ${stage.trim()}` : `the guest powered off without an exit status; see ${consoleLog}`);
    }
  }
  return {
    end: end!,
    exitStatus,
    accel: accel.accel,
    accelReason: accel.reason,
    kernel: kernel.release,
    nodes: options.nodes,
    bootMs: bootMs === null ? null : Math.round(bootMs),
    wallMs: Math.round(performance.now() - started),
    consoleLog,
    outputLog,
    resultsDir,
    detail,
  };
}

/** SIGTERM (QEMU exits cleanly on it), SIGKILL after 5 s. Only our own child. */
async function stopQemu(child: ChildProcess, exited: () => boolean): Promise<void> {
  child.kill('SIGTERM');
  for (let i = 0; i < 50 && !exited(); i++) await sleep(100);
  if (!exited()) {
    child.kill('SIGKILL');
    for (let i = 0; i < 50 && !exited(); i++) await sleep(100);
  }
}
