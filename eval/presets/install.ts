// Installs a preset's Debian packages when its binaries are missing, saying so first.
import { execFileSync, spawnSync } from 'node:child_process';
import type { Preset } from './types.js';

export function hasBinary(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** Returns the packages installed (empty when everything was present). */
export function ensureInstalled(preset: Preset, say: (line: string) => void): string[] {
  const missing = preset.binaries.filter((b) => !hasBinary(b));
  if (missing.length === 0) return [];
  say(`preset ${preset.name} needs ${missing.join(', ')}: installing ${preset.packages.join(' ')} with apt-get`);
  try {
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...preset.packages], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim().split('\n').pop();
    throw new Error(`could not install ${preset.packages.join(' ')} for preset ${preset.name}: ${stderr || (err as Error).message}`);
  }
  const still = preset.binaries.filter((b) => !hasBinary(b));
  if (still.length > 0) throw new Error(`preset ${preset.name}: ${still.join(', ')} still missing after apt-get install`);
  return preset.packages;
}
