/**
 * The few DER shapes the library writes and reads (X.690 §8 and §10): SubjectPublicKeyInfo of
 * RSA and ECC keys (RFC 5280 §4.1, RFC 3279 §2.3.1, RFC 5480 §2) and ECDSA-Sig-Value
 * (RFC 3279 §2.2.3). Hand-written rather than through a general ASN.1 library: evaluating one
 * at start-up costs the service about 9 MiB of its idle memory, for four fixed shapes.
 */

export class DerError extends Error {
  override readonly name = 'DerError';
}

const TAG = { INTEGER: 0x02, BIT_STRING: 0x03, NULL: 0x05, OID: 0x06, SEQUENCE: 0x30 } as const;

function lengthOctets(n: number): number[] {
  if (n < 0x80) return [n];
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v % 256);
  return [0x80 + out.length, ...out];
}

/** One TLV. */
export function tlv(tag: number, content: Uint8Array): Uint8Array {
  const head = [tag, ...lengthOctets(content.length)];
  const out = new Uint8Array(head.length + content.length);
  out.set(head);
  out.set(content, head.length);
  return out;
}

export function sequence(...parts: Uint8Array[]): Uint8Array {
  return tlv(TAG.SEQUENCE, Buffer.concat(parts));
}

/** A non-negative INTEGER from its big-endian magnitude (leading zeros dropped, 0x00 added before a top bit). */
export function unsignedInteger(magnitude: Uint8Array): Uint8Array {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const t = magnitude.subarray(i);
  const pad = t.length === 0 || t[0]! >= 0x80 ? 1 : 0;
  const content = new Uint8Array(t.length + pad);
  content.set(t, pad);
  return tlv(TAG.INTEGER, content);
}

/** An OBJECT IDENTIFIER from its dotted form (X.690 §8.19). */
export function objectIdentifier(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [];
  const base128 = (n: number): void => {
    const b: number[] = [n % 128];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) b.unshift(0x80 + (v % 128));
    out.push(...b);
  };
  base128(40 * arcs[0]! + arcs[1]!);
  for (const a of arcs.slice(2)) base128(a);
  return tlv(TAG.OID, Uint8Array.from(out));
}

export const NULL = Uint8Array.of(TAG.NULL, 0x00);

/** A BIT STRING of whole octets. */
export function bitString(octets: Uint8Array): Uint8Array {
  const content = new Uint8Array(octets.length + 1); // leading octet: 0 unused bits
  content.set(octets, 1);
  return tlv(TAG.BIT_STRING, content);
}

/** SubjectPublicKeyInfo: AlgorithmIdentifier { algorithm, parameters } and the key's octets. */
export function subjectPublicKeyInfo(algorithm: string, parameters: Uint8Array, key: Uint8Array): Uint8Array {
  return sequence(sequence(objectIdentifier(algorithm), parameters), bitString(key));
}

/** One TLV read from `b` at `at`, its length in the one DER form; throws DerError. */
function readTlv(b: Uint8Array, at: number, tag: number, what: string): { content: Uint8Array; end: number } {
  if (b[at] !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}`);
  let len = b[at + 1];
  let p = at + 2;
  if (len === undefined) throw new DerError(`${what}: truncated`);
  if (len >= 0x80) {
    const n = len - 0x80;
    if (n === 0 || n > 3) throw new DerError(`${what}: unsupported length form`);
    len = 0;
    for (let i = 0; i < n; i++) {
      const o = b[p + i];
      if (o === undefined) throw new DerError(`${what}: truncated`);
      if (i === 0 && o === 0) throw new DerError(`${what}: non-minimal length`);
      len = len * 256 + o;
    }
    if (len < 0x80) throw new DerError(`${what}: non-minimal length`);
    p += n;
  }
  if (p + len > b.length) throw new DerError(`${what}: truncated`);
  return { content: b.subarray(p, p + len), end: p + len };
}

/** A non-negative INTEGER's magnitude, refusing non-minimal and negative encodings. */
function readUnsigned(b: Uint8Array, at: number, what: string): { magnitude: Uint8Array; end: number } {
  const { content, end } = readTlv(b, at, TAG.INTEGER, what);
  if (content.length === 0) throw new DerError(`${what}: empty INTEGER`);
  if (content[0]! >= 0x80) throw new DerError(`${what}: negative`);
  if (content.length > 1 && content[0] === 0 && content[1]! < 0x80) throw new DerError(`${what}: non-minimal INTEGER`);
  const magnitude = content.length > 1 && content[0] === 0 ? content.subarray(1) : content;
  return { magnitude: Uint8Array.from(magnitude), end };
}

/** ECDSA-Sig-Value → r and s (big-endian, no leading zeros but one for zero); exact DER only. */
export function readEcdsaSigValue(b: Uint8Array): { r: Uint8Array; s: Uint8Array } {
  const seq = readTlv(b, 0, TAG.SEQUENCE, 'ECDSA-Sig-Value');
  if (seq.end !== b.length) throw new DerError('extra octets after the ECDSA-Sig-Value');
  const r = readUnsigned(seq.content, 0, 'r');
  const s = readUnsigned(seq.content, r.end, 's');
  if (s.end !== seq.content.length) throw new DerError('extra octets inside the ECDSA-Sig-Value');
  return { r: r.magnitude, s: s.magnitude };
}

export function ecdsaSigValue(r: Uint8Array, s: Uint8Array): Uint8Array {
  return sequence(unsignedInteger(r), unsignedInteger(s));
}
