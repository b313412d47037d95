// Child processes for campaigns: start a workload stopped (so the agent can attach before
// the first instruction runs), read a process's CPU time from /proc, stop what we started.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, readdirSync, readFileSync, readlinkSync, rmdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { vtierCommand } from './results.js';

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
  const child = spawn('/bin/sh', ['-c', 'kill -STOP $$ && exec "$@"', 'sh', ...argv], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: withVtierOnPath(env) });
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

let shimDir: string | null = null;

/**
 * `env` with a directory holding a `vtier` shim first on PATH: the shim runs this very CLI
 * (this node, this checkout's bin/vtier.js) by absolute path, so a workload or agent command
 * written as `vtier workload ...` works in children whether or not vtier is installed, and
 * always runs the same build as the campaign. The directory is removed when this process exits.
 */
export function withVtierOnPath(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (!shimDir) {
    const [node, bin] = vtierCommand();
    const dir = mkdtempSync(join(tmpdir(), 'vtier-path-'));
    const quote = (p: string): string => `'${p.replace(/'/g, `'\\''`)}'`;
    writeFileSync(join(dir, 'vtier'), `#!/bin/sh\nexec ${quote(node)} ${quote(bin)} "$@"\n`);
    chmodSync(join(dir, 'vtier'), 0o755);
    shimDir = dir;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  const path = env.PATH ?? '/usr/local/bin:/usr/bin:/bin';
  return path.split(delimiter)[0] === shimDir ? env : { ...env, PATH: `${shimDir}${delimiter}${path}` };
}

/** Where `command` resolves on `env`'s PATH (as exec would), or null when it does not. */
export function resolveCommand(command: string, env: NodeJS.ProcessEnv = withVtierOnPath()): string | null {
  const executable = (p: string): boolean => {
    try {
      accessSync(p, constants.X_OK);
      return statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (command.includes('/')) return executable(command) ? (isAbsolute(command) ? command : join(process.cwd(), command)) : null;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && executable(join(dir, command))) return join(dir, command);
  }
  return null;
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

/**
 * A cgroup v2 that counts one campaign arm: every process moved into it, and every process
 * they fork (children that exit early, daemons that double-fork) is charged to its
 * `cpu.stat` usage, which /proc/PID/stat of one pid cannot see. Created directly under the
 * cgroup2 mount (a child of the root may take any process), removed again by `remove()`, or
 * at process exit for one that is left over.
 */
export interface CgroupUsage {
  /** cpu.stat usage_usec in seconds: user + system time of everything that was inside. */
  cpuS: number;
  /** memory.peak in bytes; null when the memory controller is not enabled for this cgroup. */
  memoryPeakBytes: number | null;
}

export type CgroupProbe = { ok: true; mount: string; memory: boolean; memoryNote: string | null } | { ok: false; reason: string };

/** Where cgroup2 is mounted (from mountinfo), or null. */
export function cgroup2Mount(mountinfo = '/proc/self/mountinfo'): string | null {
  let text: string;
  try {
    text = readFileSync(mountinfo, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (right?.split(' ')[0] === 'cgroup2') return left.split(' ')[4] ?? null;
  }
  return null;
}

/** Whether per-arm cgroups can be made here, and whether they will report memory.peak. */
export function probeCgroups(mount = cgroup2Mount()): CgroupProbe {
  if (!mount) return { ok: false, reason: 'cgroup v2 is not mounted (no cgroup2 line in /proc/self/mountinfo)' };
  try {
    accessSync(join(mount, 'cgroup.procs'), constants.W_OK);
  } catch {
    return { ok: false, reason: `cgroup v2 at ${mount} is not writable by this user (campaigns run as root)` };
  }
  let subtree = '';
  try {
    subtree = readFileSync(join(mount, 'cgroup.subtree_control'), 'utf8');
  } catch {
    /* treated as no controllers */
  }
  const memory = /\bmemory\b/.test(subtree);
  return {
    ok: true,
    mount,
    memory,
    memoryNote: memory ? null : `no memory peak: the memory controller is not enabled in ${join(mount, 'cgroup.subtree_control')} (on this machine memory may be a cgroup v1 hierarchy)`,
  };
}

const leftover = new Set<string>();
let exitHookInstalled = false;

function removeNow(path: string): boolean {
  try {
    if (existsSync(join(path, 'cgroup.kill'))) writeFileSync(join(path, 'cgroup.kill'), '1');
  } catch {
    /* already empty or gone */
  }
  try {
    rmdirSync(path);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

export class ArmCgroup {
  private removed = false;
  private constructor(readonly path: string, private readonly memory: boolean) {}

  /** Makes `<mount>/<name>`; throws when it cannot (callers probe first). */
  static create(probe: Extract<CgroupProbe, { ok: true }>, name: string): ArmCgroup {
    const path = join(probe.mount, name.replace(/[^A-Za-z0-9._-]+/g, '_'));
    mkdirSync(path);
    leftover.add(path);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.once('exit', () => {
        for (const p of leftover) removeNow(p);
      });
    }
    return new ArmCgroup(path, probe.memory);
  }

  /** Moves a process (and, from now on, whatever it forks) into this cgroup. */
  add(pid: number): void {
    writeFileSync(join(this.path, 'cgroup.procs'), String(pid));
  }

  /** Moves a process out again, into the cgroup2 path it came from (`0::/path`). */
  release(pid: number, backTo: string): void {
    writeFileSync(join(backTo, 'cgroup.procs'), String(pid));
  }

  usage(): CgroupUsage {
    const stat = readFileSync(join(this.path, 'cpu.stat'), 'utf8');
    const usec = Number(/^usage_usec (\d+)/m.exec(stat)?.[1] ?? NaN);
    let peak: number | null = null;
    if (this.memory) {
      try {
        peak = Number(readFileSync(join(this.path, 'memory.peak'), 'utf8').trim());
      } catch {
        peak = null;
      }
    }
    return { cpuS: usec / 1e6, memoryPeakBytes: peak !== null && Number.isFinite(peak) ? peak : null };
  }

  /** Kills whatever is still inside and removes the directory; waits up to `graceMs`. */
  async remove(graceMs = 3000): Promise<void> {
    if (this.removed) return;
    const deadline = Date.now() + graceMs;
    while (!removeNow(this.path)) {
      if (Date.now() > deadline) throw new Error(`cannot remove cgroup ${this.path}: processes still inside after ${graceMs} ms`);
      await sleep(10);
    }
    this.removed = true;
    leftover.delete(this.path);
  }
}

/** The cgroup2 directory a process is in now (from /proc/PID/cgroup), or null. */
export function cgroupOf(pid: number, mount: string, procRoot = '/proc'): string | null {
  try {
    const line = readFileSync(`${procRoot}/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
    return line ? join(mount, line.slice(3)) : null;
  } catch {
    return null;
  }
}
