/**
 * EvictControl by an app, and its virtual persistent handles in use (docs/FIREWALL.md
 * "Persistent handles"). For one connection: notes how each object it makes was made (a
 * recipe, by Name, shared by the app's connections because each tool run is a new one),
 * records a persisted object's recipe in the app's state file (never chip NV), and brings in
 * the objects a command names for that command only: from the context saved when the object was
 * first made (ContextLoad), or made again from the recipe, its Name checked, when there is none
 * or it no longer loads (TPM Reset). The saved contexts are the app's, in memory: a service
 * restart makes each object once again, as a TPM Reset does.
 */
import type { Logger } from 'pino';
import { TPMA_OBJECT, TPMA_SESSION, TPM_HT } from '../../tpm/constants.js';
import { ContextLoad, ContextSave, CreatePrimary, EvictControl, FlushContext, Load, ReadPublic } from '../../tpm/commands.js';
import { marshalResponse, unmarshalResponse, type Authorization } from '../../tpm/command.js';
import type { Transport } from '../../tpm/transport/types.js';
import { TPM_RC } from '../../tpm/rc.js';
import { TpmError, type TPMS_CONTEXT, type TpmRunner } from '../../tpm/index.js';
import { TPMT_PUBLIC } from '../../tpm/structures.js';
import { decode } from '../../tpm/wire/codec.js';
import type { Connection } from '../../firewall/app.js';
import type { Decision } from '../../firewall/decide.js';
import { readCommand, readHeader } from '../../firewall/frame.js';
import { CreateLoaded } from '../../firewall/commands-objects.js';
import { atHandle, errorFrame } from '../../firewall/refusal.js';
import type { ServiceOp } from '../../firewall/service-ops.js';
import { typeOf } from '../../firewall/slots.js';
import type { Transients } from '../tpm/transients.js';
import type { RawApp } from './apps.js';
import { checkEvictHmac, rollAndAnswer } from './owner-session.js';
import type { Timed } from './budgets.js';
import { hex, loadRecipe, materialize, primaryRecipe, rsaRoot, withSlot, type PersistentRecord, type Recipe } from './persistents.js';

const rcOf = (r: Uint8Array): number => (r.length < 10 ? 0 : new DataView(r.buffer, r.byteOffset, r.byteLength).getUint32(6));
const u32At = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at);
const hex32 = (h: number): string => `0x${h.toString(16).padStart(8, '0')}`;

type CreatePrimaryOp = Extract<ServiceOp, { op: 'CreatePrimary' }>;

/** A persistent object's saved context, with the Name it was made with (a handle evicted and persisted again is another object). */
type SavedObject = { readonly name: string; readonly context: TPMS_CONTEXT };
/** Each app's saved persistent objects by virtual handle (all its connections share them; gone with the app's state). */
const savedOf = new WeakMap<RawApp, Map<number, SavedObject>>();
/** An object the app loaded (Load, CreateLoaded): its Name, its parent as the app named it, and the blobs Load takes. */
type MadeObject = { name: Uint8Array; virtualParent: number; inPrivate: Uint8Array; inPublic: TPMT_PUBLIC };

export class PersistentOps {
  /** Virtual persistent handles made for the current command, with the real handle. */
  private made: Array<[number, number]> = [];

  constructor(
    private readonly conn: Connection,
    private readonly raw: RawApp,
    private readonly d: { chip: TpmRunner; transport: Transport; transients: Transients; log: Logger },
    private readonly fields: Record<string, unknown>,
  ) {}

  /** The app's saved persistent objects (ContextSave after each was first made). */
  private get saved(): Map<number, SavedObject> {
    let m = savedOf.get(this.raw);
    if (!m) savedOf.set(this.raw, (m = new Map()));
    return m;
  }

  /** Whether bringing in what the frame names would make an RSA primary again (no saved context): a keygen for the budget. */
  remakesRsa(named: readonly number[]): boolean {
    if (this.conn.app.persistents.size === 0) return false;
    for (const h of named) {
      const r = typeOf(h) === TPM_HT.PERSISTENT ? this.raw.record(h) : undefined;
      if (r && this.saved.get(h)?.name !== r.name && rsaRoot(r.recipe)) return true;
    }
    return false;
  }

