/**
 * One raw connection's resource-manager context on the shared chip, like the kernel's
 * tpm2-space.c, except that an object stays loaded between the connection's commands while
 * nobody else needs its slot. Each app command is one queue job: load the saved objects and
 * sessions the frame names, let the firewall decide, run the command, keep the objects it left
 * loaded (Transients.keep) and save its sessions (a saved session keeps its handle and takes no
 * slot). The space is a SlotLender like the object cache: when any job needs a slot, the least
 * recently used idle object, whoever holds it, is saved out (a key loaded from a saved context
 * is only flushed: that context stays good; a sequence's state changes, so it is saved again).
 * On close its loaded objects and its sessions are flushed and its saved objects forgotten.
 *
 * Loads, saves and the app's command go to the chip directly (not through the job's account,
 * which would sweep a session that is only saved out, or stop at a closed connection's signal).
 */
import type { Logger } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { ContextLoad, ContextSave, FlushContext, TPM_RC, TpmError, isRetryable, type TPMS_CONTEXT, type TpmRunner } from '../../tpm/index.js';
import type { Transport } from '../../tpm/transport/types.js';
import { Connection, type AppState } from '../../firewall/app.js';
import { decide, type Decision } from '../../firewall/decide.js';
import { namedHandles } from '../../firewall/names.js';
import { errorFrame } from '../../firewall/refusal.js';
import { finish } from '../../firewall/response.js';
import { claimSessions, keepSessions } from '../../firewall/kept-sessions.js';
import type { SlotLender, Transients } from '../tpm/transients.js';
import type { RawApp } from './apps.js';
import { PersistentOps } from './persistent-ops.js';
import type { Timed } from './budgets.js';

export interface SpaceDeps {
  /** The chip, outside any job's account (used only inside this connection's queue jobs). */
  chip: TpmRunner;
  transport: Transport;
  transients: Transients;
  log: Logger;
  /** The app's persistent records (virtual persistent handles); none: EvictControl refused. */
  raw?: RawApp;
}

/** TPMS_CONTEXT.savedHandle of a hash or event sequence (Part 2 §14.1). */
const SEQUENCE_CONTEXT = 0x80000001;

/** TPMS_CONTEXT.savedHandle of a session (HMAC or policy, Part 2 §14.1: TPM_HT_HMAC_SESSION, 0x02xxxxxx, or 0x03xxxxxx). */
const SESSION_CONTEXT_MAX = 0x03ffffff;
const isSessionContext = (c: TPMS_CONTEXT): boolean => c.savedHandle <= SESSION_CONTEXT_MAX;

/** Transient objects kept loaded across jobs (the service's and every raw connection's). */
function keptObjects(t: Transients): number {
  let n = 0;
  for (const h of t.kept) if (h >= 0x80000000 && h <= 0x80ffffff) n++;
  return n;
}

/** The response code of a response frame (0 for one too short to carry it). */
const rcOf = (r: Uint8Array): number => (r.length < 10 ? 0 : r[6]! * 0x1000000 + r[7]! * 0x10000 + r[8]! * 0x100 + r[9]!);

/** TPM_RC_HANDLE at any handle position, or a handle referencing nothing loaded: what a vanished object gets. */
function handleGone(rc: number): boolean {
  if (rc >= TPM_RC.REFERENCE_H0 && rc <= TPM_RC.REFERENCE_H6) return true;
  // Format one, a handle's error (P and bit 11 clear): TPM_RC_HANDLE + 0x100 × n.
  return rc < 0x800 && rc % 0x100 === TPM_RC.HANDLE;
}

/** An object of the connection kept loaded between its commands. */
interface Loaded {
  real: number;
  /** Last use (Transients.tick): the lenders' one order. */
  used: number;
  /** The saved context it was loaded from, while that stays good (a key's, not a sequence's). */
  context: TPMS_CONTEXT | undefined;
}

