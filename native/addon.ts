// The only module that loads the raw native binding. Everything else imports the
// typed wrappers below. Each concern keeps to its own section.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, found from this file whether it runs from source or dist/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('vtier: cannot find the package root');
    dir = parent;
  }
  return dir;
}

/** Path of a file built by `npm run build` (addon, workload binary, BPF objects). */
export function builtPath(...parts: string[]): string {
  return join(packageRoot(), 'build', ...parts);
}

/** An error raised by a system call in the addon. */
export interface SyscallError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type RawBinding = Record<string, any>;
let rawBinding: RawBinding | undefined;

function raw(): RawBinding {
  if (!rawBinding) {
    const path = builtPath('Release', 'vtier_native.node');
    if (!existsSync(path)) {
      throw Object.assign(new Error(`native addon not built (${path}); run "npm run build"`), { code: 'ENOADDON' });
    }
    rawBinding = createRequire(import.meta.url)(path) as RawBinding;
  }
  return rawBinding;
}
void raw;

// ---- bpf: object lifecycle, attach, ring buffer, map drain ----------------------------

// ---- socket: non-blocking stream sockets (AF_UNIX, AF_VSOCK) --------------------------

// ---- migrate: move_pages, placement queries ------------------------------------------
