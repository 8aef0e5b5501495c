/**
 * A command with session objects (Part 1 §19.6, §21): per command, each session gets a fresh
 * nonceCaller; the first TPM2B parameter is encrypted by the session asked to (decrypt
 * attribute); each session's HMAC is computed over cpHash; the response's HMACs are verified
 * over rpHash before anything is decoded — a mismatch throws — then the nonces roll and the
 * first response TPM2B is decrypted (encrypt attribute). An error response carries no session
 * area: nothing to verify, and the nonces stay as they were.
 */
import { TPMA_SESSION, TPM_HT, hex32 } from '../constants.js';
import { Writer } from '../wire/writer.js';
import { cpHash, passwordAuth, rpHash, MAX_SESSIONS, type AuthResponse, type Authorization } from '../command/auth.js';
import { handleOf, nameOf, type CommandDescriptor, type CommandInput, type CommandOutput, type HandleArg } from '../command/descriptor.js';
import { readResponse, writeCommand } from '../command/layout.js';
import { TpmSessionError, type AuthSession, type SessionUse } from './session.js';
import type { Codec } from '../wire/codec.js';

export type { SessionUse } from './session.js';

const EMPTY = new Uint8Array(0);

/** One entry of the authorization area: a plain authorization, or a session with its use. */
type Slot =
  | { kind: 'plain'; auth: Authorization; label: string }
  | {
      kind: 'session';
      s: AuthSession;
      authValue?: Uint8Array;
      responseAuthValue?: Uint8Array;
      handleIndex?: number;
      label: string;
      /** What this command sent: attributes and nonceCaller (kept here: the response is checked against them). */
      attrs: number;
      nonceCaller: Uint8Array;
    };

/** Whether the first field of a parameter list is a TPM2B (what parameter encryption applies to). */
function firstIsTpm2b(c: Codec<unknown>): boolean {
  const m = c.meta;
  if (m.kind !== 'struct') return false;
  const first = Object.values(m.fields)[0];
  return first !== undefined && (first.meta.kind === 'tpm2b' || first.meta.kind === 'sized');
}

/** The Name of a handle (Part 1 §16): given with the handle, or the handle itself for those whose Name it is. */
function handleName(cmd: CommandDescriptor, slot: string, arg: HandleArg): Uint8Array {
  const n = nameOf(arg);
  if (n) return n;
  const h = handleOf(arg);
  const ht = Math.floor(h / 0x1000000);
  if (ht === TPM_HT.TRANSIENT || ht === TPM_HT.PERSISTENT || ht === TPM_HT.NV_INDEX) {
    throw new TpmSessionError(`${cmd.name}: the Name of ${slot} (${hex32(h)}) is needed for a session HMAC: pass {handle, name} (e.g. from Load or ReadPublic)`);
  }
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, h);
  return out;
}

/** Encrypts or decrypts the data of the TPM2B at the start of `params` (its size stays clear). */
function cryptFirst(params: Uint8Array, f: (data: Uint8Array) => Uint8Array, what: string): Uint8Array {
  if (params.length < 2) throw new TpmSessionError(`${what}: no room for the first parameter's size`);
  const size = (params[0]! << 8) | params[1]!;
  if (2 + size > params.length) throw new TpmSessionError(`${what}: the first parameter's size ${size} runs past the parameters`);
  const out = new Uint8Array(params);
  out.set(f(params.subarray(2, 2 + size)), 2);
  return out;
}

