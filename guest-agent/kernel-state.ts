// A journal for global kernel settings (sysctls, DAMON sysfs files): the original value
// goes to a state file on disk BEFORE the setting changes, so it is restored on normal
// exit, SIGINT/SIGTERM/SIGHUP, an uncaught error, and, after a crash or SIGKILL, by the
// next start (recoverLeftover). Everything is synchronous so it also works inside
// process 'exit' handlers.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export const DEFAULT_JOURNAL_DIR = '/run/vtier';
const JOURNAL_PREFIX = 'journal-';
/** A journal larger than this is not ours (or is corrupt): refuse to parse it. */
const MAX_JOURNAL_BYTES = 1 << 20;
const MAX_VALUE_CHARS = 4096;

export interface JournalEntry {
  /** Absolute path of the setting (/proc/sys/..., /sys/kernel/mm/damon/...). */
  path: string;
  /** Value read before the first change, trimmed. */
  original: string;
  /** Last value written. */
  written: string;
}

interface JournalFile {
  version: 1;
  pid: number;
  /** Process start time (clock ticks since boot, /proc/PID/stat field 22): tells pid reuse apart. */
  startTime: string;
  createdMs: number;
  entries: JournalEntry[];
}

export type RestoreAction = 'restored' | 'unchanged' | 'gone' | 'failed';
export interface RestoreResult {
  path: string;
  original: string;
  action: RestoreAction;
  /** Value found before restoring. */
  found?: string;
  /** True when the value found was not the one we wrote (someone else changed it too). */
  changedSince?: boolean;
  error?: string;
}
export interface RestoreReport {
  journal: string;
  pid: number;
  results: RestoreResult[];
  /** Journal file removed (everything restored or gone). */
  cleared: boolean;
}

export class KernelStateError extends Error {
  readonly code = 'kernel-state';
  constructor(message: string) {
    super(message);
    this.name = 'KernelStateError';
  }
}

/** kernel.bpf_stats_enabled -> /proc/sys/kernel/bpf_stats_enabled */
export function sysctlPath(name: string): string {
  if (!/^[a-z0-9_]+(\.[a-z0-9_-]+)+$/i.test(name)) throw new TypeError(`sysctl: "${name}" is not a sysctl name`);
  return `/proc/sys/${name.replace(/\./g, '/')}`;
}

export function readSetting(path: string): string {
  return readFileSync(path, 'utf8').trim();
}

function writeSetting(path: string, value: string): void {
  // One write(2) call: sysfs and procfs parse each write as a whole.
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, value);
  } finally {
    closeSync(fd);
  }
}

function processStartTime(pid: number | 'self'): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function ownerAlive(file: JournalFile): boolean {
  return file.pid !== process.pid && processStartTime(file.pid) === file.startTime;
}

function writeFileAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

function parseJournal(path: string): JournalFile {
  const text = readFileSync(path, 'utf8');
  if (text.length > MAX_JOURNAL_BYTES) throw new KernelStateError(`journal ${path} is larger than ${MAX_JOURNAL_BYTES} bytes`);
  const data = JSON.parse(text) as JournalFile;
  const valid =
    data &&
    data.version === 1 &&
    Number.isSafeInteger(data.pid) &&
    Array.isArray(data.entries) &&
    data.entries.every(
      (e) => e && typeof e.path === 'string' && e.path.startsWith('/') && typeof e.original === 'string' && typeof e.written === 'string',
    );
  if (!valid) throw new KernelStateError(`journal ${path} is not a vtier state journal`);
  return data;
}

