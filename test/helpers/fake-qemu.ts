// A fake QEMU for trust-boundary tests: a real process whose executable is named
// qemu-system-fake (a copy of python3), which writes its pidfile, maps its own RAM file,
// serves QMP on a unix socket (SO_PEERCRED names it) and answers with a one-memdev layout
// of that file. On SIGUSR1 it does what a compromised QEMU could: mmap(MAP_FIXED) another
// VM's RAM file over its own at the same address, then answers QMP as `remapAnswer` says.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SCRIPT = String.raw`
import ctypes, json, os, select, signal, socket, sys

opts = json.loads(os.environ['FAKE_QEMU_OPTS'])
size = opts['sizeBytes']
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
PROT_RW, MAP_SHARED, MAP_FIXED = 3, 1, 0x10

def map_file(path, addr, flags):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    if os.fstat(fd).st_size < size:
        os.ftruncate(fd, size)
    a = libc.mmap(addr, size, PROT_RW, flags, fd, 0)
    if a in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), 'mmap ' + path)
    os.close(fd)
    return a

base = map_file(opts['memPath'], None, MAP_SHARED)
# Touch some pages so they are resident (move_pages has something to look at).
for i in range(0, min(size, 4 << 20), 4096):
    ctypes.c_char.from_address(base + i).value = b'x'
mem_path = opts['memPath']
state = {'remapped': False}

def on_usr1(signum, frame):
    global mem_path
    map_file(opts['victimMemPath'], base, MAP_SHARED | MAP_FIXED)
    if opts.get('remapAnswer') == 'victim':
        mem_path = opts['victimMemPath']
    state['remapped'] = True
    sys.stdout.write('remapped\n'); sys.stdout.flush()

signal.signal(signal.SIGUSR1, on_usr1)

mtree = 'FlatView #0\n AS "memory", root: system\n Root memory region: system\n  0000000000000000-%016x (prio 0, ram): %s\n' % (size - 1, opts.get('regionName', 'mem0'))

def answer(m):
    cmd = m.get('execute')
    args = m.get('arguments') or {}
    err = opts.get('errors', {}).get(cmd)
    if err is not None:
        return {'error': {'class': 'GenericError', 'desc': err}}
    if cmd == 'qmp_capabilities':
        return {'return': {}}
    if cmd == 'query-memdev':
        return {'return': [{'id': 'mem0', 'size': size, 'share': True, 'merge': False, 'dump': True, 'prealloc': False, 'policy': 'default', 'host-nodes': []}]}
    if cmd == 'qom-get' and args.get('path') == '/objects/mem0' and args.get('property') == 'mem-path':
        return {'return': mem_path}
    if cmd == 'human-monitor-command' and args.get('command-line') == 'info mtree -f':
        return {'return': mtree}
    return {'error': {'class': 'CommandNotFound', 'desc': str(cmd)}}

qmp_path = opts['qmpPath']
try:
    os.unlink(qmp_path)
except FileNotFoundError:
    pass
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(qmp_path)
srv.listen(4)
with open(opts['pidfile'], 'w') as f:
    f.write('%d\n' % os.getpid())
sys.stdout.write('ready\n'); sys.stdout.flush()
clients = {}
greeting = json.dumps({'QMP': {'version': {'qemu': {'major': 7, 'minor': 2, 'micro': 0}, 'package': ''}, 'capabilities': []}}) + '\n'
while True:
    r, _, _ = select.select([srv] + list(clients), [], [])
    for s in r:
        if s is srv:
            c, _ = srv.accept()
            clients[c] = b''
            c.sendall(greeting.encode())
            continue
        data = s.recv(65536)
        if not data:
            del clients[s]; s.close(); continue
        buf = clients[s] + data
        while b'\n' in buf:
            line, buf = buf.split(b'\n', 1)
            try:
                m = json.loads(line)
            except ValueError:
                continue
            out = answer(m)
            if 'id' in m:
                out['id'] = m['id']
            s.sendall((json.dumps(out) + '\n').encode())
        clients[s] = buf
`;

export interface FakeQemuOptions {
  dir: string;
  qmpPath: string;
  pidfile: string;
  /** Its own RAM file (created, sparse). */
  memPath: string;
  sizeBytes: number;
  /** The RAM file SIGUSR1 maps over its own (another VM's). */
  victimMemPath?: string;
  /** After the remap, QMP names the victim's file ('victim') or still its own ('own'). */
  remapAnswer?: 'victim' | 'own';
  /** The RAM region's name in \`info mtree -f\` (default mem0, the memdev's id). */
  regionName?: string;
  /** QMP commands answered with {"error": {"desc": ...}}. */
  errors?: Record<string, string>;
  /** Put the QMP socket path on the command line (as QEMU's -qmp does); default true. */
  qmpOnCmdline?: boolean;
}

export interface FakeQemu {
  pid: number;
  exe: string;
  child: ChildProcess;
  /** Maps the victim's RAM file over its own; resolves once done. */
  remap(): Promise<void>;
  stop(): Promise<void>;
}

export function fakeQemuAvailable(): string | undefined {
  const r = spawnSync('python3', ['-c', 'import sys, ctypes; print(sys.executable)'], { encoding: 'utf8' });
  return r.status === 0 && existsSync(r.stdout.trim()) ? undefined : 'python3 (with ctypes) not available for the fake QEMU';
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`fake QEMU: ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function startFakeQemu(o: FakeQemuOptions): Promise<FakeQemu> {
  const python = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).stdout.trim();
  const binDir = mkdtempSync(join(tmpdir(), 'vtier-fakeqemu-'));
  const exe = join(binDir, 'qemu-system-fake');
  copyFileSync(python, exe);
  const script = join(binDir, 'fake-qemu.py');
  writeFileSync(script, SCRIPT);
  const qmpArg = o.qmpOnCmdline === false ? [] : ['-qmp', `unix:${o.qmpPath},server=on,wait=off`];
  const args = [script, '-name', 'fake', ...qmpArg, '-pidfile', o.pidfile, '-object', `memory-backend-file,id=mem0,mem-path=${o.memPath}`];
  const env = { ...process.env, FAKE_QEMU_OPTS: JSON.stringify(o) };
  rmSync(o.pidfile, { force: true });
  const child = spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'], env, cwd: o.dir });
  let out = '';
  let err = '';
  let exited = false;
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  child.on('exit', () => (exited = true));
  await waitFor(() => exited || out.includes('ready'), 20_000, 'not ready').catch((e) => {
    child.kill('SIGKILL');
    throw e;
  });
  if (exited) throw new Error(`fake QEMU exited: ${err.trim()}`);
  return {
    pid: Number(readFileSync(o.pidfile, 'utf8').trim()),
    exe,
    child,
    async remap() {
      child.kill('SIGUSR1');
      await waitFor(() => exited || out.includes('remapped'), 10_000, 'did not remap');
      if (exited) throw new Error(`fake QEMU exited: ${err.trim()}`);
    },
    async stop() {
      if (!exited) {
        child.kill('SIGKILL');
        await waitFor(() => exited, 5000, 'did not exit').catch(() => {});
      }
      rmSync(binDir, { recursive: true, force: true });
      rmSync(o.memPath, { force: true });
      rmSync(o.qmpPath, { force: true });
      rmSync(o.pidfile, { force: true });
    },
  };
}