  /** Brings in the app's persistent objects the frame names (EvictControl needs only the record); RSA re-makes go through `charge`. */
  async bringIn(job: TpmRunner, frame: Uint8Array, named: readonly number[], charge?: Timed): Promise<void> {
    if (this.conn.app.persistents.size === 0 || (frame.length >= 10 && u32At(frame, 6) === EvictControl.code)) return;
    for (const h of new Set(named)) {
      const r = typeOf(h) === TPM_HT.PERSISTENT ? this.raw.record(h) : undefined;
      if (!r || this.conn.app.persistents.get(h) !== undefined) continue;
      const real = (await this.fromContext(job, r)) ?? (await this.fromRecipe(job, r, charge));
      if (real === undefined) continue; // left unmade: the firewall answers TPM_RC_HANDLE
      this.conn.app.persistents.set(h, real);
      this.made.push([h, real]);
    }
  }

  /** The object loaded from its saved context; undefined when there is none or it no longer loads (forgotten then). */
  private async fromContext(job: TpmRunner, r: PersistentRecord): Promise<number | undefined> {
    const saved = this.saved.get(r.handle);
    if (saved?.name !== r.name) return undefined;
    try {
      return (await withSlot(job, this.d.transients, () => this.d.chip.run(ContextLoad, { context: saved.context }))).loadedHandle;
    } catch (e) {
      if (!(e instanceof TpmError)) throw e;
      this.saved.delete(r.handle);
      this.d.log.info({ event: 'raw-persistent-context-lost', ...this.fields, handle: hex32(r.handle), rc: e.rc }, `the saved context of the app's persistent ${hex32(r.handle)} no longer loads (${e.message}): made again`);
      return undefined;
    }
  }

  /** The object made again from its recipe, its Name checked, its context saved for the next commands. */
  private async fromRecipe(job: TpmRunner, r: PersistentRecord, charge: Timed | undefined): Promise<number | undefined> {
    let made: { handle: number; name: Uint8Array };
    try {
      made = await materialize(this.d.chip, job, this.d.transients, this.conn.app.app, r.recipe, charge);
    } catch (e) {
      if (!(e instanceof TpmError)) throw e;
      this.d.log.warn({ event: 'raw-persistent-lost', ...this.fields, handle: hex32(r.handle), rc: e.rc }, `the app's persistent ${hex32(r.handle)} could not be made again: ${e.message}`);
      return undefined;
    }
    if (hex(made.name) !== r.name) {
      await this.flush(made.handle);
      this.d.log.warn({ event: 'raw-persistent-lost', ...this.fields, handle: hex32(r.handle) }, `the app's persistent ${hex32(r.handle)} was made again with another Name: refused`);
      return undefined;
    }
    try {
      this.saved.set(r.handle, { name: r.name, context: (await this.d.chip.run(ContextSave, { saveHandle: made.handle })).context });
    } catch (e) {
      if (!(e instanceof TpmError)) throw e; // no context: made from the recipe next time too
    }
    return made.handle;
  }

  /** After the command: nothing made for it stays loaded. */
  async putAway(): Promise<void> {
    const made = this.made;
    this.made = [];
    for (const [v, real] of made) {
      if (this.conn.app.persistents.has(v)) this.conn.app.persistents.set(v, undefined);
      await this.flush(real);
    }
  }

  /** An owner/endorsement primary the service made for the app: its recipe is its template. */
  madePrimary(op: CreatePrimaryOp, response: Uint8Array): void {
    if (rcOf(response) !== TPM_RC.SUCCESS) return;
    const name = this.nameIn(CreatePrimary, response, 1);
    if (name) this.raw.recent.add(name, primaryRecipe(op.hierarchy, op.inSensitive, op.inPublic));
  }

  /**
   * A Load under a parent whose recipe is known: the child's recipe is the parent's plus the
   * blobs. CreateLoaded's object is Load's of the blobs it answers with (Part 3 §12.9).
   */
  async madeByLoad(d: Extract<Decision, { kind: 'forward' }>, frame: Uint8Array, response: Uint8Array): Promise<void> {
    if ((d.plan.cmd !== Load && d.plan.cmd !== CreateLoaded) || rcOf(response) !== TPM_RC.SUCCESS) return;
    const made = d.plan.cmd === Load ? this.loaded(frame, response, d.plan.sessions) : this.createLoaded(frame, response, d.plan.sessions);
    if (!made) return;
    const { name, virtualParent, inPrivate, inPublic } = made;
    let parent: Recipe | undefined = this.raw.record(virtualParent)?.recipe;
    if (!parent) {
      try {
        parent = this.raw.recent.get((await this.d.chip.run(ReadPublic, { objectHandle: u32At(d.command, 10) })).name);
      } catch (e) {
        if (!(e instanceof TpmError)) throw e;
      }
    }
    if (parent) this.raw.recent.add(name, loadRecipe(parent, inPrivate, inPublic));
  }