/** Restores entries newest first (later writes may depend on earlier ones, e.g. DAMON dirs). */
function restoreEntries(entries: JournalEntry[]): { results: RestoreResult[]; remaining: JournalEntry[] } {
  const results: RestoreResult[] = [];
  const remaining: JournalEntry[] = [];
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i];
    let found: string;
    try {
      found = readSetting(entry.path);
    } catch {
      // The file went away (e.g. a DAMON directory removed by restoring its parent count).
      results.push({ path: entry.path, original: entry.original, action: 'gone' });
      continue;
    }
    const changedSince = found !== entry.written;
    if (found === entry.original) {
      results.push({ path: entry.path, original: entry.original, action: 'unchanged', found });
      continue;
    }
    try {
      writeSetting(entry.path, entry.original);
      results.push({ path: entry.path, original: entry.original, action: 'restored', found, changedSince });
    } catch (err) {
      results.push({ path: entry.path, original: entry.original, action: 'failed', found, changedSince, error: (err as Error).message });
      remaining.unshift(entry);
    }
  }
  // A setting that could not be written back but whose file has since disappeared (its
  // directory removed by restoring an earlier, parent setting) needs nothing more.
  for (const result of results) {
    if (result.action === 'failed' && !existsSync(result.path)) {
      result.action = 'gone';
      const i = remaining.findIndex((e) => e.path === result.path);
      if (i >= 0) remaining.splice(i, 1);
    }
  }
  return { results, remaining };
}

