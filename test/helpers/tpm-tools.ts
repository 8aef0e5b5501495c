/**
 * Stock tools as independent checks: tpm2-tools talking to our swtpm through the shared
 * bridge (`../shared/tools/tpm_bridge.py`, the tpm2-tss `cmd` TCTI), and openssl.
 *
 * - swtpm serves ONE connection at a time: close every transport of ours to that swtpm before
 *   running a tpm2-tools command, or the bridge waits in swtpm's backlog (we time out instead).
 * - Each tpm2-tools run is one bridge process; when it ends the bridge flushes EVERY transient
 *   object and session in the TPM (like closing /dev/tpmrm0), not just those the tool loaded.
 *   So .ctx files of objects survive (ContextLoad) but nothing stays loaded between runs.
 * - Everything is async (no spawnSync): the event loop keeps serving while a tool runs.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SHARED_DIR } from './shared.js';

export const BRIDGE = join(SHARED_DIR, 'tools', 'tpm_bridge.py');

const available = new Map<string, boolean>();
function runs(cmd: string, args: string[]): boolean {
  const key = [cmd, ...args].join(' ');
  let ok = available.get(key);
  if (ok === undefined) {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
    ok = r.status === 0;
    available.set(key, ok);
  }
  return ok;
}

/** tpm2-tools 5.x, python3 and the bridge are all there. */
export function tpm2ToolsAvailable(): boolean {
  return runs('tpm2_createak', ['--version']) && runs('python3', ['--version']) && existsSync(BRIDGE);
}

export function opensslAvailable(): boolean {
  return runs('openssl', ['version']);
}

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit code (null if killed by a signal). */
  code: number | null;
}

export class ToolError extends Error {
  override readonly name = 'ToolError';
  constructor(
    message: string,
    readonly result: RunResult,
  ) {
    super(message);
  }
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs a program; resolves with its output whatever the exit code (never rejects on exit != 0). */
export function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 30_000, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err && typeof (err as { code?: unknown }).code === 'string') {
          reject(new Error(`cannot run ${file}: ${err.message}`, { cause: err })); // ENOENT etc.
          return;
        }
        const killed = err !== null && (err as { killed?: boolean }).killed === true;
        if (killed) {
          reject(
            new ToolError(`${file} ${args.join(' ')}: killed after ${opts.timeoutMs ?? 30_000} ms${file.startsWith('tpm2_') ? ' (is a transport of ours still connected to swtpm?)' : ''}: ${stderr}`, {
              stdout,
              stderr,
              code: null,
            }),
          );
          return;
        }
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolve({ stdout, stderr, code });
      },
    );
  });
}

/** Runs, and rejects with stderr when the exit code is not 0. */
export async function runOk(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(file, args, opts);
  if (r.code !== 0) throw new ToolError(`${file} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`, r);
  return r;
}

/** Environment making tpm2-tools talk to the swtpm listening on `sockPath` via the bridge. */
export function bridgeEnv(sockPath: string, trace?: string): NodeJS.ProcessEnv {
  if (/\s/.test(BRIDGE)) throw new Error(`bridge path contains whitespace, which the cmd TCTI cannot take: ${BRIDGE}`);
  return {
    ...process.env,
    TPM2TOOLS_TCTI: `cmd:python3 ${BRIDGE}`,
    BRIDGE_SOCKET: sockPath,
    ...(trace ? { BRIDGE_TRACE: trace } : {}),
  };
}

/** A tpm2-tools runner bound to one swtpm socket and working directory (via the bridge unless `raw`). */
export interface Tpm2Tools {
  /** Runs `tool args...`; rejects with the tool's stderr on a non-zero exit. */
  (tool: string, ...args: string[]): Promise<RunResult>;
  /** Same, but resolves with the result whatever the exit code. */
  raw(tool: string, ...args: string[]): Promise<RunResult>;
}

/**
 * Environment for a *raw* connection: `socat` as the cmd TCTI, no flushing on close (like
 * /dev/tpm0 without a resource manager). Needed where tpm2-tools chain one session across
 * invocations (`tpm2_startauthsession -S s.ctx; tpm2_policysecret -S s.ctx …; tpm2_load … -P
 * session:s.ctx`): through the bridge — as through /dev/tpmrm0 — the session is flushed when
 * the first tool exits and the next one fails to load s.ctx (TPM_RC_HANDLE). Whatever such a
 * chain leaves loaded must be flushed afterwards: any tool run through the bridge does that.
 */
