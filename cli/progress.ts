// Progress for long commands: a bar with ETA on a terminal, sparse plain lines when stderr is
// a pipe or a log file, nothing at all under --json (stdout then carries one JSON document and
// stderr stays quiet for scripts).
import cliProgress from 'cli-progress';

export interface Progress {
  /** Sets how many steps have completed; `info` is a short status shown next to the bar. */
  update(done: number, info?: string): void;
  /** Prints a line without breaking the bar. */
  log(line: string): void;
  stop(): void;
}

export interface ProgressOptions {
  label: string;
  total: number;
  json?: boolean;
  stream?: NodeJS.WriteStream;
  /** Force the plain-line mode (for tests) or the bar mode; default: the stream's isTTY. */
  tty?: boolean;
  /** Minimum seconds between plain lines (default 10); a line is also printed every 25%. */
  plainIntervalS?: number;
  now?: () => number;
}

export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** A parent that keeps a child's stdout (its --json) but relays its stderr sets this to `tty` or
 *  `plain`: the child then shows progress under --json too, drawn as the parent's terminal needs. */
export const PROGRESS_ENV = 'VTIER_PROGRESS';

export function createProgress(options: ProgressOptions): Progress {
  const relay = process.env[PROGRESS_ENV];
  if (options.json && relay !== 'tty' && relay !== 'plain') return { update() {}, log() {}, stop() {} };
  const stream = options.stream ?? process.stderr;
  const tty = options.tty ?? (relay === 'tty' || relay === 'plain' ? relay === 'tty' : Boolean(stream.isTTY));
  return tty ? barProgress(options, stream) : plainProgress(options, stream);
}

function barProgress(options: ProgressOptions, stream: NodeJS.WriteStream): Progress {
  const multi = new cliProgress.MultiBar(
    {
      stream,
      format: `${options.label} [{bar}] {percentage}% | ETA {eta_formatted} | {value}/{total} {info}`,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 4,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const bar = multi.create(options.total, 0, { info: '' });
  let stopped = false;
  return {
    update(done, info) {
      bar.update(done, { info: info ?? '' });
    },
    log(line) {
      multi.log(`${line}\n`);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      multi.stop();
    },
  };
}

function plainProgress(options: ProgressOptions, stream: NodeJS.WriteStream): Progress {
  const now = options.now ?? (() => Date.now());
  const started = now();
  const intervalMs = (options.plainIntervalS ?? 10) * 1000;
  let lastPrintMs = -Infinity;
  let lastQuarter = 0;
  return {
    update(done, info) {
      const quarter = Math.floor((4 * done) / Math.max(1, options.total));
      const t = now();
      if (quarter <= lastQuarter && t - lastPrintMs < intervalMs && done < options.total) return;
      lastQuarter = Math.max(lastQuarter, quarter);
      lastPrintMs = t;
      const elapsedS = (t - started) / 1000;
      const etaS = done > 0 ? (elapsedS / done) * (options.total - done) : NaN;
      const pct = Math.round((100 * done) / Math.max(1, options.total));
      stream.write(`${options.label}: ${done}/${options.total} (${pct}%), ETA ${formatEta(etaS)}${info ? `, ${info}` : ''}\n`);
    },
    log(line) {
      stream.write(`${line}\n`);
    },
    stop() {},
  };
}
