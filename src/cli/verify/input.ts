/**
 * What the verifier's subcommands share: exit codes, reading input files, hex and key options,
 * and printing a report (one line per check and a verdict, or JSON).
 *
 * Fail closed: a missing option is a usage error (exit 2), a file that cannot be read exits 6,
 * and a file that is there but does not parse (a PEM that is not a key, a truncated pcrs.out)
 * is a failed check of the report, so the verdict is "not verified" (exit 1).
 */
import { readFile, stat } from 'node:fs/promises';
import { CliError, EXIT, fileError, usageError } from '../errors.js';
import { hashAlgId, parseHash } from '../args.js';
import { TPM_ALG } from '../../tpm/constants.js';
import { signingPublicFromSpki } from '../../tpm/attest/spki.js';
import type { AttestCheck } from '../../tpm/attest/verify.js';
import { TPM2B_PUBLIC, type TPMT_PUBLIC } from '../../tpm/structures.js';
import { decode } from '../../tpm/wire/codec.js';

export const VERIFY_EXIT = { OK: EXIT.OK, NOT_VERIFIED: EXIT.GENERAL, USAGE: EXIT.USAGE, FILE: EXIT.FILE } as const;

export interface VerifyIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** Inputs other than the signed message are small; a bigger file is not what was meant. */
const MAX_INPUT = 1 << 20;

/** Reads a whole (small) input file; a missing or unreadable one is a CliError (exit 6). */
export async function readInput(path: string, what: string): Promise<Uint8Array> {
  try {
    const st = await stat(path);
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    if (st.size > MAX_INPUT) throw new CliError(`${what} '${path}': ${st.size} bytes, more than any ${what} (at most ${MAX_INPUT})`, EXIT.FILE, 'FILE');
    return new Uint8Array(await readFile(path));
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw fileError(`cannot read ${what}`, path, e);
  }
}

/** Hex as tpm2-tools takes it (optional 0x); `what` names the option in the error. */
export function parseHexOption(text: string | undefined, option: string, opts: { allowEmpty?: boolean } = {}): Uint8Array {
  if (text === undefined) throw usageError(`${option} is required`);
  const t = text.trim().replace(/^0x/i, '');
  if (t === '' && !opts.allowEmpty) throw usageError(`${option}: empty (expected hex)`);
  if (!/^([0-9a-fA-F]{2})*$/.test(t)) throw usageError(`${option}: '${text.length > 40 ? `${text.slice(0, 40)}…` : text}' is not hex (an even number of 0-9a-f digits)`);
  return new Uint8Array(Buffer.from(t, 'hex'));
}

/** The hash option: a TPM_ALG_ID, or undefined when not given. */
export function hashOption(text: string | undefined, option = '-g'): number | undefined {
  return text === undefined ? undefined : hashAlgId(parseHash(text, option));
}

export interface KeyOptions {
  pem?: string;
  public?: string;
}

/**
 * The signing key from `--pem` (a SPKI: an AK's scheme with hash `hashAlg`, default sha256) or
 * `--public` (TPM2B_PUBLIC, its own scheme). Exactly one is required. A key that does not parse
 * is returned as a failed input check, not thrown.
 */
export async function loadSigningKey(o: KeyOptions, hashAlg: number | undefined, what: string): Promise<{ key?: TPMT_PUBLIC; check?: AttestCheck }> {
  if (o.pem !== undefined && o.public !== undefined) throw usageError('give the key once: --pem or --public, not both');
  if (o.pem === undefined && o.public === undefined) throw usageError(`the ${what} is required: --pem FILE (PEM public key) or --public FILE (TPM2B_PUBLIC)`);
  if (o.pem !== undefined) {
    const bytes = await readInput(o.pem, `${what} PEM file`);
    try {
      return { key: signingPublicFromSpki(bytes, hashAlg === undefined ? {} : { hashAlg }) };
    } catch (e) {
      return { check: { name: 'input', ok: false, detail: `${o.pem}: ${(e as Error).message}` } };
    }
  }
  const path = o.public!;
  const bytes = await readInput(path, `${what} public file`);
  let key: TPMT_PUBLIC;
  try {
    key = decode(TPM2B_PUBLIC, bytes);
  } catch (e) {
    return { check: { name: 'input', ok: false, detail: `${path}: not a TPM2B_PUBLIC (${(e as Error).message})` } };
  }
  if (hashAlg !== undefined && (key.type === TPM_ALG.RSA || key.type === TPM_ALG.ECC)) {
    const s = key.parameters.scheme;
    const keyHash = s.details !== null && typeof s.details === 'object' && 'hashAlg' in s.details ? s.details.hashAlg : undefined;
    if (keyHash !== undefined && keyHash !== hashAlg) {
      throw usageError(`-g 0x${hashAlg.toString(16)} is not the hash of the key's scheme in ${path} (0x${keyHash.toString(16)}); leave -g out with --public`);
    }
  }
  return { key };
}

/** A library error about unreadable input, as a failed input check. */
export function inputCheck(e: unknown, about: string): AttestCheck {
  // The library's errors about input it cannot read; anything else is a bug, and rethrown.
  if (e instanceof Error && /^(KeyFormatError|PcrFormatError|TpmDecodeError|CredentialError|AppBindingError)$/.test(e.name)) {
    return { name: 'input', ok: false, detail: `${about}: ${e.message}` };
  }
  throw e;
}

/** JSON-safe copy: bytes as hex, UINT64 as decimal strings. */
export function jsonSafe(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonSafe(x)]));
  return v;
}

export interface VerifyOutcome {
  /** Subcommand name, for the verdict line. */
  what: string;
  ok: boolean;
  checks: AttestCheck[];
  /** Extra report fields (binding, selection, the decoded attestation). */
  extra?: Record<string, unknown>;
  /** Extra lines for text mode, before the verdict ("identity  app-1 (EVE-APP)"). */
  notes?: string[];
}

/** Combines the CLI's own checks with the library's; ok only if all hold and there is one. */
export function outcome(what: string, checks: AttestCheck[], extra?: Record<string, unknown>, notes?: string[]): VerifyOutcome {
  const ok = checks.length > 0 && checks.every((c) => c.ok);
  return { what, ok, checks, ...(extra ? { extra } : {}), ...(notes ? { notes } : {}) };
}

/** Prints the report; returns the exit code. */
export function printOutcome(o: VerifyOutcome, json: boolean, io: VerifyIO, prog: string): number {
  if (json) {
    io.stdout.write(`${JSON.stringify(jsonSafe({ ok: o.ok, checks: o.checks, ...(o.extra ?? {}) }))}\n`);
  } else {
    const width = Math.max(...o.checks.map((c) => c.name.length), 8);
    const lines = o.checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(width)}  ${c.detail}`);
    for (const n of o.notes ?? []) lines.push(`      ${n}`);
    const failed = o.checks.filter((c) => !c.ok).length;
    lines.push(o.ok ? `verified: ${o.what}` : `NOT VERIFIED: ${o.what} (${failed} of ${o.checks.length} checks failed)`);
    io.stdout.write(`${lines.join('\n')}\n`);
  }
  if (!o.ok) {
    const names = [...new Set(o.checks.filter((c) => !c.ok).map((c) => c.name))].join(', ');
    io.stderr.write(`${prog}: ${o.what}: not verified (${names || 'no checks'})\n`);
  }
  return o.ok ? VERIFY_EXIT.OK : VERIFY_EXIT.NOT_VERIFIED;
}
