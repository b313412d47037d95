// DAMON own mode cannot run on this host (someone else's kdamond owns DAMON), so its tests
// skip here; inside a lab VM DAMON is ours. This runs test/damon-own.test.ts there, under
// CI=true, and requires all of it to pass (none skipped).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHECKOUT, labTestFile, runCli } from './helpers/lab.js';

const { skip, resultsDir } = labTestFile('lab-damon-own');


describe.skipIf(skip)('DAMON own-mode tests, inside a lab VM where DAMON is free', () => {
  it('test/damon-own.test.ts passes inside the guest, nothing skipped', async () => {
    const out = resultsDir('damon-own');
    // --configLoader runner: vite would otherwise write its bundled config into node_modules
    // (read-only inside).
    const inner = `cd ${CHECKOUT} && CI=true NO_COLOR=1 npx vitest run test/damon-own.test.ts --configLoader runner`;
    const r = await runCli(['lab', 'run', '--nodes', '1', '--mem', '2G', '--timeout', '9m', '--out', out, '--', 'bash', '-c', inner], 600_000);
    const output = readFileSync(join(out, 'output.log'), 'utf8').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
    expect(r.status, output.slice(-3000)).toBe(0);
    expect(output).not.toMatch(/\[damon-own\] skipped/);
    expect(output).toMatch(/Tests\s+\S*\s*3 passed/);
    expect(output).not.toMatch(/skipped/);
  }, 620_000);
});
