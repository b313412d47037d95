// The whole project, tests included, type-checks.
import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';

it('type-checks (tsc --noEmit)', () => {
  let output = '';
  try {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.json', '--noEmit'], { encoding: 'utf8', stdio: 'pipe' });
  } catch (err) {
    output = String((err as { stdout?: string }).stdout ?? err);
  }
  expect(output).toBe('');
}, 120_000);
