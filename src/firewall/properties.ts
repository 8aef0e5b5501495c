/**
 * GetCapability(TPM_CAP_TPM_PROPERTIES) as the app sees it (Part 2 §6.13 TPM_PT; attacks 7 and
 * 12): the variable counts that describe other apps and EVE (loaded and active sessions,
 * transient slots, persistent objects, NV indices and counters, the lockout counter and
 * interval) are answered for the app's own view: its records and the quotas it has left
 * (inLockout also when all apps' failures together stop it).
 * Constants (the TPM_PT_FIXED group, TPM_PT_MAX_…) and everything else pass as the chip gave
 * them, in the chip's order, with its moreData.
 */
import type { AppState, Connection } from './app.js';

// TPM_PT_VAR properties (Part 2 §6.13) the firewall answers itself.
const PT_PERMANENT = 0x200;
const PT_HR_NV_INDEX = 0x202;
const PT_HR_LOADED = 0x203;
const PT_HR_LOADED_AVAIL = 0x204;
const PT_HR_ACTIVE = 0x205;
const PT_HR_ACTIVE_AVAIL = 0x206;
const PT_HR_TRANSIENT_AVAIL = 0x207;
const PT_HR_PERSISTENT = 0x208;
const PT_HR_PERSISTENT_AVAIL = 0x209;
const PT_NV_COUNTERS = 0x20a;
const PT_NV_COUNTERS_AVAIL = 0x20b;
const PT_LOCKOUT_COUNTER = 0x20e;
const PT_MAX_AUTH_FAIL = 0x20f;
const PT_LOCKOUT_INTERVAL = 0x210;

// TPMA_PERMANENT bits (Part 2 §8.6).
const OWNER_AUTH_SET = 0x1;
const ENDORSEMENT_AUTH_SET = 0x2;
const IN_LOCKOUT = 0x200;
const hasBit = (v: number, bit: number): boolean => Math.floor(v / bit) % 2 === 1;

/** An NV counter's data size (Part 1 §37.2.3): what a counter takes of the app's byte quota. */
const COUNTER_BYTES = 8;

/** TPM_NT_COUNTER (Part 2 §13.4, TPMA_NV bits 7:4). */
const NT_COUNTER = 1;
export const isCounter = (nvAttributes: number): boolean => Math.floor(nvAttributes / 0x10) % 0x10 === NT_COUNTER;

/** The counter indices each app defined (the firewall records sizes in AppState.nv, not types). */
const counters = new WeakMap<AppState, Set<number>>();

/** Records an index the app defined (after the chip's success), so NV_COUNTERS can count it. */
export function noteNvDefined(app: AppState, index: number, counter: boolean): void {
  if (!counter) return void counters.get(app)?.delete(index);
  let set = counters.get(app);
  if (!set) counters.set(app, (set = new Set()));
  set.add(index);
}

/** The app's counter indices that it still has (an index undefined by any path no longer counts). */
function counterCount(app: AppState): number {
  let n = 0;
  for (const h of counters.get(app) ?? []) if (app.nv.has(h)) n++;
  return n;
}

const left = (limit: number, used: number): number => Math.max(0, limit - used);

/** The property's value in the app's view, or undefined: the chip's value stands. */
function appValue(conn: Connection, property: number, chip: number): number | undefined {
  const { app } = conn;
  const { limits } = app;
  switch (property) {
    case PT_PERMANENT: {
      // The app's owner and endorsement are virtual, with the empty authorization (FIREWALL.md);
      // inLockout: the chip's, or the app stopped by its own throttle.
      let v = chip;
      if (hasBit(v, OWNER_AUTH_SET)) v -= OWNER_AUTH_SET;
      if (hasBit(v, ENDORSEMENT_AUTH_SET)) v -= ENDORSEMENT_AUTH_SET;
      if (!hasBit(v, IN_LOCKOUT) && app.daStopped()) v += IN_LOCKOUT;
      return v;
    }
    case PT_HR_NV_INDEX:
      return app.nv.size;
    case PT_HR_LOADED:
    case PT_HR_ACTIVE:
      // Between commands the app's sessions are saved out; to the app they are all there.
      return conn.sessions.size;
    case PT_HR_LOADED_AVAIL:
    case PT_HR_ACTIVE_AVAIL:
      return left(limits.sessions, conn.sessions.size);
    case PT_HR_TRANSIENT_AVAIL:
      return left(limits.transients, conn.transients.size);
    case PT_HR_PERSISTENT:
      return app.persistents.size;
    case PT_HR_PERSISTENT_AVAIL:
      return left(limits.persistents, app.persistents.size);
    case PT_NV_COUNTERS:
      return counterCount(app);
    case PT_NV_COUNTERS_AVAIL: {
      let bytes = 0;
      for (const s of app.nv.values()) bytes += s;
      return Math.min(left(limits.nvIndices, app.nv.size), Math.floor(left(limits.nvBytes, bytes) / COUNTER_BYTES));
    }
    case PT_LOCKOUT_COUNTER:
      return app.daFailures;
    case PT_MAX_AUTH_FAIL:
      // The count at which the app's own throttle stops it (auths.ts), not the chip's.
      return app.daLimit;
    case PT_LOCKOUT_INTERVAL:
      // Seconds until the app's throttle forgets one failure (limits.ts), as LOCKOUT_COUNTER is its count.
      return Math.min(0xffffffff, Math.ceil(app.da.recoveryMs / 1000)); // Infinity: never (a chip with interval 0)
    default:
      return undefined;
  }
}

export interface TaggedProperty {
  readonly property: number;
  readonly value: number;
}

/** The chip's property list with the app's own values, same properties in the same order. */
export function appProperties(conn: Connection, chip: readonly TaggedProperty[]): TaggedProperty[] {
  return chip.map((p) => {
    const v = appValue(conn, p.property, p.value);
    return v === undefined ? p : { property: p.property, value: v };
  });
}
