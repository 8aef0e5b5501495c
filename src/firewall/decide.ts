/**
 * The firewall's decision for one command frame from an app (docs/FIREWALL.md): forward a
 * re-marshalled frame naming real handles (and how to map the response), answer with a TPM
 * error, or hand a virtualized command to the service. Pure apart from reading the app's
 * records: nothing changes until `finish` sees the chip's success.
 */
import { TPMA_SESSION, TPM_HT, TPM_RH, TPM_ST } from '../tpm/constants.js';
import { TPM_RC } from '../tpm/rc.js';
import { ContextLoad, CreatePrimary, EvictControl, GetCapability, StartAuthSession } from '../tpm/commands.js';
import type { TPMS_CONTEXT, TPMT_PUBLIC } from '../tpm/structures.js';
import { marshalResponse, passwordAuth, writeAuthArea, type AnyCommand, type Authorization } from '../tpm/command.js';
import { TpmDecodeError, TpmEncodeError } from '../tpm/wire/errors.js';
import { Writer } from '../tpm/wire/writer.js';
import type { Connection } from './app.js';
import { checkAuths } from './auths.js';
import { localHandles } from './capability.js';
import { SelfTest } from './commands.js';
import { readCommand, readHeader, type ParsedCommand } from './frame.js';
import { Refusal, errorFrame, refuse } from './refusal.js';
import type { ResponsePlan } from './response.js';
import { appTemplate } from './primary.js';
import { followHmac, handleName, primaryAuth } from './primary-auth.js';
import { RULES } from './rules.js';
import { createPrimaryOp, evictControlOp, type ServiceOp } from './service-ops.js';

export type Forward = Extract<Decision, { kind: 'forward' }>;
import { resolveSlot, typeOf } from './slots.js';

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

export type Decision =
  /** Send `command` to the chip; give its response to `finish(conn, plan, response)`. */
  | { readonly kind: 'forward'; readonly command: Uint8Array; readonly plan: ResponsePlan; readonly ownerAuth: readonly number[] }
  /** Answer the app with `response` (an error frame, or a handle list the firewall knows). */
  | { readonly kind: 'reply'; readonly response: Uint8Array; readonly rc: number; readonly reason: string }
  /** The service performs `op` for the app (service-ops.ts). */
  | { readonly kind: 'service'; readonly op: ServiceOp };

/** Decides what to do with one command frame from an app. No bytes make it throw (fuzzed); only a bug would. */
export function decide(conn: Connection, frame: Uint8Array): Decision {
  try {
    return decideOrRefuse(conn, frame);
  } catch (e) {
    if (e instanceof Refusal) return { kind: 'reply', response: errorFrame(e.rc), rc: e.rc, reason: e.reason };
    // A value the library's codecs refuse to re-encode: the TPM's generic answer.
    if (e instanceof TpmDecodeError || e instanceof TpmEncodeError) return { kind: 'reply', response: errorFrame(TPM_RC.VALUE), rc: TPM_RC.VALUE, reason: e.message };
    throw e;
  }
}

function decideOrRefuse(conn: Connection, frame: Uint8Array): Decision {
  const header = readHeader(frame);
  if (header.code === CreatePrimary.code) {
    const parsed = readCommand(CreatePrimary, frame, header);
    // The template is rewritten (primary.ts): one authorization, which primary-auth.ts can follow.
    onePassword(parsed);
    const op = createPrimaryOp(parsed.handles[0] as number, parsed.params);
    const primary = primaryForward(conn, parsed);
    return op === 'forward' ? primary : { kind: 'service', op: { ...op, forward: primary } };
  }
  if (header.code === EvictControl.code) {
    const parsed = readCommand(EvictControl, frame, header);
    onePassword(parsed);
    return { kind: 'service', op: evictControlOp(conn, parsed.handles, parsed.auths[0] as Authorization, parsed.params.persistentHandle as number) };
  }
  if (header.code === SelfTest.code) {
    // A guest kernel registers a TPM only once its SelfTest succeeds; the chip is tested by the host.
    const parsed = readCommand(SelfTest, frame, header);
    if (parsed.tag === TPM_ST.SESSIONS) refuse(TPM_RC.AUTH_CONTEXT, 'SelfTest: answered by the firewall, without sessions');
    return { kind: 'reply', response: marshalResponse(SelfTest, {}), rc: TPM_RC.SUCCESS, reason: 'SelfTest answered by the firewall' };
  }
  const rule = RULES.get(header.code);
  if (!rule) refuse(TPM_RC.COMMAND_CODE, `command code 0x${header.code.toString(16)} is not allowed for apps`);
  const parsed = readCommand(rule.cmd, frame, header);
  if (rule.noSessions && parsed.tag === TPM_ST.SESSIONS) refuse(TPM_RC.AUTH_CONTEXT, `${rule.cmd.name}: sessions are not allowed (the firewall rewrites its response)`);
  const real = parsed.handles.map((h, i) => resolveSlot(conn, rule.slots[i]!, h, i + 1));
  const params = { ...parsed.params };
  const checked = rule.params?.(params, conn, real, parsed.auths) ?? {};
  const effects = rule.nvWrite ? { ...checked, nvWrite: nvRate(conn) } : checked;
  if (rule.cmd === GetCapability) {
    const local = localHandles(conn, params.capability as number, params.property as number, params.propertyCount as number);
    if (local) return { kind: 'reply', response: local, rc: TPM_RC.SUCCESS, reason: 'the app’s own handles' };
  }
  return forward(conn, rule.cmd, parsed, real, params, effects);
}

