/**
 * What the firewall knows about one app (docs/FIREWALL.md "The model"): the state shared by all
 * its connections (persistent virtual handles, saved contexts, NV range and quotas, DA
 * failures) and the state of one connection, which is one resource-manager context (its
 * transient objects and sessions, as /dev/tpmrm0 keeps per file descriptor).
 */
import { createHash } from 'node:crypto';
import { TPMS_CONTEXT } from '../tpm/structures.js';
import { encode } from '../tpm/wire/codec.js';
import { monotonic, type Clock } from './clock.js';
import { DaCount, TokenBucket, type DaTotal } from './limits.js';

/** An inclusive range of handles. */
export interface HandleRange {
  readonly first: number;
  readonly last: number;
}

/** EVE's persistent handles (docs/EVE.md): never addressable by an app, not even virtually. */
export const EVE_PERSISTENT: readonly number[] = [0x81000001, 0x81000002, 0x81000003, 0x81000004, 0x81000005, 0x817fffff];
/** EVE's NV indices 0x01500000–0x01900000 (docs/EVE.md): never in an app's range. */
export const EVE_NV: HandleRange = { first: 0x01500000, last: 0x019fffff };
/** Where an app's virtual persistent handles live: the owner persistent range. */
export const APP_PERSISTENT: HandleRange = { first: 0x81000000, last: 0x8100ffff };
/** Where the firewall numbers an app's transient objects (per connection, as tpmrm does). */
const VIRTUAL_TRANSIENT_FIRST = 0x80000000;
const VIRTUAL_TRANSIENT_LAST = 0x80ffffff;

export const inRange = (h: number, r: HandleRange): boolean => h >= r.first && h <= r.last;

/** Limits per app; the service chooses them per app (config later). */
export interface AppLimits {
  /** Virtual persistent handles (the service's registry, not chip NV). */
  readonly persistents: number;
  /** NV indices defined in the app's range, and their total data size in bytes. */
  readonly nvIndices: number;
  readonly nvBytes: number;
  /** Authorization failures on the app's DA-protected objects before the app is stopped. */
  readonly daFailures: number;
  /** One failure forgotten per this many ms (docs/FIREWALL.md "DA safety": not faster than the chip forgets). */
  readonly daRecoveryMs: number;
  /** NV writes (rules.ts `nvWrite`): a burst of this many, then one more per `nvWriteIntervalMs` (docs/FIREWALL.md "NV"). */
  readonly nvWriteBurst: number;
  readonly nvWriteIntervalMs: number;
  /** A session the app saved and the service kept (kept-sessions.ts) is flushed after this long unused. */
  readonly keptSessionIdleMs: number;
  /** Loaded transient objects/sequences and sessions per connection (abrmd's defaults: 27, 4). */
  readonly transients: number;
  readonly sessions: number;
}

const MINUTE = 60_000;
export const DEFAULT_LIMITS: AppLimits = {
  persistents: 8,
  nvIndices: 8,
  nvBytes: 4096,
  daFailures: 4,
  daRecoveryMs: 120 * MINUTE,
  nvWriteBurst: 64,
  nvWriteIntervalMs: 10 * MINUTE,
  keptSessionIdleMs: 10 * MINUTE,
  transients: 27,
  sessions: 4,
};

/** State shared by all connections of one app (kept by the service across connections). */
export class AppState {
  /**
   * Virtual persistent handle → the real handle the service made that object at for the
   * current command; undefined between commands (the service re-makes it from its recipe).
   */
  readonly persistents = new Map<number, number | undefined>();
  /** SHA-256 (hex) of every TPMS_CONTEXT this app saved: ContextLoad takes only these. */
  readonly saved = new Set<string>();
  /** NV indices the app defined, with their data size (for the quota). */
  readonly nv = new Map<number, number>();
  /** Authorization failures counted against this app (TPM_RC_AUTH_FAIL answers), forgotten over time. */
  readonly da: DaCount;
  /** The app's NV write tokens (in memory: a restart gives a full bucket). */
  readonly nvWrites: TokenBucket;

