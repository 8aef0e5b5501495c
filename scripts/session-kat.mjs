#!/usr/bin/env node
// Regenerates test/fixtures/sessions/kat.json: known answers for the session crypto of
// src/tpm/session (KDFa, KDFe, AES-CFB and XOR parameter encryption), every expected value
// computed by openssl 3 — an implementation independent of ours:
//   KDFa (Part 1 §11.4.10.2)  = openssl kdf KBKDF, HMAC, counter mode: the label is KBKDF's
//                               "salt", contextU‖contextV its "info"; KBKDF adds the 0x00
//                               separator and [L]32 itself.
//   KDFe (Part 1 §11.4.10.3)  = openssl kdf SSKDF (hash): H(counter ‖ Z ‖ FixedInfo) with
//                               FixedInfo = label ‖ 0x00 ‖ partyUInfo ‖ partyVInfo.
//   CFB  (Part 1 §21.3)       = openssl enc -aes-N-cfb with key ‖ IV from the KDFa above.
//   XOR  (Part 1 §21.2)       = data XOR the KDFa mask (label "XOR").
// Inputs are fixed (derived from SHA-256 of a seed string), so the file is reproducible.
// Usage: node scripts/session-kat.mjs
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'test', 'fixtures', 'sessions', 'kat.json');
const HASH = { sha1: 0x0004, sha256: 0x000b, sha384: 0x000c, sha512: 0x000d };

/** n bytes derived from a seed, as hex. */
function bytes(seed, n) {
  let out = Buffer.alloc(0);
  for (let i = 0; out.length < n; i++) out = Buffer.concat([out, createHash('sha256').update(`${seed}/${i}`).digest()]);
  return out.subarray(0, n).toString('hex');
}

function openssl(args, input) {
  return execFileSync('openssl', args, { input, encoding: input ? undefined : 'utf8' });
}

/** openssl kdf prints colon-separated hex. */
const kdfOut = (s) => s.trim().replace(/:/g, '').toLowerCase();

function kdfa(hash, keyHex, label, uHex, vHex, bits) {
  if (bits % 8 !== 0) throw new Error('whole octets only');
  const args = ['kdf', '-keylen', String(bits / 8), '-kdfopt', `digest:${hash.toUpperCase()}`, '-kdfopt', 'mac:HMAC', '-kdfopt', `hexkey:${keyHex}`, '-kdfopt', `salt:${label}`];
  if (uHex + vHex) args.push('-kdfopt', `hexinfo:${uHex}${vHex}`);
  args.push('KBKDF');
  return kdfOut(openssl(args));
}

function kdfe(hash, zHex, label, uHex, vHex, bits) {
  const info = Buffer.from(label + '\0', 'latin1').toString('hex') + uHex + vHex;
  return kdfOut(openssl(['kdf', '-keylen', String(bits / 8), '-kdfopt', `digest:${hash.toUpperCase()}`, '-kdfopt', `hexkey:${zHex}`, '-kdfopt', `hexinfo:${info}`, 'SSKDF']));
}

function cfb(keyBits, keyIvHex, dataHex, encrypt) {
  const dir = mkdtempSync(join(tmpdir(), 'kat-'));
  try {
    const inFile = join(dir, 'in');
    writeFileSync(inFile, Buffer.from(dataHex, 'hex'));
    const key = keyIvHex.slice(0, keyBits / 4);
    const iv = keyIvHex.slice(keyBits / 4, keyBits / 4 + 32);
    execFileSync('openssl', ['enc', `-aes-${keyBits}-cfb`, encrypt ? '-e' : '-d', '-K', key, '-iv', iv, '-nopad', '-in', inFile, '-out', join(dir, 'out')]);
    return readFileSync(join(dir, 'out')).toString('hex');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const kdfaCases = [];
for (const [hash, label, keyLen, uLen, vLen, bits] of [
  ['sha256', 'ATH', 64, 32, 32, 256],
  ['sha256', 'CFB', 32, 32, 32, 256],
  ['sha256', 'XOR', 5, 16, 16, 8 * 37],
  ['sha1', 'ATH', 20, 20, 20, 160],
  ['sha384', 'CFB', 48, 48, 48, 384],
  ['sha512', 'KDF', 17, 0, 0, 1040],
]) {
  const key = bytes(`kdfa-key-${hash}-${label}`, keyLen);
  const u = bytes(`kdfa-u-${hash}-${label}`, uLen);
  const v = bytes(`kdfa-v-${hash}-${label}`, vLen);
  kdfaCases.push({ hash, hashAlg: HASH[hash], key, label, contextU: u, contextV: v, bits, expected: kdfa(hash, key, label, u, v, bits) });
}

const kdfeCases = [];
for (const [hash, zLen, bits] of [
  ['sha256', 32, 256],
  ['sha384', 48, 384],
  ['sha256', 66, 520],
]) {
  const z = bytes(`kdfe-z-${hash}-${zLen}`, zLen);
  const u = bytes(`kdfe-u-${hash}-${zLen}`, zLen);
  const v = bytes(`kdfe-v-${hash}-${zLen}`, zLen);
  kdfeCases.push({ hash, hashAlg: HASH[hash], z, label: 'SECRET', partyU: u, partyV: v, bits, expected: kdfe(hash, z, 'SECRET', u, v, bits) });
}

// Parameter encryption as a session does it: newer/older nonces per direction.
const cryptCases = [];
for (const [name, alg, keyBits, authHash, dataLen] of [
  ['aes128 command', 'aes', 128, 'sha256', 45],
  ['aes128 response', 'aes', 128, 'sha256', 32],
  ['aes256 command', 'aes', 256, 'sha384', 70],
  ['xor sha256', 'xor', 0, 'sha256', 29],
]) {
  const sessionValue = bytes(`crypt-key-${name}`, 40);
  const nonceNewer = bytes(`crypt-newer-${name}`, 32);
  const nonceOlder = bytes(`crypt-older-${name}`, 32);
  const plaintext = bytes(`crypt-data-${name}`, dataLen);
  let ciphertext;
  if (alg === 'aes') {
    const keyIv = kdfa(authHash, sessionValue, 'CFB', nonceNewer, nonceOlder, keyBits + 128);
    ciphertext = cfb(keyBits, keyIv, plaintext, true);
    if (cfb(keyBits, keyIv, ciphertext, false) !== plaintext) throw new Error('openssl CFB does not round-trip');
  } else {
    const mask = Buffer.from(kdfa(authHash, sessionValue, 'XOR', nonceNewer, nonceOlder, dataLen * 8), 'hex');
    const p = Buffer.from(plaintext, 'hex');
    ciphertext = Buffer.from(p.map((b, i) => b ^ mask[i])).toString('hex');
  }
  cryptCases.push({ name, alg, keyBits, authHash: HASH[authHash], sessionValue, nonceNewer, nonceOlder, plaintext, ciphertext });
}

const version = openssl(['version']).trim();
writeFileSync(
  OUT,
  JSON.stringify({ generator: 'scripts/session-kat.mjs', by: version, kdfa: kdfaCases, kdfe: kdfeCases, paramCrypt: cryptCases }, null, 2) + '\n',
);
process.stderr.write(`wrote ${OUT} (${kdfaCases.length} KDFa, ${kdfeCases.length} KDFe, ${cryptCases.length} parameter encryption; ${version})\n`);
