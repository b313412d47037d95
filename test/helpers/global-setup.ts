// Before any test: the CLI tests run the compiled CLI, so compile it (incremental).
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  // Inside a lab VM the checkout is read-only and dist/ was built on the host.
  if (process.env.VTIER_LAB) return;
  // Type errors do not stop the run here: test/typecheck.test.ts reports them as a failure.
  try {
    execFileSync('flock', ['/tmp/vtier-tsc.lock', 'npx', 'tsc', '-p', 'tsconfig.build.json'], { stdio: 'pipe' });
  } catch {
    /* reported by typecheck.test.ts */
  }
}