const openJournals = new Set<KernelStateJournal>();
let journalSeq = 0;
let handlersInstalled = false;
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function restoreOpenJournals(): void {
  for (const journal of [...openJournals]) {
    try {
      journal.restoreAll();
    } catch {
      /* the journal file stays on disk: recoverLeftover() retries on the next start */
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  // Alone on this signal: behave like the default action (die by the signal). Otherwise
  // the other listeners (the CLI printing its summary) decide how to exit.
  const alone = process.listenerCount(signal) === 1;
  restoreOpenJournals();
  if (alone) {
    uninstallHandlers();
    process.kill(process.pid, signal);
  }
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', restoreOpenJournals);
  for (const signal of SIGNALS) process.on(signal, onSignal);
}

function uninstallHandlers(): void {
  if (!handlersInstalled) return;
  handlersInstalled = false;
  process.off('exit', restoreOpenJournals);
  for (const signal of SIGNALS) process.off(signal, onSignal);
}

export interface JournalOptions {
  /** Restore on exit/SIGINT/SIGTERM/SIGHUP (default true). */
  handleSignals?: boolean;
}

export class KernelStateJournal {
  private file: JournalFile;
  private closed = false;
  /** Leftover journals found and restored when this one opened. */
  readonly recovered: RestoreReport[];

  private constructor(readonly path: string, recovered: RestoreReport[]) {
    this.recovered = recovered;
    this.file = { version: 1, pid: process.pid, startTime: processStartTime('self') ?? '?', createdMs: Date.now(), entries: [] };
  }

  /**
   * Opens a journal at `path` (default /run/vtier/journal-PID-N.json). Leftover journals of
   * dead processes in the same directory are restored first and reported in `recovered`.
   */
  static async open(path?: string, options: JournalOptions = {}): Promise<KernelStateJournal> {
    return KernelStateJournal.openSync(path, options);
  }

  static openSync(path?: string, options: JournalOptions = {}): KernelStateJournal {
    const journalPath = path ?? join(DEFAULT_JOURNAL_DIR, `${JOURNAL_PREFIX}${process.pid}-${journalSeq++}.json`);
    mkdirSync(dirname(journalPath), { recursive: true, mode: 0o700 });
    const recovered = recoverLeftover(path ? journalPath : dirname(journalPath));
    if (existsSync(journalPath)) {
      throw new KernelStateError(`journal ${journalPath} belongs to a running process; not taking it over`);
    }
    const journal = new KernelStateJournal(journalPath, recovered);
    openJournals.add(journal);
    if (options.handleSignals !== false) installHandlers();
    return journal;
  }

  get entries(): readonly JournalEntry[] {
    return this.file.entries;
  }

  /** Reads the current value of a setting, trimmed. */
  get(path: string): string {
    return readSetting(path);
  }

  /**
   * Changes a setting: the original value is journaled on disk first (only on the first
   * change of that path), then the new value is written. Write errors are thrown as is
   * (their .code names the errno); the journal then still restores the path if needed.
   */
  set(path: string, value: string | number): void {
    if (this.closed) throw new KernelStateError('journal is closed');
    const text = String(value);
    if (text.length > MAX_VALUE_CHARS) throw new TypeError(`value for ${path} is longer than ${MAX_VALUE_CHARS} characters`);
    if (!path.startsWith('/')) throw new TypeError(`path: "${path}" is not absolute`);
    let entry = this.file.entries.find((e) => e.path === path);
    if (!entry) {
      entry = { path, original: readSetting(path), written: text.trim() };
      this.file.entries.push(entry);
    } else {
      entry.written = text.trim();
    }
    this.persist();
    writeSetting(path, text);
  }

  /** set() for a sysctl by name: setSysctl('kernel.bpf_stats_enabled', 1). */
  setSysctl(name: string, value: string | number): void {
    this.set(sysctlPath(name), value);
  }

  /**
   * Restores every changed setting, newest first, and removes the journal file when all
   * are back. Idempotent: a second call restores nothing.
   */
  restoreAll(): RestoreReport {
    const { results, remaining } = restoreEntries(this.file.entries);
    this.file.entries = remaining;
    let cleared = false;
    if (remaining.length === 0) {
      try {
        unlinkSync(this.path);
      } catch {
        /* never persisted (nothing was set) */
      }
      cleared = true;
      this.close();
    } else {
      this.persist();
    }
    return { journal: this.path, pid: this.file.pid, results, cleared };
  }

  private close(): void {
    this.closed = true;
    openJournals.delete(this);
    if (openJournals.size === 0) uninstallHandlers();
  }

  private persist(): void {
    writeFileAtomic(this.path, JSON.stringify(this.file));
  }
}

/**
 * Restores journals left by processes that died without restoring (crash, SIGKILL).
 * `location` is a journal file or a directory of journal-*.json files. Journals whose
 * owner still runs are left alone.
 */
export function recoverLeftover(location = DEFAULT_JOURNAL_DIR): RestoreReport[] {
  let files: string[];
  if (location.endsWith('.json')) {
    files = existsSync(location) ? [location] : [];
  } else {
    try {
      files = readdirSync(location)
        .filter((name) => name.startsWith(JOURNAL_PREFIX) && name.endsWith('.json'))
        .map((name) => join(location, name));
    } catch {
      return [];
    }
  }
  const reports: RestoreReport[] = [];
  for (const path of files) {
    let file: JournalFile;
    try {
      file = parseJournal(path);
    } catch (err) {
      reports.push({ journal: path, pid: -1, results: [{ path, original: '', action: 'failed', error: (err as Error).message }], cleared: false });
      continue;
    }
    if (ownerAlive(file) || file.pid === process.pid) continue;
    const { results, remaining } = restoreEntries(file.entries);
    if (remaining.length === 0) unlinkSync(path);
    else writeFileAtomic(path, JSON.stringify({ ...file, entries: remaining }));
    reports.push({ journal: path, pid: file.pid, results, cleared: remaining.length === 0 });
  }
  return reports;
}

/** One line per leftover restore, for logs and the CLI. */
export function describeRecovery(reports: RestoreReport[]): string[] {
  return reports.map((report) => {
    const restored = report.results.filter((r) => r.action === 'restored').map((r) => `${basename(r.path)}=${r.original}`);
    const failed = report.results.filter((r) => r.action === 'failed');
    return (
      `restored kernel state left by pid ${report.pid} (${report.journal}): ${restored.length ? restored.join(', ') : 'nothing to change'}` +
      (failed.length ? `; FAILED: ${failed.map((r) => `${r.path} (${r.error})`).join(', ')}` : '')
    );
  });
}