export class RawSpace implements SlotLender {
  readonly conn: Connection;
  /** Objects saved out (not loaded): their contexts. */
  private readonly objects = new Map<number, TPMS_CONTEXT>();
  private readonly sessions = new Map<number, TPMS_CONTEXT>();
  /** Objects loaded, by virtual handle (their real handles are in Transients.kept). */
  private readonly loaded = new Map<number, Loaded>();
  /** What the command in progress names: never lent meanwhile. */
  private pinned: readonly number[] = [];
  /** Objects loaded by the command in progress (a TPM restart cannot have taken them). */
  private readonly fresh = new Set<number>();
  /** EvictControl and the app's virtual persistent handles (persistent-ops.ts). */
  private readonly persistents: PersistentOps | undefined;
  /** SlotLender: the object cache knows the chip's slots. */
  readonly slots = undefined;

  constructor(
    app: AppState,
    private readonly d: SpaceDeps,
    private readonly fields: Record<string, unknown>,
  ) {
    this.conn = new Connection(app);
    this.persistents = d.raw && new PersistentOps(this.conn, d.raw, d, fields);
    d.transients.addLender(this);
  }

  /** Whether the frame needs one of the app's RSA primaries made again (budgets.ts: a keygen); `named`: namedHandles(frame), read once per command by the caller. */
  remakesRsa(frame: Uint8Array, named: readonly number[] = namedHandles(frame)): boolean {
    return this.persistents?.remakesRsa(named) ?? false;
  }

  /** One app command as a queue job: `job` is the job's runner (lenders free slots through it); RSA re-makes go through `remakes`. */
  async command(job: TpmRunner, frame: Uint8Array, remakes?: Timed, named: readonly number[] = namedHandles(frame)): Promise<Uint8Array> {
    await this.d.raw?.saved(); // the app's NV placement is on disk before the app uses it
    this.pinned = named;
    try {
      if (this.persistents && this.conn.app.persistents.size > 0) {
        await this.persistents.bringIn(job, frame, named, remakes);
        // Made on the chip without a check: a handle someone keeps means the chip restarted.
        for (const real of this.conn.app.persistents.values()) if (real !== undefined) this.noticeReissued(real);
      }
      if (named.length > 0) await this.loadNamed(job, named);
      const first = await this.decideAndRun(job, frame);
      // A kept object the chip no longer holds (restarted behind the service's back): its saved context, once.
      if (!first.forwarded || !handleGone(rcOf(first.response)) || !(await this.fallBack(named))) return first.response;
      await this.loadNamed(job, named);
      return (await this.decideAndRun(job, frame)).response;
    } finally {
      try {
        await this.persistents?.putAway();
        await this.afterCommand();
      } finally {
        this.pinned = [];
        this.fresh.clear();
      }
    }
  }

  private async decideAndRun(job: TpmRunner, frame: Uint8Array): Promise<{ response: Uint8Array; forwarded: boolean }> {
    let d: Decision = decide(this.conn, frame);
    let primary: Parameters<PersistentOps['madePrimary']>[0] | undefined;
    if (d.kind === 'service') {
      if (d.op.op !== 'CreatePrimary') {
        if (this.persistents) return { response: await this.persistents.evictControl(d.op), forwarded: false };
        this.d.log.info({ event: 'raw-refused', ...this.fields, op: d.op.op, rc: TPM_RC.COMMAND_CODE }, 'EvictControl: no persistent records here');
        return { response: errorFrame(TPM_RC.COMMAND_CODE), forwarded: false };
      }
      primary = d.op;
      d = d.op.forward;
    }
    if (d.kind === 'reply') {
      if (d.rc !== TPM_RC.SUCCESS) this.d.log.info({ event: 'raw-refused', ...this.fields, rc: `0x${d.rc.toString(16)}`, reason: d.reason }, `refused: ${d.reason}`);
      return { response: d.response, forwarded: false };
    }
    if (d.kind !== 'forward') return { response: errorFrame(TPM_RC.FAILURE), forwarded: false };
    // d.ownerAuth: EVE's owner and endorsement authorizations are empty, as the firewall forwards them.
    const response = await this.exchange(job, d.command);
    // How an object was made, for a later EvictControl (before finish: the response is the chip's).
    if (primary) this.persistents?.madePrimary(primary, response);
    else await this.persistents?.madeByLoad(d, frame, response);
    return { response: finish(this.conn, d.plan, response), forwarded: primary === undefined };
  }

