/**
 * The session path of prepareCommand without a TPM: clear errors for what cannot be sent, an
 * error response (no session area) leaving the session's nonces as they were, and the frames
 * round-tripping through unmarshalCommand/remarshalCommand like any other.
 */
import { describe, expect, it } from 'vitest';
import { marshalErrorResponse, prepareCommand, remarshalCommand, unmarshalCommand } from '../../src/tpm/command.js';
import { Create, GetRandom, Sign } from '../../src/tpm/commands.js';
import { TPMA_SESSION, TPM_ALG, TPM_RH, TPM_ST } from '../../src/tpm/constants.js';
import { TPM_RC, TpmError } from '../../src/tpm/rc.js';
import { srkRsaTemplate } from '../../src/tpm/keys/templates.js';
import { readAuthArea } from '../../src/tpm/command/auth.js';
import { Reader } from '../../src/tpm/wire/reader.js';
import { AuthSession, TpmSessionError } from '../../src/tpm/session/index.js';

const EMPTY = new Uint8Array(0);
const session = (handle: number, encrypt: 'none' | 'in' | 'out' | 'both' = 'both') =>
  new AuthSession({
    handle,
    type: 'hmac',
    hashAlg: TPM_ALG.SHA256,
    sessionKey: new Uint8Array(32).fill(handle & 0xff),
    ...(encrypt === 'none' ? {} : { cipher: { alg: 'aes', keyBits: 128 } as const }),
    encrypt,
    nonceCaller: new Uint8Array(32).fill(1),
    nonceTPM: new Uint8Array(32).fill(2),
  });
const signInput = (keyHandle: number | { handle: number; name: Uint8Array }) => ({
  keyHandle,
  digest: new Uint8Array(32).fill(9),
  inScheme: { scheme: TPM_ALG.NULL, details: null },
  validation: { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: EMPTY },
});
const named = { handle: 0x80000001, name: Uint8Array.from([0, 0x0b, ...new Uint8Array(32).fill(5)]) };

describe('prepareCommand with session objects', () => {
  it('needs the Name of an object handle for an HMAC, and says how to give it', () => {
    expect(() => prepareCommand(Sign, signInput(0x81000001), { auth: { keyHandle: session(0x02000000).use('pw') } })).toThrow(
      /^Sign: the Name of keyHandle \(0x81000001\) is needed for a session HMAC: pass \{handle, name\}/,
    );
  });

  it('refuses more than three sessions and a session given twice', () => {
    const s = [session(0x02000001), session(0x02000002), session(0x02000003), session(0x02000004)];
    expect(() => prepareCommand(GetRandom, { bytesRequested: 8 }, { sessions: s.map((x) => x.use()) })).toThrow(/GetRandom: 4 sessions, at most 3/);
    expect(() => prepareCommand(GetRandom, { bytesRequested: 8 }, { sessions: [s[0]!.use(), s[0]!.use()] })).toThrow(/the same session is given twice/);
  });

  it('sets decrypt only where the first command parameter is a TPM2B and encrypt where the first response parameter is', () => {
    const s = session(0x02000005);
    const p = prepareCommand(GetRandom, { bytesRequested: 8 }, { sessions: [s.use()] });
    const d = unmarshalCommand(GetRandom, p.request);
    // GetRandom: bytesRequested is a UINT16 (no decrypt), randomBytes a TPM2B (encrypt).
    expect(d.auths[0]!.sessionAttributes).toBe(TPMA_SESSION.continueSession | TPMA_SESSION.encrypt);
    const c = prepareCommand(
      Create,
      { parentHandle: named, inSensitive: { userAuth: EMPTY, data: Uint8Array.of(1, 2, 3) }, inPublic: srkRsaTemplate(), outsideInfo: EMPTY, creationPCR: [] },
      { sessions: [session(0x02000006, 'in').use()] },
    );
    // Its parameters are ciphertext now (no decoding them): read the authorization area alone.
    const r = new Reader(c.request);
    r.offset = 14; // header, parentHandle
    const auths = readAuthArea(r);
    expect(auths.map((a) => a.sessionAttributes)).toEqual([0, TPMA_SESSION.continueSession | TPMA_SESSION.decrypt]);
  });

  it('an error response has no session area: TpmError, and the nonces do not roll', () => {
    const s = session(0x02000007);
    const p = prepareCommand(Sign, signInput(named), { auth: { keyHandle: s.use('pw') } });
    const sent = s.nonceCaller;
    const tpmNonce = s.nonceTPM;
    expect(() => p.decode(marshalErrorResponse(TPM_RC.AUTH_FAIL))).toThrow(TpmError);
    expect(s.nonceTPM).toBe(tpmNonce);
    expect(s.nonceCaller).toBe(sent);
  });

  it('a success without a valid HMAC is refused (never ignored)', () => {
    const s = session(0x02000008);
    const p = prepareCommand(GetRandom, { bytesRequested: 2 }, { sessions: [s.use()] });
    // A well-formed success whose session HMAC is all zeros.
    const resp = Buffer.from('80020000002100000000' + '00000004' + '0002abcd' + '0020' + '11'.repeat(32) + '41' + '0000', 'hex');
    resp.writeUInt32BE(resp.length, 2);
    expect(() => p.decode(new Uint8Array(resp))).toThrow(TpmSessionError);
    expect(() => p.decode(new Uint8Array(resp))).toThrow(/^GetRandom: the response HMAC of session 0x02000008 does not verify/);
  });

  it('frames with sessions round-trip through unmarshalCommand/remarshalCommand', () => {
    const p = prepareCommand(Sign, signInput(named), { auth: { keyHandle: session(0x02000009).use('pw') }, sessions: [session(0x0200000a, 'in').use()] });
    const d = unmarshalCommand(Sign, p.request);
    expect(d.auths.map((a) => a.sessionHandle)).toEqual([0x02000009, 0x0200000a]);
    expect(Buffer.from(remarshalCommand(Sign, d)).equals(Buffer.from(p.request))).toBe(true);
  });

  it('an ended session cannot be used again', () => {
    const s = session(0x0200000b);
    s.open = false;
    expect(() => prepareCommand(GetRandom, { bytesRequested: 2 }, { sessions: [s.use()] })).toThrow(/session 0x0200000b has ended/);
  });
});
