// Child processes for campaigns: start a workload stopped (so the agent can attach before
// the first instruction runs), read a process's CPU time from /proc, stop what we started.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';

/** Clock ticks per second for /proc/PID/stat times (USER_HZ is 100 on every Linux ABI). */
export const USER_HZ = 100;

export interface ProcCpu {
  /** utime + stime of the process itself, seconds. */
  selfS: number;
  /** cutime + cstime: children it has waited for, seconds. */
  childrenS: number;
}

/** CPU time of a process from `<procRoot>/PID/stat`; null when it is gone. */
export function readProcCpu(pid: number, procRoot = '/proc'): ProcCpu | null {
  let stat: string;
  try {
    stat = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // Fields after "(comm)": the comm may contain spaces and parentheses, so split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14 -> index 11.
  const ticks = (i: number): number => Number(fields[i]) || 0;
  return { selfS: (ticks(11) + ticks(12)) / USER_HZ, childrenS: (ticks(13) + ticks(14)) / USER_HZ };
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export function waitExit(child: ChildProcess): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode as NodeJS.Signals | null });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Keeps the last `limit` characters of a stream. */
export function captureTail(stream: NodeJS.ReadableStream | null, limit = 64 * 1024): () => string {
  let text = '';
  stream?.setEncoding?.('utf8');
  stream?.on('data', (chunk: string) => {
    text += chunk;
    if (text.length > limit * 2) text = text.slice(-limit);
  });
  return () => text.slice(-limit);
}

export interface StoppedChild {
  child: ChildProcess;
  pid: number;
  stdout: () => string;
  stderr: () => string;
  /** Lets the command run; returns the start time (performance.now() ms). */
  resume(): number;
}

/**
 * Spawns `argv` in its own process group, stopped before exec: `sh` stops itself with
 * SIGSTOP and execs the command once continued, so the pid stays the workload's pid and an
 * agent given that pid sees the workload from its first instruction.
 */
export async function spawnStopped(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<StoppedChild> {
  const child = spawn('/bin/sh', ['-c', 'kill -STOP $$ && exec "$@"', 'sh', ...argv], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env });
  const stdout = captureTail(child.stdout);
  const stderr = captureTail(child.stderr);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`cannot start ${argv[0]}`);
  // Wait until the shell has stopped itself (state T in /proc/PID/stat).
  const deadline = Date.now() + 5000;
  for (;;) {
    let state = '';
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    } catch {
      state = 'gone';
    }
    if (state === 'T') break;
    if (state === 'gone' || child.exitCode !== null) throw new Error(`${argv[0]}: exited before it could start (${stderr().trim().split('\n').pop() ?? ''})`);
    if (Date.now() > deadline) throw new Error(`${argv[0]}: did not reach its start point within 5 s`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return {
    child,
    pid,
    stdout,
    stderr,
    resume() {
      const t = performance.now();
      process.kill(pid, 'SIGCONT');
      return t;
    },
  };
}

/** Sends `signal` to the child's process group (falls back to the child alone). */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

/** Asks a child to stop (signal), then SIGKILLs its group after `graceMs`. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null) return waitExit(child);
  signalGroup(child, signal);
  // A stopped process cannot act on SIGTERM/SIGINT until continued.
  signalGroup(child, 'SIGCONT');
  const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), graceMs);
  try {
    return await waitExit(child);
  } finally {
    clearTimeout(timer);
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * True once `pid` holds an attached BPF program: a `bpf-prog` fd plus a `bpf_link` or
 * `[perf_event]` fd (how libbpf attaches tracepoints and perf events). That is the moment a
 * BPF-based agent starts seeing events, which a fixed sleep cannot know on a loaded machine.
 */
export function hasAttachedBpf(pid: number, procRoot = '/proc'): boolean {
  let names: string[];
  try {
    names = readdirSync(`${procRoot}/${pid}/fd`);
  } catch {
    return false;
  }
  let prog = false;
  let attach = false;
  for (const name of names) {
    let target: string;
    try {
      target = readlinkSync(`${procRoot}/${pid}/fd/${name}`);
    } catch {
      continue;
    }
    if (target === 'anon_inode:bpf-prog') prog = true;
    else if (target === 'anon_inode:bpf_link' || target === 'anon_inode:[perf_event]') attach = true;
  }
  return prog && attach;
}
