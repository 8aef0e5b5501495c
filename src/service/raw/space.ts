/**
 * One raw connection's resource-manager context on the shared chip, like the kernel's
 * tpm2-space.c: between commands the connection's objects are saved contexts and nothing of
 * it is loaded. Each app command is one queue job: load the objects and sessions the frame
 * names, let the firewall decide, run the command, then save out and flush every object it
 * left loaded and save its sessions (a saved session keeps its handle and takes no slot).
 * On close its sessions are flushed and its saved objects forgotten.
 *
 * Loads, saves and the app's command go to the chip directly (not through the job's account,
 * which would sweep a session that is only saved out); the object cache lends a slot when the
 * chip answers TPM_RC_OBJECT_MEMORY, as for the service's own jobs.
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
import type { Transients } from '../tpm/transients.js';
import type { RawApp } from './apps.js';
import { PersistentOps } from './persistent-ops.js';

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

/** The response code of a response frame (0 for one too short to carry it). */
const rcOf = (r: Uint8Array): number => (r.length < 10 ? 0 : new DataView(r.buffer, r.byteOffset, r.byteLength).getUint32(6));

export class RawSpace {
  readonly conn: Connection;
  private readonly objects = new Map<number, TPMS_CONTEXT>();
  private readonly sessions = new Map<number, TPMS_CONTEXT>();
  /** Objects loaded for this command from a context that stays good: flushed, not saved again. */
  private readonly reusable = new Map<number, TPMS_CONTEXT>();
  /** EvictControl and the app's virtual persistent handles (persistent-ops.ts). */
  private readonly persistents: PersistentOps | undefined;

  constructor(
    app: AppState,
    private readonly d: SpaceDeps,
    private readonly fields: Record<string, unknown>,
  ) {
    this.conn = new Connection(app);
    this.persistents = d.raw && new PersistentOps(this.conn, d.raw, d, fields);
  }

  /** One app command as a queue job: `job` is the job's runner (the object cache frees slots through it). */
  async command(job: TpmRunner, frame: Uint8Array): Promise<Uint8Array> {
    await this.d.raw?.saved(); // the app's NV placement is on disk before the app uses it
    await this.loadNamed(job, frame);
    try {
      await this.persistents?.bringIn(job, frame);
      return await this.decideAndRun(job, frame);
    } finally {
      await this.persistents?.putAway();
      await this.saveOut();
    }
  }

  private async decideAndRun(job: TpmRunner, frame: Uint8Array): Promise<Uint8Array> {
    let d: Decision = decide(this.conn, frame);
    let primary: Parameters<PersistentOps['madePrimary']>[0] | undefined;
    if (d.kind === 'service') {
      if (d.op.op !== 'CreatePrimary') {
        if (this.persistents) return this.persistents.evictControl(d.op);
        this.d.log.info({ event: 'raw-refused', ...this.fields, op: d.op.op, rc: TPM_RC.COMMAND_CODE }, 'EvictControl: no persistent records here');
        return errorFrame(TPM_RC.COMMAND_CODE);
      }
      primary = d.op;
      d = d.op.forward;
    }
    if (d.kind === 'reply') {
      if (d.rc !== TPM_RC.SUCCESS) this.d.log.info({ event: 'raw-refused', ...this.fields, rc: `0x${d.rc.toString(16)}`, reason: d.reason }, `refused: ${d.reason}`);
      return d.response;
    }
    if (d.kind !== 'forward') return errorFrame(TPM_RC.FAILURE);
    // d.ownerAuth: EVE's owner and endorsement authorizations are empty, as the firewall forwards them.
    const response = await this.exchange(job, d.command);
    // How an object was made, for a later EvictControl (before finish: the response is the chip's).
    if (primary) this.persistents?.madePrimary(primary, response);
    else await this.persistents?.madeByLoad(d, frame, response);
    return finish(this.conn, d.plan, response);
  }

  /** Sends one frame to the chip: again while it asks (RETRY/YIELDED/TESTING) or a lent slot helps. */
  private async exchange(job: TpmRunner, command: Uint8Array): Promise<Uint8Array> {
    let delay = 20;
    for (let attempt = 0; ; attempt++) {
      const response = await this.d.transport.send(command);
      const rc = rcOf(response);
      if (attempt >= 6) return response;
      if (isRetryable(rc)) {
        await sleep(delay);
        delay = Math.min(delay * 2, 1000);
      } else if (!(rc === TPM_RC.OBJECT_MEMORY && (await this.d.transients.lender?.reclaim(job)))) {
        return response;
      }
    }
  }

  /** Brings in the connection's saved objects and sessions that the frame names. */
  private async loadNamed(job: TpmRunner, frame: Uint8Array): Promise<void> {
    for (const h of new Set(namedHandles(frame))) {
      const object = this.objects.get(h);
      const session = this.sessions.get(h);
      if (object) {
        this.objects.delete(h);
        const real = await this.load(job, object);
        if (real === undefined) this.conn.transients.delete(h); // gone (TPM reset): the app's handle is stale
        else {
          this.conn.transients.set(h, real);
          // A key does not change in the TPM, so its context loads again (the object cache relies
          // on this too); a hash sequence's state does, so it is saved again.
          if (object.savedHandle !== SEQUENCE_CONTEXT) this.reusable.set(h, object);
        }
      } else if (session) {
        this.sessions.delete(h);
        if ((await this.load(job, session)) === undefined) this.conn.sessions.delete(h);
      }
    }
  }

  private async load(job: TpmRunner, context: TPMS_CONTEXT): Promise<number | undefined> {
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

  /** After each command: nothing of the connection stays loaded. */
  private async saveOut(): Promise<void> {
    claimSessions(this.conn);
    const reusable = new Map(this.reusable);
    this.reusable.clear();
    for (const [v, real] of this.conn.transients) {
      if (real === undefined) continue;
      const again = reusable.get(v);
      if (again) {
        this.objects.set(v, again);
        this.conn.transients.set(v, undefined);
        await this.flush(real);
        continue;
      }
      try {
        this.objects.set(v, (await this.d.chip.run(ContextSave, { saveHandle: real })).context);
        this.conn.transients.set(v, undefined);
      } catch (e) {
        if (!(e instanceof TpmError)) throw e;
        this.conn.transients.delete(v);
        this.d.log.warn({ event: 'raw-context-lost', ...this.fields, rc: e.rc }, `could not save an object of this connection: ${e.message}`);
      }
      await this.flush(real);
    }
    for (const s of this.conn.sessions) {
      if (this.sessions.has(s)) continue;
      try {
        this.sessions.set(s, (await this.d.chip.run(ContextSave, { saveHandle: s })).context);
      } catch (e) {
        if (!(e instanceof TpmError)) throw e; // not loaded: the app saved it itself
      }
    }
  }

  private async flush(h: number): Promise<void> {
    try {
      await this.d.chip.run(FlushContext, { flushHandle: h });
    } catch (e) {
      if (!(e instanceof TpmError)) throw e;
    }
  }

  /** On close (a cleanup job): its sessions are flushed, loaded or saved (but those the app saved itself are kept a while); its saved objects forgotten. */
  async close(): Promise<void> {
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
