/**
 * An app's EvictControl authorized by an unkeyed HMAC session (tpm2-tools authorize the owner
 * this way). The service answers EvictControl itself, but the session lives on the chip, whose
 * nonceTPM must roll as it would for the command: the service checks the app's HMAC (its key is
 * empty: only nonces and Names go in), then spends the session on GetTime(ENDORSEMENT, NULL),
 * a command with no effect on the chip (an unsigned time attestation, thrown away), and answers
 * the app with an HMAC over EvictControl's response under the chip's new nonce.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { TPMA_SESSION, TPM_RH, TPM_ST } from '../../tpm/constants.js';
import { cpHash, hashName, rpHash, sessionHmac, type Authorization } from '../../tpm/command.js';
import { EvictControl } from '../../tpm/commands.js';
import { TPM_RC } from '../../tpm/rc.js';
import type { Transport } from '../../tpm/transport/types.js';
import { Writer } from '../../tpm/wire/writer.js';
import type { Connection } from '../../firewall/app.js';
import { atSession } from '../../firewall/refusal.js';

const EMPTY = new Uint8Array(0);
const TPM_CC_GetTime = 0x14c;
const TPM_ALG_NULL = 0x0010;

const u32 = (v: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v);
  return b;
};
const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** A refusal as a TPM response code, or the app's response authorization after the chip rolled the nonce. */
export type Followed = { readonly rc: number; readonly reason: string } | { readonly rc: 0; readonly auth: { nonceTPM: Uint8Array; sessionAttributes: number; hmac: Uint8Array } };

/** Checks the app's HMAC over EvictControl (`objectName`: the Name of its object handle). */
export function checkEvictHmac(conn: Connection, auth: Authorization, objectName: Uint8Array, persistentHandle: number): { rc: number; reason: string } | undefined {
  const s = conn.unkeyed.get(auth.sessionHandle);
  if (!s || !conn.sessions.has(auth.sessionHandle)) return { rc: TPM_RC.AUTH_TYPE, reason: 'only a password or an unsalted, unbound HMAC session of this connection authorizes the virtual owner' };
  if (auth.sessionAttributes !== TPMA_SESSION.continueSession && auth.sessionAttributes !== 0) {
    return { rc: atSession(TPM_RC.ATTRIBUTES, 1), reason: 'EvictControl takes no audit or parameter encryption' };
  }
  const key = { hashAlg: s.hashAlg, nonceTPM: s.nonceTPM, sessionKey: EMPTY, authValue: EMPTY };
  const mine = sessionHmac(key, cpHash(s.hashAlg, EvictControl.code, [u32(TPM_RH.OWNER), objectName], u32(persistentHandle)), auth.nonceCaller, auth.sessionAttributes);
  if (!same(mine, auth.hmac)) return { rc: atSession(TPM_RC.BAD_AUTH, 1), reason: 'the virtual owner has an empty password' };
  return undefined;
}

/** Rolls the session's nonce on the chip (GetTime) and makes the app's response authorization for EvictControl. */
export async function rollAndAnswer(conn: Connection, transport: Transport, auth: Authorization): Promise<Followed> {
  const s = conn.unkeyed.get(auth.sessionHandle)!;
  const nonceCaller = new Uint8Array(randomBytes(Math.max(16, auth.nonceCaller.length)));
  const params = Uint8Array.of(0, 0, 0, TPM_ALG_NULL); // qualifyingData: empty; inScheme: TPM_ALG_NULL
  const key = { hashAlg: s.hashAlg, nonceTPM: s.nonceTPM, sessionKey: EMPTY, authValue: EMPTY };
  const hmac = sessionHmac(key, cpHash(s.hashAlg, TPM_CC_GetTime, [u32(TPM_RH.ENDORSEMENT), u32(TPM_RH.NULL)], params), nonceCaller, auth.sessionAttributes);
  const w = new Writer(256);
  w.u16(TPM_ST.SESSIONS);
  w.u32(0);
  w.u32(TPM_CC_GetTime);
  w.u32(TPM_RH.ENDORSEMENT);
  w.u32(TPM_RH.NULL);
  const area = 4 + 2 + nonceCaller.length + 1 + 2 + hmac.length + (4 + 2 + 1 + 2);
  w.u32(area);
  w.u32(auth.sessionHandle);
  w.u16(nonceCaller.length);
  w.bytes(nonceCaller);
  w.u8(auth.sessionAttributes);
  w.u16(hmac.length);
  w.bytes(hmac);
  w.u32(TPM_RH.RS_PW);
  w.u16(0);
  w.u8(0);
  w.u16(0);
  w.bytes(params);
  w.patchU32(2, w.length);
  const r = await transport.send(w.finish());
  const view = new DataView(r.buffer, r.byteOffset, r.byteLength);
  const rc = r.length >= 10 ? view.getUint32(6) : TPM_RC.FAILURE;
  if (rc !== TPM_RC.SUCCESS) return { rc, reason: `the chip did not take the session (GetTime answered 0x${rc.toString(16)})` };
  const at = 14 + view.getUint32(10); // after the parameter area
  const size = view.getUint16(at);
  const nonceTPM = new Uint8Array(r.subarray(at + 2, at + 2 + size));
  s.nonceTPM = nonceTPM;
  if (auth.sessionAttributes % 2 === 0) {
    // continueSession clear: the chip ended it.
    conn.sessions.delete(auth.sessionHandle);
    conn.unkeyed.delete(auth.sessionHandle);
  }
  // Response HMAC (Part 1 §19.6.5): nonceNewer is the TPM's, nonceOlder the caller's.
  const rp = rpHash(s.hashAlg, EvictControl.code, EMPTY);
  const answer = new Uint8Array(createHmac(hashName(s.hashAlg), EMPTY).update(rp).update(nonceTPM).update(auth.nonceCaller).update(Uint8Array.of(auth.sessionAttributes)).digest());
  return { rc: 0, auth: { nonceTPM, sessionAttributes: auth.sessionAttributes, hmac: answer } };
}
