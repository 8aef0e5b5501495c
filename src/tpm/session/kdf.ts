/**
 * The key derivation functions of TPM 2.0 Part 1 §11.4.10: KDFa (SP 800-108 counter mode with
 * HMAC) for session keys and parameter-encryption keys, KDFe (SP 800-56A concatenation KDF) for
 * ECC salts. Labels are NUL-terminated on the wire (the terminator is part of the input).
 */
import { createHash, createHmac } from 'node:crypto';
import { hashName } from '../command/auth.js';

const EMPTY = new Uint8Array(0);

function u32be(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

/** The label with its terminating zero octet (Part 1 §11.4.10.2: "Label ... including the NUL"). */
function labelBytes(label: string): Uint8Array {
  const s = new TextEncoder().encode(label);
  if (s.length > 0 && s[s.length - 1] === 0) return s;
  const out = new Uint8Array(s.length + 1);
  out.set(s);
  return out;
}

/** Keeps the first `bits` bits (whole octets; a partial leading octet is masked, Part 1 §11.4.10.2). */
function truncate(out: Uint8Array, bits: number): Uint8Array {
  const bytes = Math.ceil(bits / 8);
  const r = out.subarray(0, bytes);
  if (bits % 8 !== 0) r[0]! &= (1 << bits % 8) - 1;
  return new Uint8Array(r);
}

function checkBits(bits: number, what: string): void {
  if (!Number.isInteger(bits) || bits <= 0 || bits > 0xffff * 8) throw new RangeError(`${what}: ${bits} bits is not a valid output size`);
}

/** KDFa(hashAlg, key, label, contextU, contextV, bits) — Part 1 §11.4.10.2. */
export function kdfa(hashAlg: number, key: Uint8Array, label: string, contextU: Uint8Array, contextV: Uint8Array, bits: number): Uint8Array {
  checkBits(bits, 'KDFa');
  const h = hashName(hashAlg);
  const lab = labelBytes(label);
  const L = u32be(bits);
  const chunks: Buffer[] = [];
  let have = 0;
  for (let i = 1; have * 8 < bits; i++) {
    const d = createHmac(h, key).update(u32be(i)).update(lab).update(contextU ?? EMPTY).update(contextV ?? EMPTY).update(L).digest();
    chunks.push(d);
    have += d.length;
  }
  return truncate(Buffer.concat(chunks), bits);
}

/** KDFe(hashAlg, Z, label, partyUInfo, partyVInfo, bits) — Part 1 §11.4.10.3. */
export function kdfe(hashAlg: number, z: Uint8Array, label: string, partyU: Uint8Array, partyV: Uint8Array, bits: number): Uint8Array {
  checkBits(bits, 'KDFe');
  const h = hashName(hashAlg);
  const lab = labelBytes(label);
  const chunks: Buffer[] = [];
  let have = 0;
  for (let i = 1; have * 8 < bits; i++) {
    const d = createHash(h).update(u32be(i)).update(z).update(lab).update(partyU).update(partyV).digest();
    chunks.push(d);
    have += d.length;
  }
  return truncate(Buffer.concat(chunks), bits);
}
