/**
 * The commands this slice lets through, each with the kind of every handle slot and the
 * checks on its parameters (docs/FIREWALL.md "The policy table"). A command not here is
 * answered with TPM_RC_COMMAND_CODE (default deny).
 */
import { TPM_HT, TPM_RH, hex32 } from '../tpm/constants.js';
import { TPM_RC } from '../tpm/rc.js';
import * as C from '../tpm/commands.js';
import type { Authorization } from '../tpm/command.js';
import type { TPMS_CONTEXT, TPMS_NV_PUBLIC } from '../tpm/structures.js';
import { command } from '../tpm/command.js';
import { TPM2B_ECC_PARAMETER, TPM2B_MAX_BUFFER, TPM_ALG_ID, TPM_ECC_CURVE, TPMT_ECC_SCHEME, TPMT_KDF_SCHEME } from '../tpm/structures.js';
import { struct, tpm2b, u16, yesNo } from '../tpm/wire/codec.js';
import { contextDigest, inRange, type Connection } from './app.js';
import * as X from './commands.js';
import { nvRules } from './nv-rules.js';
import { objectRules } from './object-rules.js';
import { policyRules } from './policy-rules.js';
import { isCounter } from './properties.js';
import { atParam, refuse } from './refusal.js';
import { typeOf } from './slots.js';
import type { ParamEffects, Rule } from './rule.js';

export type { ParamEffects, Rule } from './rule.js';

/** A hierarchy parameter that sets a ticket's hierarchy: only TPM_RH_NULL (attack 1, §4.6). */
const nullHierarchy =
  (field: string, n: number) =>
  (p: Record<string, unknown>): void => {
    if (p[field] !== TPM_RH.NULL) refuse(atParam(TPM_RC.HIERARCHY, n), `${field} ${hex32(p[field] as number)}: only TPM_RH_NULL`);
  };

/**
 * A hashcheck ticket's hierarchy (Hash, SequenceComplete): the app's owner or endorsement
 * hierarchy is virtual, so the chip makes a NULL ticket instead (tpm2_hash and tpm2_sign ask for
 * the owner's by default). A rewrite no HMAC covers: only when every authorization is a
 * password (none for Hash). Anything else but NULL is refused.
 */
const virtualTicket =
  (field: string, n: number) =>
  (p: Record<string, unknown>, _c: Connection, _h: readonly number[], auths: readonly Authorization[]): void => {
    const h = p[field] as number;
    if (h === TPM_RH.NULL) return;
    if ((h === TPM_RH.OWNER || h === TPM_RH.ENDORSEMENT) && auths.every((a) => a.sessionHandle === TPM_RH.RS_PW)) {
      p[field] = TPM_RH.NULL;
      return;
    }
    refuse(atParam(TPM_RC.HIERARCHY, n), `${field} ${hex32(h)}: only TPM_RH_NULL (or the app's owner/endorsement without sessions)`);
  };

// TPMA_NV bits (Part 2 §13.4) an app may not set, and the one the firewall always sets.
const NV_POLICY_DELETE = 0x00000400;
const NV_GLOBALLOCK = 0x00008000;
const NV_PLATFORMCREATE = 0x40000000;
const NV_NO_DA = 0x02000000;
const hasBit = (v: number, bit: number): boolean => Math.floor(v / bit) % 2 === 1;

