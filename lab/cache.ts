// Where the lab keeps what it fetched and built, and whether it is ready. Everything lives in
// one project-local directory (`<checkout>/.lab`, or $VTIER_LAB_CACHE): the guest kernel that
// lab/fetch-kernel.sh unpacked (kernel.json says where) and the initramfs built from it.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout this module belongs to (lab/ sits at its top, dist/lab/ when compiled). */
export function checkoutDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const up = resolve(here, '..');
  return existsSync(join(up, 'package.json')) ? up : resolve(up, '..');
}

export function labCacheDir(): string {
  return process.env.VTIER_LAB_CACHE ? resolve(process.env.VTIER_LAB_CACHE) : join(checkoutDir(), '.lab');
}

/** The guest kernel as lab/fetch-kernel.sh recorded it; paths are absolute. */
export interface GuestKernel {
  package: string;
  release: string;
  vmlinuz: string;
  config: string;
  modulesDir: string;
}

export class LabNotReady extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabNotReady';
  }
}

const SETUP_HINT = 'run `bash scripts/setup.sh` (or `vtier lab setup`)';

/** Reads `kernel.json` and checks that its files exist; throws LabNotReady naming what is missing. */
export function readGuestKernel(cache = labCacheDir()): GuestKernel {
  const manifestPath = join(cache, 'kernel.json');
  if (!existsSync(manifestPath)) throw new LabNotReady(`no guest kernel in ${cache}: ${SETUP_HINT}`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new LabNotReady(`${manifestPath} is not valid JSON (${(err as Error).message}): delete it and ${SETUP_HINT}`);
  }
  const field = (name: string): string => {
    const v = raw[name];
    if (typeof v !== 'string' || v === '' || v.includes('..')) throw new LabNotReady(`${manifestPath}: "${name}" missing or invalid: delete it and ${SETUP_HINT}`);
    return v;
  };
  const kernel: GuestKernel = {
    package: field('package'),
    release: field('release'),
    vmlinuz: join(cache, field('vmlinuz')),
    config: join(cache, field('config')),
    modulesDir: join(cache, field('modules')),
  };
  for (const path of [kernel.vmlinuz, kernel.modulesDir]) {
    if (!existsSync(path)) throw new LabNotReady(`${path} is missing: delete ${manifestPath} and ${SETUP_HINT}`);
  }
  return kernel;
}

/** Kernel config options the lab relies on, read from the package's config file. */
export function kernelConfigHas(kernel: GuestKernel, options: readonly string[]): Record<string, boolean> {
  const text = existsSync(kernel.config) ? readFileSync(kernel.config, 'utf8') : '';
  const out: Record<string, boolean> = {};
  for (const o of options) out[o] = new RegExp(`^${o}=[ym]$`, 'm').test(text);
  return out;
}

export const BUSYBOX = '/bin/busybox';

/** What the lab needs on the host, in one list of missing things (empty = ready to boot). */
export function labMissing(cache = labCacheDir()): string[] {
  const missing: string[] = [];
  try {
    readGuestKernel(cache);
  } catch (err) {
    missing.push((err as Error).message);
  }
  if (!existsSync(BUSYBOX) || !statSync(BUSYBOX).isFile()) missing.push(`${BUSYBOX} (apt-get install busybox-static)`);
  return missing;
}