export function rawEnv(sockPath: string): NodeJS.ProcessEnv {
  if (/[\s,:!"'\\]/.test(sockPath)) throw new Error(`socket path not usable in a socat address: ${sockPath}`);
  return { ...process.env, TPM2TOOLS_TCTI: `cmd:socat - UNIX-CONNECT:${sockPath}` };
}

export function tpm2Tools(sockPath: string, cwd: string, opts: { trace?: string; timeoutMs?: number; raw?: boolean } = {}): Tpm2Tools {
  const env = opts.raw ? rawEnv(sockPath) : bridgeEnv(sockPath, opts.trace);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const f = ((tool: string, ...args: string[]) => runOk(tool, args, { cwd, env, timeoutMs })) as Tpm2Tools;
  f.raw = (tool: string, ...args: string[]) => run(tool, args, { cwd, env, timeoutMs });
  return f;
}

/** `openssl dgst -<hash> -verify PEM -signature SIG MSG` (paths relative to cwd); true iff "Verified OK". */
export async function opensslVerify(cwd: string, pem: string, sig: string, msg: string, hash = 'sha256'): Promise<{ ok: boolean; output: string }> {
  const r = await run('openssl', ['dgst', `-${hash}`, '-verify', pem, '-signature', sig, msg], { cwd });
  const output = `${r.stdout}${r.stderr}`.trim();
  return { ok: r.code === 0 && /^Verified OK$/m.test(r.stdout), output };
}

/** Parses openssl's indented colon-hex block following `label` (e.g. "Modulus:", "pub:"). */
export function opensslHexBlock(text: string, label: string): Buffer {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() === label);
  if (start < 0) throw new Error(`no "${label}" in openssl output:\n${text}`);
  let hex = '';
  for (const l of lines.slice(start + 1)) {
    if (!/^\s+([0-9a-f]{2}:)*[0-9a-f]{2}:?\s*$/i.test(l)) break;
    hex += l.replace(/[\s:]/g, '');
  }
  return Buffer.from(hex, 'hex');
}

export interface OpensslPublicKey {
  text: string;
  /** RSA: modulus without DER's leading zero; ECC: the uncompressed point 04‖x‖y. */
  key: Buffer;
  /** RSA: the public exponent; undefined for ECC. */
  exponent?: number;
  /** ECC: "prime256v1" etc.; undefined for RSA. */
  curve?: string;
  bits: number;
}

/** `openssl pkey -pubin -in PEM -text -noout`, decoded. */
export async function opensslPublicKey(cwd: string, pem: string): Promise<OpensslPublicKey> {
  const { stdout: text } = await runOk('openssl', ['pkey', '-pubin', '-in', pem, '-text', '-noout'], { cwd });
  const bits = Number(/Public-Key: \((\d+) bit\)/.exec(text)?.[1]);
  if (/^Modulus:/m.test(text)) {
    let key = opensslHexBlock(text, 'Modulus:');
    while (key.length > 0 && key[0] === 0) key = key.subarray(1);
    const exponent = Number(/^Exponent: (\d+)/m.exec(text)?.[1]);
    return { text, key, exponent, bits };
  }
  const key = opensslHexBlock(text, 'pub:');
  const curve = /^ASN1 OID: (\S+)/m.exec(text)?.[1];
  return { text, key, curve, bits };
}

/** A fresh temp dir for tool files, and its removal. */
export async function workDir(prefix = 'tpm-interop-'): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

// ---------------------------------------------------------------------------------------------
// test messages generated on the fly

/**
 * Deterministic message bytes in irregular chunk sizes (1 … 65 536 bytes), each chunk a fresh
 * Buffer, produced lazily: nothing holds the whole message. Chunk i starts with i (UINT32), so a
 * lost, repeated or reordered chunk changes the digest; a message never starts with 0xFF544347.
 */
export function* messageChunks(total: number, seed = 1): Generator<Buffer> {
  const block = Buffer.alloc(65536 + 4096);
  let h = createHash('sha512').update(`message seed ${seed}`).digest();
  for (let o = 0; o < block.length; o += h.length) {
    h.copy(block, o);
    h = createHash('sha512').update(h).digest();
  }
  let off = 0;
  for (let i = 0; off < total; i++) {
    const size = Math.min(total - off, 1 + ((i * 7919 + seed * 104729) % 65536));
    const start = (i * 131) % 4096;
    const chunk = Buffer.from(block.subarray(start, start + size));
    if (size >= 4) chunk.writeUInt32BE(i, 0);
    yield chunk;
    off += size;
  }
}

/** The generated message as a byte stream (a Readable fed by a generator). */
export function messageStream(total: number, seed = 1): Readable {
  return Readable.from(messageChunks(total, seed), { objectMode: false });
}

/** The generated message in one buffer (for verifiers that want it whole). */
export function messageBytes(total: number, seed = 1): Buffer {
  return Buffer.concat([...messageChunks(total, seed)]);
}

/** Digest of the generated message, computed chunk by chunk. */
export function messageDigest(total: number, seed = 1, hash = 'sha256'): Buffer {
  const h = createHash(hash);
  for (const c of messageChunks(total, seed)) h.update(c);
  return h.digest();
}

/** Writes the generated message to a file, streaming. */
export async function writeMessageFile(path: string, total: number, seed = 1): Promise<void> {
  await pipeline(messageStream(total, seed), createWriteStream(path));
}