function defineSpace(p: Record<string, unknown>, conn: Connection): ParamEffects {
  const info = p.publicInfo as TPMS_NV_PUBLIC;
  const app = conn.app;
  if (!inRange(info.nvIndex, app.nvRange)) refuse(atParam(TPM_RC.VALUE, 2), `nvIndex ${hex32(info.nvIndex)} is outside this app's NV range`);
  for (const [bit, name] of [
    [NV_PLATFORMCREATE, 'PLATFORMCREATE'],
    [NV_POLICY_DELETE, 'POLICY_DELETE'],
    [NV_GLOBALLOCK, 'GLOBALLOCK'],
  ] as const) {
    if (hasBit(info.attributes, bit)) refuse(atParam(TPM_RC.ATTRIBUTES, 2), `TPMA_NV_${name} is not allowed`);
  }
  let bytes = info.dataSize;
  for (const s of app.nv.values()) bytes += s;
  if (app.nv.size >= app.limits.nvIndices || bytes > app.limits.nvBytes) refuse(TPM_RC.NV_SPACE, `NV quota: ${app.limits.nvIndices} indices, ${app.limits.nvBytes} bytes`);
  // Failed authorizations on an app's index must never count towards the chip's lockout.
  if (!hasBit(info.attributes, NV_NO_DA)) p.publicInfo = { ...info, attributes: info.attributes + NV_NO_DA };
  return { nvDefined: { index: info.nvIndex, size: info.dataSize, ...(isCounter(info.attributes) ? { counter: true as const } : {}) } };
}

function flushContext(p: Record<string, unknown>, conn: Connection): ParamEffects {
  const h = p.flushHandle as number;
  const t = typeOf(h);
  if (t === TPM_HT.TRANSIENT) {
    const real = conn.transients.get(h);
    if (real !== undefined) {
      p.flushHandle = real;
      return { flushed: { real, virtual: h } };
    }
  } else if ((t === TPM_HT.HMAC_SESSION || t === TPM_HT.POLICY_SESSION) && conn.sessions.has(h)) {
    return { flushed: { real: h, virtual: h } };
  }
  refuse(atParam(TPM_RC.HANDLE, 1), `flushHandle ${hex32(h)} is not a transient object or session of this connection`);
}

function contextLoad(p: Record<string, unknown>, conn: Connection): void {
  if (!conn.app.saved.has(contextDigest(p.context as TPMS_CONTEXT))) {
    refuse(atParam(TPM_RC.INTEGRITY, 1), 'this app did not save that context');
  }
}

function sign(p: Record<string, unknown>): void {
  const ticket = p.validation as { hierarchy: number };
  if (ticket.hierarchy !== TPM_RH.NULL) refuse(atParam(TPM_RC.TICKET, 3), 'only TPM_RH_NULL hashcheck tickets: the app can mint no other');
}

/**
 * PolicySecret(TPM_RH_ENDORSEMENT) is the policy of the app's virtual EK (docs/FIREWALL.md "The
 * EK"). The session it satisfies can only authorize objects the app can name, all its own; but a
 * ticket (expiration < 0, Part 3 §23.4) would carry the real endorsement authorization beyond
 * this session, so none is made.
 */
function policySecret(p: Record<string, unknown>, _conn: Connection, handles: readonly number[]): void {
  if (handles[0] === TPM_RH.ENDORSEMENT && (p.expiration as number) < 0) refuse(atParam(TPM_RC.VALUE, 4), 'PolicySecret(endorsement): no ticket (expiration must not be negative)');
}

/** TPM_SE_HMAC (Part 2 §6.7). */
const SE_HMAC = 0x00;

function startAuthSession(p: Record<string, unknown>, _conn: Connection, handles: readonly number[]): ParamEffects {
  const unkeyed = handles[0] === TPM_RH.NULL && handles[1] === TPM_RH.NULL && p.sessionType === SE_HMAC;
  return unkeyed ? { unkeyed: { hashAlg: p.authHash as number } } : {};
}

/**
 * TPM2_ECC_Parameters — Part 3 §14.6: the curve's constants, no handles, no secrets. The
 * tpm2-openssl provider asks for them at start (descriptor here: one row's need).
 */
const ECC_Parameters = command({
  name: 'ECC_Parameters',
  code: 0x178,
  spec: 'Part 3 §14.6',
  params: { curveID: TPM_ECC_CURVE },
  response: {
    parameters: struct('TPMS_ALGORITHM_DETAIL_ECC', {
      curveID: TPM_ECC_CURVE,
      keySize: u16,
      kdf: TPMT_KDF_SCHEME,
      sign: TPMT_ECC_SCHEME,
      p: TPM2B_ECC_PARAMETER,
      a: TPM2B_ECC_PARAMETER,
      b: TPM2B_ECC_PARAMETER,
      gX: TPM2B_ECC_PARAMETER,
      gY: TPM2B_ECC_PARAMETER,
      n: TPM2B_ECC_PARAMETER,
      h: TPM2B_ECC_PARAMETER,
    }),
  },
});

