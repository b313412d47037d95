// Where a lab run keeps its files: --out, or results/lab-<timestamp> under the current
// directory, as the campaigns' results directories.
import { resolve } from 'node:path';

export function labResultsDir(out?: string, campaign = 'lab'): string {
  if (out) return resolve(out);
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
  return resolve('results', `${campaign}-${stamp}-${process.pid}`);
}