export function prepareSessionCommand<C extends CommandDescriptor>(
  cmd: C,
  input: CommandInput<C>,
  auth: Partial<Record<string, Authorization | SessionUse>>,
  extra: readonly SessionUse[],
): { request: Uint8Array; decode(response: Uint8Array): { output: CommandOutput<C>; auths: AuthResponse[] } } {
  const obj: Record<string, unknown> = input;
  const slots: Slot[] = [];
  for (const h of cmd.handles) {
    if (h.auth !== 'auth') continue;
    const a = auth[h.name];
    const label = `authorization(${h.name})`;
    if (a === undefined) slots.push({ kind: 'plain', auth: passwordAuth(), label });
    else if ('session' in a) {
      const { session: s, authValue, responseAuthValue } = a;
      slots.push({ kind: 'session', s, authValue, responseAuthValue: responseAuthValue ?? authValue, handleIndex: cmd.handles.indexOf(h), label, attrs: 0, nonceCaller: EMPTY });
    } else slots.push({ kind: 'plain', auth: a, label });
  }
  for (const [i, u] of extra.entries()) slots.push({ kind: 'session', s: u.session, label: `session[${i}]`, attrs: 0, nonceCaller: EMPTY });
  if (slots.length > MAX_SESSIONS) throw new TpmSessionError(`${cmd.name}: ${slots.length} sessions, at most ${MAX_SESSIONS} may be sent`);
  const sessions = slots.filter((x): x is Extract<Slot, { kind: 'session' }> => x.kind === 'session');
  if (new Set(sessions.map((x) => x.s)).size !== sessions.length) {
    throw new TpmSessionError(`${cmd.name}: the same session is given twice`);
  }

  // Who en/decrypts (one session each way, Part 1 §18.6), and fresh nonces.
  const dec = firstIsTpm2b(cmd.params) ? sessions.find((x) => x.s.wantsDecrypt) : undefined;
  const enc = firstIsTpm2b(cmd.response) ? sessions.find((x) => x.s.wantsEncrypt) : undefined;
  for (const x of sessions) {
    x.nonceCaller = x.s.rollCaller();
    x.attrs = x.s.attributes(x === dec, x === enc);
  }

  const names = cmd.handles.map((h) => handleName(cmd, h.name, obj[h.name] as HandleArg));
  const keyOf = (x: Extract<Slot, { kind: 'session' }>, response = false): Uint8Array =>
    x.s.hmacKey({ authValue: response ? x.responseAuthValue : x.authValue, entityName: x.handleIndex === undefined ? undefined : names[x.handleIndex] });

  const pw = new Writer(256);
  cmd.params.encode(pw, obj);
  let paramBytes = pw.finish();
  if (dec) paramBytes = cryptFirst(paramBytes, (d) => dec.s.encryptCommandParam(dec.s.cryptKey(dec), dec.nonceCaller, d), `${cmd.name} (decrypt session)`);

  // The first session's HMAC also covers the nonceTPM of a different decrypt/encrypt session (Part 1 §19.6.5).
  const first = slots[0]!;
  const firstExtra: Uint8Array[] = [];
  if (first.kind === 'session') {
    if (dec && dec !== first) firstExtra.push(dec.s.nonceTPM);
    if (enc && enc !== first && enc !== dec) firstExtra.push(enc.s.nonceTPM);
  }
  const cp = new Map<number, Uint8Array>();
  const cpFor = (alg: number): Uint8Array => {
    let d = cp.get(alg);
    if (!d) cp.set(alg, (d = cpHash(alg, cmd.code, names, paramBytes)));
    return d;
  };
  const entries: Authorization[] = slots.map((x) => {
    if (x.kind === 'plain') return x.auth;
    const s = x.s;
    const hmac = s.hmac(keyOf(x), cpFor(s.hashAlg), x.nonceCaller, s.nonceTPM, x === first ? firstExtra : [], x.attrs);
    return { sessionHandle: s.handle, nonceCaller: x.nonceCaller, sessionAttributes: x.attrs, hmac };
  });
  const request = writeCommand(cmd, obj, entries.length, (i) => entries[i]!, (i) => slots[i]!.label, paramBytes);

  const decode = (response: Uint8Array): { output: CommandOutput<C>; auths: AuthResponse[] } =>
    readResponse(cmd, response, slots.length, (raw, auths) => {
      // Verify every session's response HMAC over the parameters as received, then roll nonces.
      const rp = new Map<number, Uint8Array>();
      const rpFor = (alg: number): Uint8Array => {
        let d = rp.get(alg);
        if (!d) rp.set(alg, (d = rpHash(alg, cmd.code, raw)));
        return d;
      };
      // The TPM rolled every session's nonce: so do we, before anything can fail.
      slots.forEach((x, i) => {
        if (x.kind === 'session') x.s.nonceTPM = auths[i]!.nonceTPM;
      });
      slots.forEach((x, i) => {
        if (x.kind !== 'session') return;
        const a = auths[i]!;
        const s = x.s;
        if (a.sessionAttributes !== x.attrs) {
          throw new TpmSessionError(`${cmd.name}: the TPM answered session ${hex32(s.handle)} with attributes 0x${a.sessionAttributes.toString(16)}, sent 0x${x.attrs.toString(16)}`);
        }
        const want = s.hmac(keyOf(x, true), rpFor(s.hashAlg), a.nonceTPM, x.nonceCaller, [], a.sessionAttributes);
        if (!equal(want, a.hmac)) {
          throw new TpmSessionError(
            `${cmd.name}: the response HMAC of session ${hex32(s.handle)} does not verify — the response was altered in transit or the session's keys disagree; its output is not used`,
          );
        }
        if ((a.sessionAttributes & TPMA_SESSION.continueSession) === 0) s.open = false;
      });
      if (!enc) return raw;
      const nonceTPM = auths[slots.indexOf(enc)]!.nonceTPM;
      const key = enc.s.cryptKey({ authValue: enc.responseAuthValue });
      return cryptFirst(raw, (d) => enc.s.decryptResponseParam(key, nonceTPM, enc.nonceCaller, d), `${cmd.name} response (encrypt session)`);
    });
  return { request, decode };
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