/**
 * TPM2_EncryptDecrypt2 — Part 3 §15.3: AES with the app's own symmetric key (the tpm2-openssl
 * provider's ciphers; s_server encrypts its session tickets so). An object command like Sign.
 */
const EncryptDecrypt2 = command({
  name: 'EncryptDecrypt2',
  code: 0x193,
  spec: 'Part 3 §15.3',
  handles: { keyHandle: 'auth' },
  params: { inData: TPM2B_MAX_BUFFER, decrypt: yesNo, mode: TPM_ALG_ID, ivIn: tpm2b('TPM2B_IV', 16) },
  response: { outData: TPM2B_MAX_BUFFER, ivOut: tpm2b('TPM2B_IV', 16) },
});

const rules: Rule[] = [
  { cmd: C.GetRandom, slots: [] },
  { cmd: C.PCR_Read, slots: [] },
  { cmd: C.ReadClock, slots: [], noSessions: true },
  { cmd: ECC_Parameters, slots: [] },
  { cmd: C.GetCapability, slots: [], noSessions: true },
  { cmd: C.Create, slots: ['object'] },
  { cmd: C.Load, slots: ['object'] },
  { cmd: X.LoadExternal, slots: [], params: nullHierarchy('hierarchy', 3) },
  { cmd: C.ReadPublic, slots: ['object'] },
  { cmd: C.Sign, slots: ['object'], params: sign },
  { cmd: C.VerifySignature, slots: ['object'] },
  { cmd: C.Quote, slots: ['object'] },
  { cmd: C.Certify, slots: ['object', 'object'] },
  { cmd: X.Unseal, slots: ['object'] },
  { cmd: C.RSA_Decrypt, slots: ['object'] },
  { cmd: EncryptDecrypt2, slots: ['object'] },
  { cmd: C.ECDH_ZGen, slots: ['object'] },
  { cmd: C.ActivateCredential, slots: ['object', 'object'] },
  { cmd: X.MakeCredential, slots: ['object'] },
  { cmd: C.Hash, slots: [], params: virtualTicket('hierarchy', 3) },
  { cmd: C.HashSequenceStart, slots: [] },
  { cmd: C.SequenceUpdate, slots: ['object'] },
  { cmd: C.SequenceComplete, slots: ['object'], params: virtualTicket('hierarchy', 2) },
  { cmd: C.StartAuthSession, slots: ['objectOrNull', 'bind'], params: startAuthSession },
  { cmd: C.PolicySecret, slots: ['secret', 'session'], params: policySecret },
  { cmd: C.PolicyGetDigest, slots: ['session'] },
  { cmd: C.ContextSave, slots: ['saveable'] },
  { cmd: C.ContextLoad, slots: [], params: contextLoad },
  { cmd: C.FlushContext, slots: [], params: flushContext },
  { cmd: X.NV_DefineSpace, slots: ['owner'], params: defineSpace, nvWrite: true },
  { cmd: X.NV_UndefineSpace, slots: ['owner', 'nv'], params: (_p, _c, h) => ({ nvUndefined: h[1] }), nvWrite: true },
  { cmd: C.NV_ReadPublic, slots: ['nv'] },
  { cmd: C.NV_Read, slots: ['nvAuth', 'nv'] },
  { cmd: X.NV_Write, slots: ['nvAuth', 'nv'], nvWrite: true },
  ...policyRules,
  ...nvRules,
  ...objectRules,
];

/** The rules by command code. CreatePrimary and EvictControl are the service's (service-ops.ts). */
export const RULES: ReadonlyMap<number, Rule> = new Map(rules.map((r) => [r.cmd.code, r]));
