/**
 * Malformed frames (each answered with the code docs/FIREWALL.md gives) and real frames: every
 * command tpm2-tss sent to swtpm in the shared vectors decodes in full, and what the firewall
 * forwards of it is byte for byte the original when the app's handles map to themselves.
 */
import { describe, expect, it } from 'vitest';
import { TPM_ALG, TPM_RH, TPM_ST } from '../../src/tpm/constants.js';
import { TPM_RC } from '../../src/tpm/rc.js';
import * as C from '../../src/tpm/commands.js';
import { decide, type Decision } from '../../src/firewall/decide.js';
import { AppState, DEFAULT_LIMITS, type Connection } from '../../src/firewall/app.js';
import { loadVectors } from '../helpers/vectors.js';
import { frame, loadObject, newConnection, NV_RANGE, pw, rcOf } from './build.js';

const P = (base: number, n: number) => base + 0x40 + n * 0x100;
const unhex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
/** Sets the header's size field to the frame's length, so a fault is found further in. */
function sized(b: Uint8Array): Uint8Array {
  const out = Uint8Array.from(b);
  new DataView(out.buffer).setUint32(2, out.length);
  return out;
}
const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

describe('malformed frames', () => {
  const conn = newConnection();
  const getRandom = frame(C.GetRandom, { bytesRequested: 16 });

  it('header faults: size, tag', () => {
    expect(rcOf(decide(conn, new Uint8Array(0)))).toBe(TPM_RC.COMMAND_SIZE);
    expect(rcOf(decide(conn, getRandom.subarray(0, 9)))).toBe(TPM_RC.COMMAND_SIZE);
    expect(rcOf(decide(conn, getRandom.subarray(0, 11)))).toBe(TPM_RC.COMMAND_SIZE); // header still says 12
    expect(rcOf(decide(conn, cat(getRandom, new Uint8Array(1))))).toBe(TPM_RC.COMMAND_SIZE);
    expect(rcOf(decide(conn, sized(cat(getRandom, new Uint8Array(5000)))))).toBe(TPM_RC.COMMAND_SIZE);
    const tpm12 = Uint8Array.from(getRandom);
    tpm12[0] = 0x00;
    tpm12[1] = 0xc1;
    expect(rcOf(decide(conn, tpm12))).toBe(TPM_RC.BAD_TAG);
    const odd = Uint8Array.from(getRandom);
    odd[1] = 0x03;
    expect(rcOf(decide(conn, odd))).toBe(TPM_RC.BAD_TAG);
  });

  it('body faults: handle area, parameters, trailing bytes', () => {
    const key = loadObject(conn, 0x80000100);
    const sign = frame(C.Sign, { keyHandle: key, digest: new Uint8Array(32), inScheme: { scheme: TPM_ALG.NULL, details: null } as never, validation: { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: new Uint8Array(0) } });
    expect(rcOf(decide(conn, sized(sign.subarray(0, 12))))).toBe(TPM_RC.INSUFFICIENT);
    expect(rcOf(decide(conn, sized(getRandom.subarray(0, 11))))).toBe(P(TPM_RC.INSUFFICIENT, 1));
    expect(rcOf(decide(conn, sized(cat(getRandom, new Uint8Array(1)))))).toBe(TPM_RC.SIZE);
    // Hash with a 1025-byte TPM2B_MAX_BUFFER (maximum 1024).
    const big = sized(cat(frame(C.Hash, { data: new Uint8Array(0), hashAlg: TPM_ALG.SHA256, hierarchy: TPM_RH.NULL }).subarray(0, 10), Uint8Array.of(0x04, 0x01), new Uint8Array(1025), Uint8Array.of(0, 0x0b, 0x40, 0, 0, 7)));
    expect(rcOf(decide(conn, big))).toBe(P(TPM_RC.SIZE, 1));
    // Sign with an unknown signature scheme (parameter 2).
    const badScheme = Uint8Array.from(sign);
    const at = sign.length - 6 - 2 - 2; // validation is tag(2)+hierarchy(4)+size(2); inScheme NULL is 2 bytes before it
    badScheme[at] = 0x99;
    badScheme[at + 1] = 0x99;
    expect(rcOf(decide(conn, badScheme))).toBe(P(TPM_RC.VALUE, 2));
    // PCR_Read with a TPML_PCR_SELECTION count of 17 (maximum 16), then one of 2 with one entry.
    const pcr = frame(C.PCR_Read, { pcrSelectionIn: [] });
    expect(rcOf(decide(conn, sized(cat(pcr.subarray(0, 10), Uint8Array.of(0, 0, 0, 17)))))).toBe(P(TPM_RC.SIZE, 1));
    expect(rcOf(decide(conn, sized(cat(pcr.subarray(0, 10), Uint8Array.of(0, 0, 0, 2, 0, 0x0b, 3, 1, 0, 0)))))).toBe(P(TPM_RC.INSUFFICIENT, 1));
    // Create with an empty TPM2B_SENSITIVE_CREATE (a sized structure of size 0).
    const header = Uint8Array.of(0x80, 0x02, 0, 0, 0, 0, 0, 0, 0x01, 0x53, 0x80, 0, 0, 0);
    const password = Uint8Array.of(0, 0, 0, 9, 0x40, 0, 0, 9, 0, 0, 0, 0, 0);
    expect(rcOf(decide(conn, sized(cat(header, password, Uint8Array.of(0, 0)))))).toBe(P(TPM_RC.SIZE, 1));
    // The same without its authorization area: TPM_RC_AUTH_MISSING.
    const bare = sized(cat(header, Uint8Array.of(0, 0)));
    bare[1] = 0x01;
    expect(rcOf(decide(conn, bare))).toBe(TPM_RC.AUTH_MISSING);
  });

  it('authorization area faults', () => {
    const key = loadObject(conn, 0x80000101);
    const sign = frame(C.Sign, { keyHandle: key, digest: new Uint8Array(32), inScheme: { scheme: TPM_ALG.NULL, details: null } as never, validation: { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: new Uint8Array(0) } }, { keyHandle: pw() });
    const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
    const tooBig = Uint8Array.from(sign);
    view(tooBig).setUint32(14, 0xffff);
    expect(rcOf(decide(conn, tooBig))).toBe(TPM_RC.AUTHSIZE);
    const empty = sized(cat(sign.subarray(0, 14), Uint8Array.of(0, 0, 0, 0), sign.subarray(14 + 4 + 9)));
    expect(rcOf(decide(conn, empty))).toBe(TPM_RC.AUTHSIZE);
    const entry = sign.subarray(18, 27);
    const four = sized(cat(sign.subarray(0, 14), Uint8Array.of(0, 0, 0, 36), entry, entry, entry, entry, sign.subarray(27)));
    expect(rcOf(decide(conn, four))).toBe(TPM_RC.AUTHSIZE);
    const noSessions = Uint8Array.from(sized(cat(sign.subarray(0, 14), sign.subarray(27))));
    noSessions[1] = 0x01;
    expect(rcOf(decide(conn, noSessions))).toBe(TPM_RC.AUTH_MISSING);
  });
});

