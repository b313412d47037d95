// The lab VM's initramfs: busybox-static, the kernel package's four 9p modules (decompressed:
// busybox insmod does not read .ko.xz) and lab/initramfs-init.sh as /init. Built once per
// (kernel, init script, busybox) and cached under the lab cache; the name carries a hash of
// those inputs, so a changed init script or kernel gives a new image and never a stale one.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUSYBOX, checkoutDir, labCacheDir, LabNotReady, type GuestKernel } from './cache.js';

/** In load order: netfs and 9pnet before the transports and the filesystem that need them. */
export const NINEP_MODULES = [
  ['netfs', 'kernel/fs/netfs/netfs.ko'],
  ['9pnet', 'kernel/net/9p/9pnet.ko'],
  ['9pnet_virtio', 'kernel/net/9p/9pnet_virtio.ko'],
  ['9p', 'kernel/fs/9p/9p.ko'],
] as const;

function moduleFile(kernel: GuestKernel, rel: string): { path: string; xz: boolean } {
  for (const [suffix, xz] of [['', false], ['.xz', true]] as const) {
    const path = join(kernel.modulesDir, rel + suffix);
    if (existsSync(path)) return { path, xz };
  }
  throw new LabNotReady(`the guest kernel has no ${rel}(.xz) in ${kernel.modulesDir}`);
}

function inputsHash(kernel: GuestKernel, init: string): string {
  const bb = statSync(BUSYBOX);
  return createHash('sha256').update(kernel.release).update('\0').update(init).update('\0').update(`${bb.size}:${bb.mtimeMs}`).digest('hex').slice(0, 16);
}

/** Returns the initramfs for `kernel`, building it if the cached one is absent or stale. */
export function ensureInitramfs(kernel: GuestKernel, cache = labCacheDir()): string {
  if (!existsSync(BUSYBOX)) throw new LabNotReady(`${BUSYBOX} is missing: apt-get install busybox-static (scripts/setup.sh does)`);
  const init = readFileSync(join(checkoutDir(), 'lab', 'initramfs-init.sh'), 'utf8');
  const out = join(cache, `initramfs-${kernel.release}-${inputsHash(kernel, init)}.cpio.gz`);
  if (existsSync(out)) return out;
  mkdirSync(cache, { recursive: true });
  const root = mkdtempSync(join(cache, 'initramfs-'));
  try {
    for (const d of ['bin', 'dev', 'proc', 'sys', 'modules', 'newroot']) mkdirSync(join(root, d));
    copyFileSync(BUSYBOX, join(root, 'bin', 'busybox'));
    chmodSync(join(root, 'bin', 'busybox'), 0o755);
    for (const [name, rel] of NINEP_MODULES) {
      const mod = moduleFile(kernel, rel);
      const bytes = mod.xz ? execFileSync('xz', ['-dc', mod.path], { maxBuffer: 64 << 20 }) : readFileSync(mod.path);
      writeFileSync(join(root, 'modules', `${name}.ko`), bytes);
    }
    writeFileSync(join(root, 'init'), init, { mode: 0o755 });
    // newc is the format the kernel unpacks; file names relative to the root, as find prints them.
    const list = execFileSync('find', ['.', '-mindepth', '1'], { cwd: root }).toString();
    const cpio = execFileSync('cpio', ['-o', '-H', 'newc', '--quiet', '--owner=0:0'], { cwd: root, input: list, maxBuffer: 256 << 20 });
    const gz = execFileSync('gzip', ['-1', '-c'], { input: cpio, maxBuffer: 256 << 20 });
    writeFileSync(`${out}.tmp`, gz);
    renameSync(`${out}.tmp`, out);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return out;
}
