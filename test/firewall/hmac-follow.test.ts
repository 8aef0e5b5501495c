/**
 * An unkeyed HMAC session (tpmKey and bind NULL) on the app's virtual owner, as tpm2-tools send
 * it: the firewall checks the app's HMAC over the parameters it sent and, where it rewrites them
 * (the primary's template, NV_DefineSpace's NO_DA bit), sends the HMAC over what the chip gets.
 * Real chip runs of the same: test/raw/stock.test.ts (tpm2_createprimary, tpm2_nvdefine).
 */
import { describe, expect, it } from 'vitest';
import { TPM_ALG, TPM_RH, TPMA_SESSION } from '../../src/tpm/constants.js';
import { TPM_RC } from '../../src/tpm/rc.js';
import * as C from '../../src/tpm/commands.js';
import { cpHash, readAuthArea, sessionHmac, type Authorization } from '../../src/tpm/command.js';
import { Reader } from '../../src/tpm/wire/reader.js';
import { akEccTemplate } from '../../src/tpm/keys/templates.js';
import { decide } from '../../src/firewall/decide.js';
import { appTemplate } from '../../src/firewall/primary.js';
import { forwarded, frame, newConnection, roundTrip } from './build.js';

const SESSION = 0x02000007;
const NONCE_TPM = new Uint8Array(16).fill(9);
const EMPTY = new Uint8Array(0);
const owner = Uint8Array.of(0x40, 0, 0, 1);

function unkeyedConnection() {
  const conn = newConnection();
  roundTrip(
    conn,
    C.StartAuthSession,
    { tpmKey: TPM_RH.NULL, bind: TPM_RH.NULL, nonceCaller: new Uint8Array(16), encryptedSalt: EMPTY, sessionType: 0, symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null }, authHash: TPM_ALG.SHA256 } as never,
    { sessionHandle: SESSION, nonceTPM: NONCE_TPM } as never,
  );
  return conn;
}

/** The parameter area of a CreatePrimary frame with one authorization (after header, handle, auth area). */
function paramsOf(bytes: Uint8Array): Uint8Array {
  const r = new Reader(bytes);
  r.offset = 14;
  readAuthArea(r);
  return bytes.subarray(r.offset);
}

const key = { hashAlg: TPM_ALG.SHA256, nonceTPM: NONCE_TPM, sessionKey: EMPTY, authValue: EMPTY };
const attrs = TPMA_SESSION.continueSession;
const input = { primaryHandle: TPM_RH.OWNER, inSensitive: { userAuth: EMPTY, data: EMPTY }, inPublic: akEccTemplate() as never, outsideInfo: EMPTY, creationPCR: [] };

function withHmac(hmacOver: (params: Uint8Array) => Uint8Array): Uint8Array {
  const placeholder: Authorization = { sessionHandle: SESSION, nonceCaller: new Uint8Array(16).fill(3), sessionAttributes: attrs, hmac: new Uint8Array(32) };
  const f = frame(C.CreatePrimary, input, { primaryHandle: placeholder });
  const hmac = hmacOver(paramsOf(f));
  return frame(C.CreatePrimary, input, { primaryHandle: { ...placeholder, hmac } });
}

describe('an unkeyed HMAC session on the virtual owner', () => {
  it('CreatePrimary: the app’s HMAC is checked, and the chip gets the HMAC over the app’s template', () => {
    const conn = unkeyedConnection();
    const right = withHmac((p) => sessionHmac(key, cpHash(TPM_ALG.SHA256, C.CreatePrimary.code, [owner], p), new Uint8Array(16).fill(3), attrs));
    const d = decide(conn, right);
    expect(d.kind).toBe('service');
    const fwd = d.kind === 'service' && d.op.op === 'CreatePrimary' ? d.op.forward : forwarded(d);
    const sent = paramsOf(fwd.command);
    const r = new Reader(fwd.command);
    r.offset = 14;
    const [auth] = readAuthArea(r);
    expect(auth!.sessionHandle).toBe(SESSION);
    expect(Buffer.from(auth!.hmac)).toEqual(Buffer.from(sessionHmac(key, cpHash(TPM_ALG.SHA256, C.CreatePrimary.code, [owner], sent), new Uint8Array(16).fill(3), attrs)));
    // The template the chip gets is the app's: unique carries the app's record.
    const mine = appTemplate(conn.app.app, akEccTemplate());
    expect(Buffer.from(sent).includes(Buffer.from((mine.unique as { x: Uint8Array }).x))).toBe(true);
  });

  it('a wrong HMAC is a wrong password (BAD_AUTH, session 1); a policy session is the wrong type', () => {
    const conn = unkeyedConnection();
    const wrong = withHmac(() => new Uint8Array(32).fill(1));
    const d = decide(conn, wrong);
    expect(d.kind === 'reply' && d.rc).toBe(TPM_RC.BAD_AUTH + 0x800 + 0x100);
    // Audit on it: refused (the service keeps no audit digest).
    const audit = frame(C.CreatePrimary, input, { primaryHandle: { sessionHandle: SESSION, nonceCaller: new Uint8Array(16), sessionAttributes: attrs + TPMA_SESSION.audit, hmac: new Uint8Array(32) } });
    const a = decide(conn, audit);
    expect(a.kind === 'reply' && a.rc).toBe(TPM_RC.ATTRIBUTES + 0x800 + 0x100);
  });
});