interface Vector {
  name: string;
  commandCode: string;
  command: string;
}

/** A connection in which every handle the recorded frames name maps to itself. */
function identityConnection(): Connection {
  const conn = newConnection(new AppState('app-a', NV_RANGE, { ...DEFAULT_LIMITS, transients: 1000, sessions: 100 }));
  for (let i = 0; i < 0x100; i++) conn.transients.set(0x80000000 + i, 0x80000000 + i);
  for (let i = 0; i < 0x10; i++) conn.sessions.add(0x02000000 + i).add(0x03000000 + i);
  for (const h of [0x81010000, 0x81010001, 0x81010010]) conn.app.persistents.set(h, h);
  return conn;
}

const FRAME_FAULTS: number[] = [TPM_RC.COMMAND_SIZE, TPM_RC.BAD_TAG, TPM_RC.INSUFFICIENT, TPM_RC.SIZE, TPM_RC.AUTHSIZE, TPM_RC.AUTH_MISSING];
const PARAM_FAULTS = Array.from({ length: 15 }, (_, n) => [P(TPM_RC.INSUFFICIENT, n + 1), P(TPM_RC.SIZE, n + 1)]).flat();
const isFrameFault = (rc: number) => FRAME_FAULTS.includes(rc) || PARAM_FAULTS.includes(rc);

