/**
 * The firewall's per-app state (firewall/app.ts AppState), one per tenant record for the life
 * of the service, shared by all of the app's raw connections. Each app gets its own NV range of
 * 256 indices in 0x01000000–0x013FFFFF (below EVE's 0x01500000–0x019FFFFF), placed by a hash of
 * its record so that it stays put across restarts; two live apps whose hashes meet are placed
 * apart by probing (in the order they first connect — not yet persisted, see docs/FIREWALL.md).
 */
import { createHash } from 'node:crypto';
import { AppState, type HandleRange } from '../../firewall/app.js';

const NV_BASE = 0x01000000;
const NV_PER_APP = 0x100;
const NV_SLOTS = 0x4000; // 0x01000000–0x013FFFFF

export class RawApps {
  private readonly byRecord = new Map<string, AppState>();
  private readonly slots = new Map<number, string>();

  /** The app's state, made on its first raw connection. */
  of(record: string): AppState {
    let app = this.byRecord.get(record);
    if (!app) {
      app = new AppState(record, this.nvRange(record));
      this.byRecord.set(record, app);
    }
    return app;
  }

  private nvRange(record: string): HandleRange {
    let slot = createHash('sha256').update('EVE-APP-NV\0').update(record).digest().readUInt32BE(0) % NV_SLOTS;
    while (this.slots.has(slot)) slot = (slot + 1) % NV_SLOTS;
    this.slots.set(slot, record);
    const first = NV_BASE + slot * NV_PER_APP;
    return { first, last: first + NV_PER_APP - 1 };
  }
}
