// Binding a VM's three sources of truth together before the agent acts on any of them:
// the pidfile (which process), the QMP socket (who answers there: SO_PEERCRED, the kernel's
// word) and /proc/PID (that process is a QEMU started for this VM: its command line carries
// the configured QMP socket). A compromised QEMU, or a fake QMP server, then cannot point the
// agent at another VM's process; pids and RAM files claimed by two VMs are refused by the
// server (see HostServer). Everything read here is bounded; nothing blocks.
import { readlinkSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { readSmallFile } from './safe-read.js';

/** A QEMU command line is a few KB; anything bigger is not one we start. */
const MAX_CMDLINE_BYTES = 256 * 1024;

function procFile(procRoot: string, pid: number, name: string): string {
  return `${procRoot}/${pid}/${name}`;
}

/** The process's argv, or undefined when it is gone. */
export function readCmdline(pid: number, procRoot = '/proc'): string[] | undefined {
  try {
    const text = readSmallFile(procFile(procRoot, pid, 'cmdline'), { maxBytes: MAX_CMDLINE_BYTES, what: 'cmdline' });
    return text.split('\0').filter((a) => a !== '');
  } catch {
    return undefined;
  }
}

/** True when one of argv's comma-separated option values names `socketPath`
 *  ("unix:PATH,server=on", "path=PATH", or a bare path), relative paths resolved in `cwd`. */
export function cmdlineNamesSocket(argv: string[], socketPath: string, cwd?: string): boolean {
  const want = resolve(socketPath);
  for (const arg of argv) {
    for (const part of arg.split(',')) {
      const value = part.replace(/^(unix:|path=|socket=)/, '');
      if (value === '' || value.startsWith('-')) continue;
      if (value === socketPath || resolve(cwd ?? '/', value) === want) return true;
    }
  }
  return false;
}

/** Throws one clear line unless `pid` is a QEMU started for this VM and the QMP socket's
 *  peer is that very process. */
export function verifyQemuProcess(o: { pid: number; qmpPath: string; qmpPeerPid: number | undefined; procRoot?: string }): void {
  const procRoot = o.procRoot ?? '/proc';
  if (o.qmpPeerPid === undefined) throw new Error(`QMP ${o.qmpPath}: the kernel did not say which process serves it (SO_PEERCRED); refusing`);
  if (o.qmpPeerPid !== o.pid) {
    throw new Error(`QMP ${o.qmpPath} is served by pid ${o.qmpPeerPid}, but the pidfile names pid ${o.pid}: refusing (another process answers on this VM's QMP socket, or the pidfile is stale)`);
  }
  let exe: string;
  try {
    exe = readlinkSync(procFile(procRoot, o.pid, 'exe'));
  } catch (err) {
    throw new Error(`pid ${o.pid}: cannot read its executable (${(err as NodeJS.ErrnoException).code ?? 'error'}); refusing`);
  }
  if (!/qemu/i.test(basename(exe.replace(/ \(deleted\)$/, '')))) throw new Error(`pid ${o.pid} runs ${exe}, not QEMU: refusing`);
  const argv = readCmdline(o.pid, procRoot);
  if (!argv) throw new Error(`pid ${o.pid}: gone before its command line could be read`);
  let cwd: string | undefined;
  try {
    cwd = readlinkSync(procFile(procRoot, o.pid, 'cwd'));
  } catch {
    cwd = undefined;
  }
  if (!cmdlineNamesSocket(argv, o.qmpPath, cwd)) {
    throw new Error(`pid ${o.pid} is a QEMU whose command line does not name this VM's QMP socket ${o.qmpPath}: it was not started for this VM; refusing`);
  }
}
