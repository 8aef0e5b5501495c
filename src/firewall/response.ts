/**
 * The chip's response, mapped back for the app: handles the command loaded get virtual
 * numbers, the connection's and app's records follow what the command did (flushed, saved,
 * defined), authorization failures count against the app's DA throttle (and all apps' total), NV writes take the
 * app's write tokens, and NV handle lists are filtered. The response is decoded strictly
 * first; one that does not decode is TPM_RC_FAILURE.
 */
import { TPM_HT, TPM_ST } from '../tpm/constants.js';
import { TPM_RC } from '../tpm/rc.js';
import { ContextSave, GetCapability, ReadClock } from '../tpm/commands.js';
import { unmarshalResponse, type AnyCommand, type AuthResponse, type CommandOutput } from '../tpm/command.js';
import type { TPMS_CONTEXT } from '../tpm/structures.js';
import { contextDigest, type Connection } from './app.js';
import { filterCapability } from './capability.js';
import { noteNvDefined } from './properties.js';
import { appReadClock } from './read-clock.js';
import { errorFrame } from './refusal.js';
import type { ParamEffects } from './rule.js';
import { typeOf } from './slots.js';

/** What `finish` needs to know about the command that was forwarded. */
export interface ResponsePlan {
  readonly cmd: AnyCommand;
  /** Sessions sent: the response carries one auth response per session. */
  readonly sessions: number;
  /** The session handles of the authorization area, in order (TPM_RS_PW for a password). */
  readonly sessionHandles: readonly number[];
  /** The app's (virtual) handles as sent, for commands that flush a handle (SequenceComplete). */
  readonly virtualHandles: readonly number[];
  /** Sessions the TPM ends when the command succeeds. */
  readonly ending: readonly number[];
  readonly effects: ParamEffects;
}

/** TPM_RC_AUTH_FAIL with any session number (Part 2 §6.6.3, format one). */
function isAuthFail(rc: number): boolean {
  return rc < 0x1000 && Math.floor(rc / 0x80) % 2 === 1 && rc % 0x40 === TPM_RC.AUTH_FAIL % 0x40;
}

/** Maps the chip's response to the app's, updating the records. */
export function finish(conn: Connection, plan: ResponsePlan, response: Uint8Array): Uint8Array {
  if (response.length < 10) return errorFrame(TPM_RC.FAILURE);
  const view = new DataView(response.buffer, response.byteOffset, response.byteLength);
  const rc = view.getUint32(6);
  if (rc !== TPM_RC.SUCCESS) {
    if (isAuthFail(rc)) conn.app.daFail();
    return errorFrame(rc);
  }
  let output: Record<string, unknown>;
  let auths: readonly AuthResponse[];
  try {
    ({ output, auths } = unmarshalResponse(plan.cmd, response, plan.sessions) as { output: Record<string, unknown>; auths: AuthResponse[] });
  } catch {
    return errorFrame(TPM_RC.FAILURE);
  }
  // The TPM rolled each session's nonce: follow those whose HMAC the firewall may recompute.
  plan.sessionHandles.forEach((h, i) => {
    const s = conn.unkeyed.get(h);
    if (s && auths[i]) s.nonceTPM = auths[i].nonceTPM;
  });
  let out = new Uint8Array(response);
  const created = plan.cmd.creates[0];
  if (created !== undefined) {
    const real = output[created] as number;
    const t = typeOf(real);
    if (t === TPM_HT.HMAC_SESSION || t === TPM_HT.POLICY_SESSION) {
      conn.sessions.add(real);
      const unkeyed = plan.effects.unkeyed;
      if (unkeyed) conn.unkeyed.set(real, { hashAlg: unkeyed.hashAlg, nonceTPM: output.nonceTPM as Uint8Array });
    }
    else new DataView(out.buffer).setUint32(10, conn.addTransient(real));
  }
  for (const f of plan.cmd.flushes) {
    if (f.from !== 'handle') continue;
    const i = plan.cmd.handles.findIndex((h) => h.name === f.name);
    conn.transients.delete(plan.virtualHandles[i] as number);
  }
  for (const s of plan.ending) {
    conn.sessions.delete(s);
    conn.unkeyed.delete(s);
  }
  const { flushed, nvDefined, nvUndefined, nvWrite } = plan.effects;
  // A write the chip did (an error wrote nothing): one of the app's NV write tokens (decide checked one is left).
  if (nvWrite) conn.app.nvWrites.take(1);
  if (flushed) {
    conn.transients.delete(flushed.virtual);
    conn.sessions.delete(flushed.virtual);
    conn.unkeyed.delete(flushed.virtual);
  }
  if (nvDefined) {
    conn.app.nv.set(nvDefined.index, nvDefined.size);
    noteNvDefined(conn.app, nvDefined.index, nvDefined.counter === true);
  }
  if (nvUndefined !== undefined) conn.app.nv.delete(nvUndefined);
  if (plan.cmd === ContextSave) conn.app.saved.add(contextDigest(output.context as TPMS_CONTEXT));
  if (plan.cmd === GetCapability && view.getUint16(0) === TPM_ST.NO_SESSIONS) {
    out = new Uint8Array(filterCapability(conn, output as CommandOutput<typeof GetCapability>, out));
  }
  // The boot counts as this app sees them (read-clock.ts); ReadClock's rule takes no sessions.
  if (plan.cmd === ReadClock && view.getUint16(0) === TPM_ST.NO_SESSIONS) {
    out = new Uint8Array(appReadClock(conn.app.app, output as CommandOutput<typeof ReadClock>));
  }
  return out;
}