describe('real tpm2-tss frames (shared vectors)', () => {
  const vectors = [...loadVectors<{ vectors: Vector[] }>('tpm2-tss-swtpm.json').vectors, ...loadVectors<{ vectors: Vector[] }>('tpm2-tss-swtpm-attest.json').vectors];

  it('decode in full, and are forwarded unchanged, handed to the service, or refused by policy', () => {
    const outcome: Record<string, string> = {};
    for (const v of vectors) {
      const bytes = unhex(v.command);
      const d: Decision = decide(identityConnection(), bytes);
      if (d.kind === 'forward') {
        const sent = Buffer.from(d.command).toString('hex');
        // The documented rewrites: an owner/endorsement hashcheck ticket asked for becomes NULL.
        if (sent !== v.command && /^(Hash|SequenceComplete)\b/.test(v.name)) expect(sent, v.name).toBe(`${v.command.slice(0, -8)}40000007`);
        else expect(sent, v.name).toBe(v.command);
        outcome[v.name] = 'forward';
      } else if (d.kind === 'service') {
        outcome[v.name] = `service ${d.op.op}`;
      } else {
        expect(isFrameFault(d.rc), `${v.name}: ${d.reason}`).toBe(false);
        outcome[v.name] = `0x${d.rc.toString(16)}`;
      }
    }
    // The policy decisions that matter, by name (the rest are forwarded).
    expect(outcome['CreatePrimary(owner SRK rsa2048:aes128cfb)']).toBe('service CreatePrimary');
    expect(outcome['CreatePrimary(endorsement, TCG EK template RSA2048)']).toBe('service CreatePrimary');
    expect(outcome['EvictControl(persist SRK at 0x81000001)']).toBe(`0x${P(TPM_RC.RANGE, 1).toString(16)}`);
    expect(outcome['PolicySecret(TPM_RH_ENDORSEMENT)']).toBe('forward'); // the app's virtual EK policy
    expect(outcome['NV_DefineSpace(0x01c00002, 1400 bytes, owner auth)']).toBe(`0x${P(TPM_RC.VALUE, 2).toString(16)}`);
    expect(outcome['NV_Read(owner auth, offset 0, 1024 bytes)']).toBe('0x28b');
    expect(outcome['PCR_Extend(PCR 16, sha1+sha256)']).toBe('0x143');
    expect(outcome['CreateLoaded(ECDH key ecc256 under SRK)']).toBe(`0x${(TPM_RC.HANDLE + 0x100).toString(16)}`); // EVE's SRK: not the app's
    for (const name of ['GetRandom', 'Load(AK)', 'Quote(AK under SRK, sha256:0,1,2,16)', 'ActivateCredential(AK under EK: password; EK: policy session PolicySecret(endorsement))', 'Create(AK rsa2048:rsapss-sha256:null under EK, policy session)', 'Unseal(sealed object, userAuth) with encrypt session', 'MakeCredential(EK public loaded with LoadExternal, AK-under-EK name)', 'FlushContext(HMAC session)', 'ContextSave(hash sequence)']) {
      expect(outcome[name], name).toBe('forward');
    }
    expect(Object.values(outcome).filter((o) => o === 'forward').length).toBeGreaterThan(40);
  });

  it('under a decrypt session the first parameter is checked for size only (Create of a sealed object)', () => {
    const v = vectors.find((x) => x.name === 'Create(sealed data object with userAuth) with decrypt+encrypt session')!;
    const bytes = unhex(v.command);
    new DataView(bytes.buffer).setUint32(10, 0x80000001); // its parent was EVE's 0x81000001: use an app object
    const d = decide(identityConnection(), bytes);
    expect(d.kind).toBe('forward');
    expect(d.kind === 'forward' && Buffer.from(d.command).equals(Buffer.from(bytes))).toBe(true);
  });
});
