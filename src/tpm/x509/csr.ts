/**
 * A certificate request (PKCS#10) and a self-signed certificate made with @peculiar/x509 and a
 * TpmSigner (the signature is made wherever the signer's callback sends it).
 *
 * @peculiar/x509 imports `reflect-metadata` (a global `Reflect` metadata polyfill) and registers
 * its algorithms in tsyringe's global container when it loads. That cannot be avoided once it
 * runs, so it is imported here lazily, by the first CSR or certificate: importing the library
 * sets no global.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type * as X509 from '@peculiar/x509';
import { publicToSpkiDer } from '../keys/public.js';
import type { TpmSigner } from './signer.js';

export class X509InputError extends Error {
  override readonly name = 'X509InputError';
}

/** A subjectAltName entry, as `openssl req -addext subjectAltName=…` writes them: DNS, IP, email, URI. */
export interface SubjectAltName {
  type: 'dns' | 'ip' | 'email' | 'url';
  value: string;
}

const SAN_PREFIX: Record<string, SubjectAltName['type']> = { dns: 'dns', ip: 'ip', email: 'email', uri: 'url' };

/** Parses "DNS:a.example,IP:10.0.0.1,email:x@y,URI:https://…" (or a list of such items). */
export function parseSubjectAltNames(input: string | readonly string[]): SubjectAltName[] {
  const items = (typeof input === 'string' ? input.split(',') : input.flatMap((s) => s.split(','))).map((s) => s.trim()).filter((s) => s.length > 0);
  return items.map((item) => {
    const colon = item.indexOf(':');
    const type = colon > 0 ? SAN_PREFIX[item.slice(0, colon).toLowerCase()] : undefined;
    const value = colon > 0 ? item.slice(colon + 1).trim() : '';
    if (!type) throw new X509InputError(`subjectAltName ${JSON.stringify(item)}: expected DNS:name, IP:address, email:address or URI:uri`);
    return checkSan({ type, value });
  });
}

function checkSan(san: SubjectAltName): SubjectAltName {
  const bad = (why: string): never => {
    throw new X509InputError(`subjectAltName ${san.type}:${JSON.stringify(san.value)}: ${why}`);
  };
  if (san.value.length === 0) bad('empty');
  if (san.type === 'ip' && isIP(san.value) === 0) bad('not an IPv4 or IPv6 address');
  if (san.type === 'dns' && !/^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/.test(san.value)) bad('not a DNS name');
  if (san.type === 'email' && !/^[^@\s]+@[^@\s]+$/.test(san.value)) bad('not an email address');
  if (san.type === 'url' && !/^[A-Za-z][A-Za-z0-9+.-]*:\S+$/.test(san.value)) bad('not a URI');
  return san;
}

export interface CsrOptions {
  /** The subject, e.g. "CN=app1, O=Acme" (RFC 4514 string form). */
  subject: string;
  /** "DNS:a.example,IP:10.0.0.1", a list of such items, or parsed entries. */
  subjectAltNames?: string | readonly string[] | readonly SubjectAltName[];
}

export interface X509Output {
  der: Uint8Array;
  pem: string;
}

let x509Module: Promise<typeof X509> | undefined;
function loadX509(): Promise<typeof X509> {
  x509Module ??= import('@peculiar/x509');
  return x509Module;
}

function sansOf(input: CsrOptions['subjectAltNames']): SubjectAltName[] {
  if (input === undefined) return [];
  if (typeof input === 'string') return parseSubjectAltNames(input);
  if (input.every((x): x is string => typeof x === 'string')) return parseSubjectAltNames(input as readonly string[]);
  return (input as readonly SubjectAltName[]).map((s) => checkSan({ type: s.type, value: String(s.value) }));
}

function nameOf(x509: typeof X509, subject: string): X509.Name {
  if (typeof subject !== 'string' || subject.trim().length === 0) throw new X509InputError('the subject is empty: give e.g. "CN=app1, O=Acme"');
  try {
    const name = new x509.Name(subject);
    if (name.toJSON().length === 0) throw new Error('no attribute');
    return name;
  } catch (e) {
    throw new X509InputError(`subject ${JSON.stringify(subject)} is not a distinguished name (e.g. "CN=app1, O=Acme"): ${(e as Error).message}`);
  }
}

function pemOf(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

/** The extensions asked for in a CSR, and put in a self-signed certificate. */
function extensionsFor(x509: typeof X509, sans: SubjectAltName[]): X509.Extension[] {
  const out: X509.Extension[] = [];
  if (sans.length > 0) out.push(new x509.SubjectAlternativeNameExtension(sans));
  // Every signer's key is a signing key (general or AK): digitalSignature, nothing else.
  out.push(new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true));
  return out;
}

/** A PKCS#10 certificate request for the signer's key, signed by it. */
export async function createCsr(signer: TpmSigner, opts: CsrOptions): Promise<X509Output> {
  const sans = sansOf(opts.subjectAltNames);
  const x509 = await loadX509();
  const name = nameOf(x509, opts.subject);
  const req = await x509.Pkcs10CertificateRequestGenerator.create(
    { name, keys: signer.keys, signingAlgorithm: signer.signingAlgorithm, extensions: extensionsFor(x509, sans) },
    signer.crypto,
  );
  const der = new Uint8Array(req.rawData);
  return { der, pem: pemOf(der, 'CERTIFICATE REQUEST') };
}

export interface SelfSignedOptions extends CsrOptions {
  /** Validity in days from notBefore (default 365). */
  days?: number;
  /** Start of validity (default now). */
  notBefore?: Date;
  /** Serial number as hex (default 16 random octets). */
  serialNumber?: string;
}

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's value. */
async function keyIdentifier(signer: TpmSigner): Promise<string> {
  // Loaded when a certificate is made, as @peculiar/x509 is: a service that makes none never loads them.
  const [{ AsnConvert }, { SubjectPublicKeyInfo }] = await Promise.all([import('@peculiar/asn1-schema'), import('@peculiar/asn1-x509')]);
  const spki = AsnConvert.parse(publicToSpkiDer(signer.publicArea), SubjectPublicKeyInfo);
  return createHash('sha1').update(new Uint8Array(spki.subjectPublicKey)).digest('hex');
}

/** A self-signed X.509 v3 certificate for the signer's key. */
export async function createSelfSignedCertificate(signer: TpmSigner, opts: SelfSignedOptions): Promise<X509Output> {
  const sans = sansOf(opts.subjectAltNames);
  const days = opts.days ?? 365;
  if (!Number.isInteger(days) || days < 1 || days > 36500) throw new X509InputError(`days ${JSON.stringify(opts.days)}: expected a whole number from 1 to 36500`);
  if (opts.serialNumber !== undefined && !/^[0-9a-fA-F]{1,40}$/.test(opts.serialNumber)) throw new X509InputError('the serial number must be 1 to 40 hex digits');
  const x509 = await loadX509();
  const name = nameOf(x509, opts.subject);
  const notBefore = opts.notBefore ?? new Date();
  const notAfter = new Date(notBefore.getTime() + days * 86_400_000);
  const extensions = [...extensionsFor(x509, sans), new x509.SubjectKeyIdentifierExtension(await keyIdentifier(signer))];
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    { serialNumber: opts.serialNumber, name, notBefore, notAfter, keys: signer.keys, signingAlgorithm: signer.signingAlgorithm, extensions },
    signer.crypto,
  );
  const der = new Uint8Array(cert.rawData);
  return { der, pem: pemOf(der, 'CERTIFICATE') };
}