  /** Sends one frame to the chip: again while it asks (RETRY/YIELDED/TESTING) or a lent slot helps. */
  private async exchange(job: TpmRunner, command: Uint8Array): Promise<Uint8Array> {
    let delay = 20;
    for (let attempt = 0; ; attempt++) {
      const response = await this.d.transport.send(command);
      const rc = rcOf(response);
      if (rc === TPM_RC.SUCCESS || attempt >= 6) return response;
      if (isRetryable(rc)) {
        await sleep(delay);
        delay = Math.min(delay * 2, 1000);
      } else if (!(rc === TPM_RC.OBJECT_MEMORY && (await this.d.transients.lender?.reclaim(job)))) {
        return response;
      }
    }
  }

  /** Brings in the connection's saved objects and sessions that the frame names; kept ones are only touched. */
  private async loadNamed(job: TpmRunner, named: readonly number[]): Promise<void> {
    for (const h of named) {
      const kept = this.loaded.get(h);
      const object = this.objects.get(h);
      const session = this.sessions.get(h);
      if (kept) {
        kept.used = this.d.transients.tick();
      } else if (object) {
        this.objects.delete(h);
        const real = await this.load(job, object);
        if (real === undefined) this.conn.transients.delete(h); // gone (TPM reset): the app's handle is stale
        else {
          this.conn.transients.set(h, real);
          // A key does not change in the TPM, so its context loads again (the object cache relies
          // on this too); a hash sequence's does, so it is saved again when lent.
          this.adopt(h, real, object.savedHandle === SEQUENCE_CONTEXT ? undefined : object);
        }
      } else if (session) {
        this.sessions.delete(h);
        if ((await this.load(job, session)) === undefined) this.conn.sessions.delete(h);
      }
    }
    // A load that got the handle of a kept object (the chip restarted) sent that one back to its context.
    if (named.some((h) => this.objects.has(h))) await this.loadNamed(job, named);
  }

  private async load(job: TpmRunner, context: TPMS_CONTEXT): Promise<number | undefined> {
    const lender = this.d.transients.lender;
    // Every slot taken by kept objects: one lent first, rather than a refused ContextLoad.
    if (!isSessionContext(context) && lender?.slots !== undefined && keptObjects(this.d.transients) >= lender.slots) await lender.reclaim(job);
    for (;;) {
      try {
        return (await this.d.chip.run(ContextLoad, { context })).loadedHandle;
      } catch (e) {
        if (!(e instanceof TpmError)) throw e;
        if (e.is(TPM_RC.OBJECT_MEMORY) && (await this.d.transients.lender?.reclaim(job))) continue;
        this.d.log.warn({ event: 'raw-context-lost', ...this.fields, rc: e.rc }, `a saved context of this connection no longer loads: ${e.message}`);
        return undefined;
      }
    }
  }

  /**
   * An object of this command is loaded at `real`: kept across commands. A real handle someone
   * kept already was handed out again, so the chip restarted: every lender gives up what it kept.
   */
  private adopt(v: number, real: number, context: TPMS_CONTEXT | undefined): void {
    this.noticeReissued(real);
    this.fresh.add(v);
    this.loaded.set(v, { real, used: this.d.transients.tick(), context });
    this.d.transients.keep(real);
  }

  private noticeReissued(real: number): void {
    if (this.d.transients.kept.has(real)) this.d.transients.lender?.reissued(real);
  }

  /**
   * After a handle error: the frame's kept objects (not loaded by this command) that have a
   * saved context go back to it, flushed first in case the chip does hold them. Whether any did.
   */
  private async fallBack(named: readonly number[]): Promise<boolean> {
    let any = false;
    for (const h of named) {
      const kept = this.loaded.get(h);
      if (!kept?.context || this.fresh.has(h)) continue;
      this.unkeep(h, kept, 'context');
      await this.flush(kept.real);
      any = true;
    }
    return any;
  }