  constructor(
    readonly app: string,
    /** The app's NV range: real indices (NV is not virtualized), disjoint from EVE's and other apps'. */
    readonly nvRange: HandleRange,
    readonly limits: AppLimits = DEFAULT_LIMITS,
    /** The limits' clock (clock.ts); tests pass a fake one. */
    readonly now: Clock = monotonic,
    /** All apps' failures together, with the chip's figures (limits.ts; none: this app's limits only). */
    readonly daTotal?: DaTotal,
  ) {
    // Never forgiven faster than the chip forgives (docs/FIREWALL.md "DA safety").
    this.da = new DaCount(now, () => Math.max(limits.daRecoveryMs, daTotal?.recoveryMs ?? 0));
    this.nvWrites = new TokenBucket(now, limits.nvWriteBurst, limits.nvWriteIntervalMs);
    if (nvRange.first > nvRange.last || Math.floor(nvRange.first / 0x1000000) !== 0x01 || Math.floor(nvRange.last / 0x1000000) !== 0x01) {
      throw new RangeError(`${app}: NV range must be NV index handles (0x01xxxxxx)`);
    }
    if (nvRange.first <= EVE_NV.last && nvRange.last >= EVE_NV.first) throw new RangeError(`${app}: NV range overlaps EVE's 0x01500000–0x019FFFFF`);
  }

  /** Authorization failures still counted now. */
  get daFailures(): number {
    return this.da.failures();
  }

  /** Failures at which this app is stopped: its own limit, never more than all apps may have together. */
  get daLimit(): number {
    return Math.min(this.limits.daFailures, this.daTotal?.limit ?? Infinity);
  }

  /** Whether the app's DA-counted authorizations are stopped now (its own count, or all apps' together). */
  daStopped(): boolean {
    return this.daFailures >= this.daLimit || this.daTotal?.stopped() === true;
  }

  /** The chip answered TPM_RC_AUTH_FAIL to this app. */
  daFail(): void {
    this.da.fail();
    this.daTotal?.fail();
  }
}

/** One connection of an app: one resource-manager context. */
export class Connection {
  /**
   * Virtual transient handle → real transient handle (objects and sequences); undefined while
   * the service holds the object saved out between commands (its raw channel swaps contexts
   * per command, as the kernel's tpm2-space.c does): such a handle is refused, never guessed.
   */
  readonly transients = new Map<number, number | undefined>();
  /** Sessions this connection started or loaded. Session handles are not renumbered. */
  readonly sessions = new Set<number>();
  /**
   * HMAC sessions started unsalted and unbound (their key is empty), with their latest nonceTPM:
   * the firewall can follow their HMAC where it rewrites parameters (primary-auth.ts).
   */
  readonly unkeyed = new Map<number, { readonly hashAlg: number; nonceTPM: Uint8Array }>();
  private next = VIRTUAL_TRANSIENT_FIRST;

  constructor(readonly app: AppState) {}

  /**
   * Numbers a transient the TPM just loaded. Numbers are not reused in a connection until all
   * 2^24 transient handles went round (a guest's /dev/tpmrm ContextLoads for every command);
   * then the next free one, never a number past the transient range.
   */
  addTransient(real: number): number {
    while (this.transients.has(this.next) || this.next > VIRTUAL_TRANSIENT_LAST) {
      this.next = this.next > VIRTUAL_TRANSIENT_LAST ? VIRTUAL_TRANSIENT_FIRST : this.next + 1;
    }
    const v = this.next++;
    this.transients.set(v, real);
    return v;
  }

  /** What the service must flush when the connection closes (as tpmrm does on close). */
  loaded(): { transients: number[]; sessions: number[] } {
    const transients = [...this.transients.values()].filter((h): h is number => h !== undefined);
    return { transients, sessions: [...this.sessions] };
  }
}

/** Whether `a` is an unsalted, unbound HMAC session of this connection (its key is empty). */
export const isUnkeyed = (conn: Connection, a: { sessionHandle: number }): boolean => conn.unkeyed.has(a.sessionHandle) && conn.sessions.has(a.sessionHandle);

/** The identity of a saved context: its digest over the whole TPMS_CONTEXT. */
export function contextDigest(c: TPMS_CONTEXT): string {
  return createHash('sha256').update(encode(TPMS_CONTEXT, c)).digest('hex');
}
