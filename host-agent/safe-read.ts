// Reading the few files the host agent trusts its surroundings for (pidfiles, host.json)
// without letting those surroundings stall or bloat it: O_NONBLOCK so a FIFO cannot block
// the event loop, O_NOFOLLOW where a symlink has no business (pidfiles), a regular file
// required (not /dev/zero, not a FIFO, not a directory), and a size cap read with one
// bounded buffer.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

export interface SafeReadOptions {
  /** Larger files are refused. */
  maxBytes: number;
  /** Refuse a symlink at the last path component (O_NOFOLLOW). */
  noFollow?: boolean;
  /** What the file is, for messages ("pidfile", "config"). */
  what: string;
}

function kindOf(st: import('node:fs').Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Reads a small regular file as UTF-8; throws one clear line naming the file. */
export function readSmallFile(path: string, o: SafeReadOptions): string {
  const flags = constants.O_RDONLY | constants.O_NONBLOCK | (o.noFollow ? constants.O_NOFOLLOW : 0);
  let fd: number;
  try {
    fd = openSync(path, flags);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' && o.noFollow) throw Object.assign(new Error(`${o.what} ${path}: is a symlink (refused)`), { code });
    throw Object.assign(new Error(`${o.what} ${path}: ${code ?? (err as Error).message}`), { code });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw Object.assign(new Error(`${o.what} ${path}: ${kindOf(st)}, expected a regular file`), { code: 'EFTYPE' });
    if (st.size > o.maxBytes) throw Object.assign(new Error(`${o.what} ${path}: ${st.size} bytes, more than the ${o.maxBytes} allowed`), { code: 'EFBIG' });
    // The size can change under us: read at most maxBytes + 1 and refuse if it grew.
    const buf = Buffer.alloc(o.maxBytes + 1);
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n > o.maxBytes) throw Object.assign(new Error(`${o.what} ${path}: more than the ${o.maxBytes} bytes allowed`), { code: 'EFBIG' });
    }
    return buf.toString('utf8', 0, n);
  } finally {
    closeSync(fd);
  }
}