  private loaded(frame: Uint8Array, response: Uint8Array, sessions: number): MadeObject | undefined {
    const name = this.nameIn(Load, response, sessions);
    if (!name) return undefined;
    const parsed = readCommand(Load, frame, readHeader(frame));
    return { name, virtualParent: parsed.handles[0] as number, inPrivate: parsed.params.inPrivate as Uint8Array, inPublic: parsed.params.inPublic as TPMT_PUBLIC };
  }

  private createLoaded(frame: Uint8Array, response: Uint8Array, sessions: number): MadeObject | undefined {
    let out: { outPrivate: Uint8Array; outPublic: TPMT_PUBLIC; name: Uint8Array };
    try {
      out = unmarshalResponse(CreateLoaded, response, sessions).output as typeof out;
    } catch {
      return undefined;
    }
    return { name: out.name, virtualParent: u32At(frame, 10), inPrivate: out.outPrivate, inPublic: out.outPublic };
  }

  /** EvictControl's Persist or Evict (already checked by the firewall: range, quota, in use). */
  async evictControl(op: Exclude<ServiceOp, { op: 'CreatePrimary' }>): Promise<Uint8Array> {
    if (op.op === 'Evict') {
      const name = Buffer.from(this.raw.record(op.persistent)?.name ?? '', 'hex');
      const bad = op.session && checkEvictHmac(this.conn, op.session, name, op.persistent);
      if (bad) return this.refused(bad.rc, bad.reason);
      await this.raw.evict(op.persistent);
      this.saved.delete(op.persistent);
      this.d.log.info({ event: 'raw-evict', ...this.fields, handle: hex32(op.persistent) }, `the app's persistent ${hex32(op.persistent)} evicted`);
      return this.done(op.session);
    }
    let name: Uint8Array;
    try {
      name = (await this.d.chip.run(ReadPublic, { objectHandle: op.real })).name;
    } catch (e) {
      if (!(e instanceof TpmError)) throw e;
      return this.refused(e.rc, `ReadPublic of the object failed: ${e.message}`);
    }
    const bad = op.session && checkEvictHmac(this.conn, op.session, name, op.persistent);
    if (bad) return this.refused(bad.rc, bad.reason);
    const recipe = this.raw.recent.get(name);
    // A NULL-hierarchy object, LoadExternal, CreateLoaded, a key loaded under one of those: not made again.
    if (!recipe) return this.refused(atHandle(TPM_RC.ATTRIBUTES, 2), 'the object was not made by this app as a primary or a Load under one, so it cannot be made again');
    const attrs = decode(TPMT_PUBLIC, Buffer.from(recipe.inPublic, 'hex')).objectAttributes;
    if (Math.floor(attrs / TPMA_OBJECT.stClear) % 2 === 1) return this.refused(atHandle(TPM_RC.ATTRIBUTES, 2), 'an stClear object cannot be made persistent');
    this.saved.delete(op.persistent);
    await this.raw.persist({ handle: op.persistent, name: hex(name), recipe });
    this.d.log.info({ event: 'raw-persist', ...this.fields, handle: hex32(op.persistent) }, `the app's object persisted as ${hex32(op.persistent)} (service records, not chip NV)`);
    return this.done(op.session);
  }

  /** EvictControl's success: the password's response entry, or the HMAC session's after the chip rolled its nonce. */
  private async done(session: Authorization | undefined): Promise<Uint8Array> {
    if (!session) return marshalResponse(EvictControl, {} as never, [{ nonceTPM: new Uint8Array(0), sessionAttributes: TPMA_SESSION.continueSession, hmac: new Uint8Array(0) }]);
    const f = await rollAndAnswer(this.conn, this.d.transport, session);
    // The record is changed already; the app sees the chip's failure and may look again (GetCapability).
    if (f.rc !== 0) return this.refused(f.rc, 'reason' in f ? f.reason : '');
    return marshalResponse(EvictControl, {} as never, ['auth' in f ? f.auth : { nonceTPM: new Uint8Array(0), sessionAttributes: 0, hmac: new Uint8Array(0) }]);
  }

  private refused(rc: number, reason: string): Uint8Array {
    this.d.log.info({ event: 'raw-refused', ...this.fields, rc: `0x${rc.toString(16)}`, reason }, `EvictControl refused: ${reason}`);
    return errorFrame(rc);
  }

  private nameIn(cmd: typeof CreatePrimary | typeof Load, response: Uint8Array, sessions: number): Uint8Array | undefined {
    try {
      return (unmarshalResponse(cmd, response, sessions).output as { name: Uint8Array }).name;
    } catch {
      return undefined;
    }
  }

  private async flush(h: number): Promise<void> {
    await this.d.chip.run(FlushContext, { flushHandle: h }).catch(() => undefined);
  }
}
