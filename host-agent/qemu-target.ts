// A QEMU VM as a migration target: QMP connection, pid from the pidfile, GPA -> HVA
// layout. Re-discovers the layout on memory hotplug events and notices when QEMU exits
// (QMP closes) so the server can wait for a restarted QEMU (new pid, new mapping).
import { EventEmitter } from 'node:events';
import { discoverLayout, readPidfile, type GuestLayout } from './layout.js';
import { QmpClient } from './qmp.js';
import { RangeTranslator } from './translate.js';

const LAYOUT_EVENTS = new Set(['MEMORY_DEVICE_SIZE_CHANGE', 'DEVICE_ADDED', 'DEVICE_DELETED', 'RESET']);

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
}

export class QemuTarget extends EventEmitter<QemuTargetEvents> {
  private qmp?: QmpClient;
  attachment?: QemuAttachment;

  constructor(
    readonly qmpPath: string,
    readonly pidfile: string,
    private readonly qmpTimeoutMs = 10_000,
  ) {
    super();
  }

  /** Connects to QMP and discovers the layout. Throws with a clear message when QEMU is not there. */
  async attach(): Promise<QemuAttachment> {
    this.detach();
    const qmp = await QmpClient.connect(this.qmpPath, { timeoutMs: this.qmpTimeoutMs });
    try {
      const pid = readPidfile(this.pidfile);
      const layout = await discoverLayout(qmp, pid);
      this.qmp = qmp;
      this.attachment = { pid, layout, translator: new RangeTranslator(layout.ranges), qemuVersion: qmp.version };
      qmp.on('event', (e) => {
        if (LAYOUT_EVENTS.has(e.event)) void this.refresh();
      });
      qmp.on('close', () => {
        if (this.qmp === qmp) {
          this.qmp = undefined;
          this.emit('exit');
        }
      });
      return this.attachment;
    } catch (err) {
      qmp.close();
      throw err;
    }
  }

  private async refresh(): Promise<void> {
    const qmp = this.qmp;
    if (!qmp || !this.attachment) return;
    try {
      const layout = await discoverLayout(qmp, this.attachment.pid);
      this.attachment = { ...this.attachment, layout, translator: new RangeTranslator(layout.ranges) };
      this.emit('layout', this.attachment);
    } catch {
      /* QEMU going away: 'exit' follows */
    }
  }

  detach(): void {
    const qmp = this.qmp;
    this.qmp = undefined;
    qmp?.close();
  }
}