  /** After each command: objects it left loaded stay kept, those it flushed are released; sessions saved. */
  private async afterCommand(): Promise<void> {
    claimSessions(this.conn);
    for (const [v, kept] of this.loaded) {
      if (this.conn.transients.get(v) !== kept.real) {
        this.loaded.delete(v);
        this.d.transients.release(kept.real);
      }
    }
    for (const [v, real] of this.conn.transients) if (real !== undefined && !this.loaded.has(v)) this.adopt(v, real, undefined);
    for (const s of this.conn.sessions) {
      if (this.sessions.has(s)) continue;
      try {
        this.sessions.set(s, (await this.d.chip.run(ContextSave, { saveHandle: s })).context);
      } catch (e) {
        if (!(e instanceof TpmError)) throw e; // not loaded: the app saved it itself
      }
    }
  }

  /** SlotLender: the last use of its least recently used object not in use. */
  idleSince(): number | undefined {
    let oldest: number | undefined;
    for (const [v, kept] of this.loaded) if (!this.pinned.includes(v) && (oldest === undefined || kept.used < oldest)) oldest = kept.used;
    return oldest;
  }

  /** SlotLender: saves out (a key loaded from its context: only flushes) the least recently used object not in use. */
  async reclaim(): Promise<boolean> {
    let pick: [number, Loaded] | undefined;
    for (const e of this.loaded) if (!this.pinned.includes(e[0]) && (pick === undefined || e[1].used < pick[1].used)) pick = e;
    if (!pick) return false;
    const [v, kept] = pick;
    let context = kept.context;
    if (!context) {
      try {
        context = (await this.d.chip.run(ContextSave, { saveHandle: kept.real })).context;
      } catch (e) {
        if (!(e instanceof TpmError)) throw e;
        this.d.log.warn({ event: 'raw-context-lost', ...this.fields, rc: e.rc }, `could not save an object of this connection: ${e.message}`);
      }
    }
    this.unkeep(v, { ...kept, context }, context ? 'context' : 'gone');
    await this.flush(kept.real);
    return true;
  }

  /** SlotLender: the chip handed out a kept handle again (restarted): what was loaded before this command is gone. */
  reissued(): void {
    this.lost();
  }

  /** The chip restarted or stopped answering: objects loaded before this command go back to their saved contexts, unflushed (the sweep sees to them). */
  lost(): void {
    for (const [v, kept] of this.loaded) if (!this.fresh.has(v)) this.unkeep(v, kept, kept.context ? 'context' : 'gone');
  }

  /** No longer loaded: back to its saved context (loaded again when named), or gone (the app's handle is stale). */
  private unkeep(v: number, kept: Loaded, to: 'context' | 'gone'): void {
    this.loaded.delete(v);
    this.d.transients.release(kept.real);
    if (to === 'context' && kept.context) {
      this.objects.set(v, kept.context);
      this.conn.transients.set(v, undefined);
    } else {
      this.conn.transients.delete(v);
    }
  }

  private async flush(h: number): Promise<void> {
    try {
      await this.d.chip.run(FlushContext, { flushHandle: h });
    } catch (e) {
      if (!(e instanceof TpmError)) throw e;
    }
  }

  /** Its close job failed: nothing is kept or lent any more (the maintenance sweep flushes what is left). */
  forget(): void {
    this.d.transients.removeLender(this);
    for (const kept of this.loaded.values()) this.d.transients.release(kept.real);
    this.loaded.clear();
  }

  /** On close (a cleanup job): its objects and sessions are flushed, loaded or saved (but sessions the app saved itself are kept a while). */
  async close(): Promise<void> {
    this.forget();
    // Sessions the app saved itself (not ours to save out) outlive it, a few per app (kept-sessions.ts).
    const own = [...this.conn.sessions].filter((s) => !this.sessions.has(s));
    const flush = [...this.conn.sessions].filter((s) => this.sessions.has(s));
    for (const s of [...flush, ...keepSessions(this.conn, own)]) await this.flush(s);
    this.conn.sessions.clear();
    this.objects.clear();
    this.sessions.clear();
    for (const [v, real] of this.conn.transients) {
      if (real !== undefined) await this.flush(real);
      this.conn.transients.delete(v);
    }
  }
}
