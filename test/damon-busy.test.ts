// Real kernel: while a kdamond runs (here: the machine's own, started at boot; elsewhere
// one we start for the test), own mode must fail with one clear line and write nothing.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminDir, damonStatus, DamonError, observeKdamond, resolveDamonMode, startOwnKdamond } from '../guest-agent/damon.js';
import { readSystemRam } from '../guest-agent/iomem.js';
import { KernelStateJournal } from '../guest-agent/kernel-state.js';

const initial = damonStatus();
const inCi = process.env.CI === 'true';
const canRun = initial.available && initial.paddr && process.getuid?.() === 0;
if (!canRun) console.log(`[damon-busy] skipped: needs root and DAMON paddr (${initial.detail})`);

/** Makes DAMON busy for real when nobody else does: our own kdamond, restored after. */
async function withBusyDamon(body: () => Promise<void> | void): Promise<void> {
  if (damonStatus().busy) return body();
  const journal = await KernelStateJournal.open(join(mkdtempSync(join(tmpdir(), 'vtier-j-')), 'journal-own.json'));
  try {
    startOwnKdamond(journal, readSystemRam());
    await body();
  } finally {
    journal.restoreAll();
  }
}

/** Configuration files of DAMON's sysfs tree (statistics and tried regions excluded: they change). */
/** Files whose content differs, as "path: before -> after" (readable failures). */
function changedFiles(before: Record<string, string>, after: Record<string, string>): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => before[k] !== after[k]).map((k) => `${k}: ${before[k]} -> ${after[k]}`);
}

function configSnapshot(): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      // Status the kernel (or the kdamond's owner) updates, not configuration.
      if (name === 'stats' || name === 'tried_regions' || name === 'effective_bytes' || name === 'current_value') continue;
      const path = join(dir, name);
      const st = statSync(path);
      if (st.isDirectory()) walk(path);
      else if (st.mode & 0o444) {
        try {
          out[path] = readFileSync(path, 'utf8').trim();
        } catch (err) {
          out[path] = `<${(err as NodeJS.ErrnoException).code}>`;
        }
      }
    }
  };
  walk(adminDir());
  return out;
}

describe('DAMON busy (real kernel)', () => {
  // Outside CI a machine without DAMON skips (reason printed above) instead of passing empty.
  it.skipIf(!canRun && !inCi)('DAMON sysfs with paddr ops is present on this machine', () => {
    expect(initial.available, initial.detail).toBe(true);
    expect(initial.paddr, initial.detail).toBe(true);
    expect(statSync(adminDir()).isDirectory()).toBe(true);
  });

  it.skipIf(!canRun && !inCi)('own mode fails with one clear line and writes nothing', () => withBusyDamon(async () => {
    const status = damonStatus();
    expect(status.busy).toBe(true);
    const running = status.running[0];
    const before = configSnapshot();
    const journal = await KernelStateJournal.open(join(mkdtempSync(join(tmpdir(), 'vtier-j-')), 'journal-busy.json'));
    let error: unknown;
    try {
      startOwnKdamond(journal, readSystemRam());
    } catch (err) {
      error = err;
    } finally {
      journal.restoreAll();
    }
    expect(error).toBeInstanceOf(DamonError);
    expect((error as DamonError).code).toBe('damon-busy');
    expect((error as Error).message).toBe(
      `DAMON busy: kdamond.${running.index} (pid ${running.pid}, ${running.ops}) is running; the kernel cannot add a kdamond while one runs (use --damon-mode observe)`,
    );
    expect(journal.entries).toEqual([]);
    expect(changedFiles(before, configSnapshot())).toEqual([]);
    expect(() => resolveDamonMode('own', damonStatus())).toThrow(/^DAMON busy: /);
  }));

  it.skipIf(!canRun && !inCi)('auto picks observe and reads the running kdamond without writing', () => withBusyDamon(() => {
    const status = damonStatus();
    const before = configSnapshot();
    expect(resolveDamonMode('auto', damonStatus())).toBe('observe');
    const info = observeKdamond();
    expect(info.mode).toBe('observe');
    expect(info.kdamondPid).toBe(status.running[0].pid);
    expect(info.sampleUs).toBeGreaterThan(0);
    expect(info.aggrUs).toBeGreaterThanOrEqual(info.sampleUs);
    expect(info.targetRanges.length).toBeGreaterThan(0);
    expect(changedFiles(before, configSnapshot())).toEqual([]);
  }));
});
