// Headless Chromium for report tests: lays a report out and measures every plot (its box and
// the marks inside) with a probe script appended to a copy of the page.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';

export const CHROMIUM = '/usr/bin/chromium';
export const haveChromium = existsSync(CHROMIUM);
export const ci = process.env.CI === 'true';
if (!haveChromium && !ci) console.warn(`report-browser: skipped: ${CHROMIUM} is not installed (scripts/setup.sh installs it)`);

const base = mkdtempSync(join(tmpdir(), 'vtier-browser-'));
process.once('exit', () => rmSync(base, { recursive: true, force: true }));

export function chromium(args: string[]): string {
  const profile = mkdtempSync(join(base, 'profile-'));
  return execFileSync(
    CHROMIUM,
    [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', `--user-data-dir=${profile}`, '--window-size=1100,3200',
      ...args,
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 90_000, maxBuffer: 64 * 1024 * 1024 },
  );
}

export interface PlotProbe {
  id: string;
  width: number;
  height: number;
  marks: number;
  paths: number;
  texts: number;
}

// Runs after the page has been parsed and laid out; the result lands in the DOM --dump-dom prints.
const PROBE = `<script>
const plots = [...document.querySelectorAll('figure.plot')].map((f) => {
  const svg = f.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
  const marks = svg ? [...svg.querySelectorAll('path, rect, line, circle')].filter((e) => { const b = e.getBBox(); return b.width > 0 || b.height > 0; }).length : 0;
  return { id: f.dataset.plot, width: box.width, height: box.height, marks,
    paths: svg ? svg.querySelectorAll('g.mark-line path, g.mark-rect path, g.mark-symbol path, g.mark-rule line').length : 0,
    texts: svg ? svg.querySelectorAll('text').length : 0 };
});
const out = document.createElement('pre');
out.id = 'probe';
out.textContent = JSON.stringify({ plots, interrupted: !!document.getElementById('interrupted'), title: document.title });
document.body.appendChild(out);
</script>`;

export function probe(reportPath: string): { plots: PlotProbe[]; interrupted: boolean; title: string } {
  const html = readFileSync(reportPath, 'utf8');
  expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/); // self-contained: no scripts, no network
  const probed = join(base, `probe-${Date.now()}.html`);
  writeFileSync(probed, html.replace('</body>', `${PROBE}</body>`));
  const dom = chromium(['--dump-dom', `file://${probed}`]);
  const match = /<pre id="probe">([^<]*)<\/pre>/.exec(dom);
  expect(match, 'the probe script did not run in Chromium').not.toBeNull();
  return JSON.parse((match as RegExpExecArray)[1].replace(/&quot;/g, '"').replace(/&amp;/g, '&'));
}

