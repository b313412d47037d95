// The shift workload's clock restarts on SIGUSR2 (eval/demo.ts and eval/lab-arm.ts send it once
// the region sits on the CXL node): the first hot set then lives a whole period of the measured
// run instead of moving on while the starting layout is made (seconds under TCG).
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTruth, startWorkload, type RunningWorkload } from '../guest-agent/workload.js';
import { restartShiftClock } from '../eval/demo.js';

const dir = mkdtempSync(join(tmpdir(), 'vtier-shift-clock-'));
const running: RunningWorkload[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterEach(async () => {
  for (const w of running.splice(0)) await w.stop().catch(() => {});
});

describe('shift workload: SIGUSR2 restarts the shift clock', () => {
  it('holds the hot set while the clock keeps being restarted, then shifts a period after the last restart', async () => {
    try {
      const truthPath = join(dir, 'shift.truth');
      const w = await startWorkload({ pattern: 'shift', sizeBytes: 4 << 20, hotFrac: 0.25, shiftEveryMs: 700, truthPath, reportMs: 0 });
      running.push(w);
      // 2.1 s = three periods: without the restarts the hot set would have moved three times.
      for (let i = 0; i < 10; i++) {
        restartShiftClock(w.pid);
        await sleep(210);
      }
      expect(readTruth(truthPath).generation).toBe(1);
      await sleep(1500);
      expect(readTruth(truthPath).generation).toBeGreaterThan(1);
      const summary = await w.stop();
      expect(summary.exitCode).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
