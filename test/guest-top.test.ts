// `vtier guest top`: the table's order (heat, then age), its age and process columns, the line
// saying why nothing shows, and `q` quitting on a real terminal (tmux gives it a pty).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { emptyReason, formatTop, HotTable } from '../cli/commands/guest-top.js';
import { samplesFrom } from '../src/samples.js';

const ROOT = join(import.meta.dirname, '..');
const S = 1e9;

describe('guest top table (pure)', () => {
  it('orders by heat, equal heat by age (oldest first), and reports each run\'s age', () => {
    const t = new HotTable();
    t.add(samplesFrom([[100, 1, 4, 0]]), 1 * S);
    t.add(samplesFrom([[200, 1, 4, 0], [300, 1, 1, 0]]), 2 * S);
    // After the third batch's halving: 100 = 1, 200 = 2, 300 = 0.5; 100 then gets 1 more: tied with 200 at 2.
    t.add(samplesFrom([[100, 1, 1, 0], [200, 1, 0, 0]]), 3 * S);
    const rows = t.top(10);
    expect(rows.map((r) => r.gpaPfn)).toEqual([100, 200, 300]);
    expect(rows[0].weight).toBe(rows[1].weight);
    expect(rows.map((r) => r.ageS)).toEqual([2, 1, 1]);
    const text = formatTop('title', rows, '42 (redis-server)');
    expect(text.split('\n')[1]).toMatch(/age +process$/);
    expect(text.split('\n')[2]).toMatch(/ 2\.0s +42 \(redis-server\)$/);
  });

  it('says why nothing shows', () => {
    expect(formatTop('t', [], null, emptyReason('faults', 1234))).toContain('no samples yet: process 1234 touched no new pages; faults only sees first touches');
    expect(emptyReason('damon', undefined, 5)).toMatch(/once per aggregation interval \(5 s here\)/);
  });
});

describe('vtier guest top on a terminal', () => {
  const tmux = spawnSync('tmux', ['-V']).status === 0;
  it.skipIf(!tmux && process.env.CI !== 'true')('quits on q, with the process column and the empty-view line', async () => {
    const session = `vtier-top-${process.pid}`;
    // A process that touches nothing new after start: faults sees nothing, the view says why.
    const idle = spawnSync('sh', ['-c', 'sleep 60 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' });
    const pid = Number(idle.stdout.trim());
    const cmd = `node ${join(ROOT, 'bin', 'vtier.js')} guest top --source faults --pid ${pid} --epoch 200ms; echo EXIT=$? > /tmp/${session}.exit`;
    try {
      expect(spawnSync('tmux', ['new-session', '-d', '-s', session, '-x', '200', '-y', '50', cmd]).status).toBe(0);
      const screen = () => spawnSync('tmux', ['capture-pane', '-p', '-t', session], { encoding: 'utf8' }).stdout;
      const deadline = Date.now() + 30_000;
      while (!/q quits/.test(screen()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      const shown = screen();
      expect(shown).toMatch(/q quits/);
      expect(shown).toMatch(/age +process/);
      expect(shown).toContain(`no samples yet: process ${pid} touched no new pages; faults only sees first touches`);
      spawnSync('tmux', ['send-keys', '-t', session, 'q']);
      const { existsSync, readFileSync, rmSync } = await import('node:fs');
      const exitFile = `/tmp/${session}.exit`;
      const end = Date.now() + 15_000;
      while (!existsSync(exitFile) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      expect(readFileSync(exitFile, 'utf8').trim()).toBe('EXIT=0');
      rmSync(exitFile, { force: true });
    } finally {
      spawnSync('tmux', ['kill-session', '-t', session]);
      try {
        process.kill(pid);
      } catch {
        /* gone */
      }
    }
  }, 60_000);
});
