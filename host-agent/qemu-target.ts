// A QEMU VM as a migration target: QMP connection, pid from the pidfile, GPA -> HVA
// layout. Re-discovers the layout on memory events (virtio-mem resize, unplug, reset) and
// by polling (QEMU 7.2 sends no event when a pc-dimm is plugged), and notices when QEMU
// exits (QMP closes) so the server can wait for a restarted QEMU (new pid, new mapping).
// The backing file of every range (dev:inode) is part of the layout: a QEMU that remaps
// another file at the same address has changed its layout, and checkMappings() tells so
// from /proc/PID/maps alone, before each decision's moves.
import { EventEmitter } from 'node:events';
import { discoverLayout, mappingDrift, readPidfile, readProcMaps, type GuestLayout } from './layout.js';
import { processGone } from './migrator.js';
import { verifyQemuProcess } from './qemu-identity.js';
import { QmpClient } from './qmp.js';
import { RangeTranslator } from './translate.js';

const LAYOUT_EVENTS = new Set(['MEMORY_DEVICE_SIZE_CHANGE', 'DEVICE_ADDED', 'DEVICE_DELETED', 'RESET']);

function signature(layout: GuestLayout): string {
  return layout.ranges.map((r) => `${r.gpaStart}:${r.gpaEnd}:${r.hvaStart}:${r.backendOffset}:${r.file ?? '-'}`).join(',');
}

export interface QemuAttachment {
  pid: number;
  layout: GuestLayout;
  translator: RangeTranslator;
  qemuVersion: string;
}

export interface QemuTargetEvents {
  /** The layout changed (hotplug): a new translator for the same pid. */
  layout: [QemuAttachment];
  /** QEMU exited (QMP closed). */
  exit: [];
  /** A layout poll found the layout unchanged (the server re-checks ownership then too). */
  checked: [QemuAttachment];
  /** QMP is up but the layout can no longer be read (no RAM with a host mapping, QMP
   *  errors): nothing may be moved until it can. */
  invalid: [Error];
}

export class QemuTarget extends EventEmitter<QemuTargetEvents> {
  private qmp?: QmpClient;
  private pollTimer?: NodeJS.Timeout;
  private refreshing = false;
  attachment?: QemuAttachment;

  constructor(
    readonly qmpPath: string,
    readonly pidfile: string,
    private readonly qmpTimeoutMs = 10_000,
    /** Layout poll period (0 = events only). */
    private readonly pollMs = 5000,
  ) {
    super();
  }

  /** Connects to QMP and discovers the layout. Throws with a clear message when QEMU is not there. */
  async attach(): Promise<QemuAttachment> {
    this.detach();
    const qmp = await QmpClient.connect(this.qmpPath, { timeoutMs: this.qmpTimeoutMs });
    try {
      const pid = readPidfile(this.pidfile);
      // The pidfile, the QMP peer and the process must agree before QMP's answers count.
      verifyQemuProcess({ pid, qmpPath: this.qmpPath, qmpPeerPid: qmp.peerPid });
      const layout = await discoverLayout(qmp, pid);
      this.qmp = qmp;
      this.attachment = { pid, layout, translator: new RangeTranslator(layout.ranges), qemuVersion: qmp.version };
      qmp.on('event', (e) => {
        if (LAYOUT_EVENTS.has(e.event)) void this.refresh();
      });
      qmp.on('close', () => {
        if (this.qmp === qmp) {
          this.qmp = undefined;
          clearInterval(this.pollTimer);
          this.emit('exit');
        }
      });
      if (this.pollMs > 0) {
        this.pollTimer = setInterval(() => void this.refresh(), this.pollMs);
        this.pollTimer.unref();
      }
      return this.attachment;
    } catch (err) {
      qmp.close();
      throw err;
    }
  }

  /** Re-reads the layout; emits 'layout' when it changed. */
  async refresh(): Promise<void> {
    const qmp = this.qmp;
    if (!qmp || !this.attachment || this.refreshing) return;
    this.refreshing = true;
    try {
      const layout = await discoverLayout(qmp, this.attachment.pid);
      if (this.qmp !== qmp) return;
      if (signature(layout) !== signature(this.attachment.layout)) {
        this.attachment = { ...this.attachment, layout, translator: new RangeTranslator(layout.ranges) };
        this.emit('layout', this.attachment);
      } else {
        this.emit('checked', this.attachment);
      }
    } catch (err) {
      // QEMU going away: 'exit' follows. Otherwise the layout is not what it was and cannot
      // be read any more (a remapped RAM file QMP does not name): say so.
      if (this.qmp === qmp && !qmp.isClosed && !processGone(this.attachment.pid)) this.emit('invalid', err as Error);
    } finally {
      this.refreshing = false;
    }
  }

  /** Why the accepted layout's RAM is not mapped as it was any more (another file or
   *  offset at a range's address), 'gone' when the process has exited, or undefined. */
  checkMappings(procRoot = '/proc'): string | 'gone' | undefined {
    const a = this.attachment;
    if (!a) return 'gone';
    let maps;
    try {
      maps = readProcMaps(a.pid, procRoot);
    } catch {
      return 'gone';
    }
    // A zombie has no mappings left: that is an exit, not a remap.
    if (maps.length === 0 && processGone(a.pid, procRoot)) return 'gone';
    const drift = mappingDrift(a.layout.ranges, maps);
    return drift === undefined ? undefined : `pid ${a.pid}: ${drift}`;
  }

  detach(): void {
    clearInterval(this.pollTimer);
    const qmp = this.qmp;
    this.qmp = undefined;
    qmp?.close();
  }
}