/**
 * Per-connection quotas on what a command loads (attack 8): the TPM's answers when it is full,
 * TPM_RC_OBJECT_MEMORY / TPM_RC_SESSION_MEMORY, so stock software reacts as to a full TPM.
 */
function checkQuota(conn: Connection, cmd: AnyCommand, params: Record<string, unknown>): void {
  const saved = cmd === ContextLoad ? (params.context as TPMS_CONTEXT).savedHandle : undefined;
  const t = saved === undefined ? undefined : typeOf(saved);
  const session = cmd === StartAuthSession || t === TPM_HT.HMAC_SESSION || t === TPM_HT.POLICY_SESSION;
  const { limits } = conn.app;
  if (session && conn.sessions.size >= limits.sessions) refuse(TPM_RC.SESSION_MEMORY, `${limits.sessions} sessions per connection`);
  if (!session && conn.transients.size >= limits.transients) refuse(TPM_RC.OBJECT_MEMORY, `${limits.transients} objects per connection`);
}

/** NV wear (attack 9): the app's write tokens (limits.ts) are checked before anything reaches the chip. */
function nvRate(conn: Connection): true {
  const { nvWrites } = conn.app;
  if (nvWrites.level() < 1) refuse(TPM_RC.NV_RATE, `NV writes: ${nvWrites.capacity}, then one per ${nvWrites.intervalMs / 1000} s`);
  return true;
}

/**
 * The service answers a virtualized command itself: it has no session of the app's to audit,
 * encrypt or decrypt with, so such a command carries exactly its one authorization.
 */
function onePassword(parsed: ParsedCommand): void {
  if (parsed.auths.length > 1) refuse(TPM_RC.AUTH_CONTEXT, 'a virtualized command takes no extra sessions');
}

function forward(
  conn: Connection,
  cmd: AnyCommand,
  parsed: ParsedCommand,
  real: number[],
  params: Record<string, unknown>,
  effects: ResponsePlan['effects'],
): Decision {
  const { auths, ownerAuth, ownerHmac, ending } = checkAuths(conn, cmd, real, parsed.auths);
  if (cmd.creates.length > 0) checkQuota(conn, cmd, params);
  const rewritten = paramBytes(parsed, params);
  if (ownerHmac.length > 0) {
    const sent = paramBytes(parsed, parsed.params);
    if (!sameBytes(sent, rewritten)) {
      // Only permanent handles have a Name the firewall knows without asking the chip.
      if (real.some((h) => typeOf(h) !== TPM_HT.PERMANENT)) refuse(TPM_RC.AUTH_TYPE, `${cmd.name}: the owner's authorization must be a password here`);
      const names = real.map(handleName);
      for (const k of ownerHmac) auths[k] = followHmac(conn, cmd.code, names, auths[k]!, k + 1, sent, rewritten);
    }
  }
  const w = new Writer(512);
  w.u16(parsed.tag);
  w.u32(0);
  w.u32(cmd.code);
  for (const h of real) w.u32(h);
  if (parsed.tag === TPM_ST.SESSIONS) writeAuthArea(w, auths.length, (i) => auths[i] ?? passwordAuth(), (i) => `authorization[${i}]`);
  w.bytes(rewritten);
  w.patchU32(2, w.length);
  const plan: ResponsePlan = { cmd, sessions: auths.length, sessionHandles: auths.map((a) => a.sessionHandle), virtualHandles: parsed.handles, ending, effects };
  return { kind: 'forward', command: w.finish(), plan, ownerAuth };
}

/** The parameter area as the codecs write it (canonical: the app's bytes when nothing changed). */
function paramBytes(parsed: ParsedCommand, params: Record<string, unknown>): Uint8Array {
  const w = new Writer(512);
  for (const [name, codec] of parsed.fields) codec.encode(w, params[name], params);
  return w.finish();
}

/**
 * An app's primary (owner, endorsement or NULL hierarchy): its template carries the app's
 * record (primary.ts), its authorization is checked and, for an HMAC session, recomputed
 * (primary-auth.ts). A password for owner/endorsement is left to the service (`ownerAuth`).
 */
function primaryForward(conn: Connection, parsed: ParsedCommand): Forward {
  const hierarchy = parsed.handles[0] as number;
  const params = { ...parsed.params, inPublic: appTemplate(conn.app.app, parsed.params.inPublic as TPMT_PUBLIC) };
  const rewritten = paramBytes(parsed, params);
  const auth = primaryAuth(conn, hierarchy, parsed.auths[0] as Authorization, paramBytes(parsed, parsed.params), rewritten);
  checkQuota(conn, CreatePrimary, params);
  const w = new Writer(512);
  w.u16(TPM_ST.SESSIONS);
  w.u32(0);
  w.u32(CreatePrimary.code);
  w.u32(hierarchy);
  writeAuthArea(w, 1, () => auth, () => 'authorization(primaryHandle)');
  w.bytes(rewritten);
  w.patchU32(2, w.length);
  const password = auth.sessionHandle === TPM_RH.RS_PW;
  const ending = !password && Math.floor(auth.sessionAttributes / TPMA_SESSION.continueSession) % 2 === 0 ? [auth.sessionHandle] : [];
  const plan: ResponsePlan = { cmd: CreatePrimary, sessions: 1, sessionHandles: [auth.sessionHandle], virtualHandles: [hierarchy], ending, effects: {} };
  return { kind: 'forward', command: w.finish(), plan, ownerAuth: password && hierarchy !== TPM_RH.NULL ? [0] : [] };
}
