/**
 * In-process harness for the tools: fake streams and a fake client, so argument parsing,
 * output writing, error mapping and --json can be tested without a service.
 */
import { PassThrough, Readable } from 'node:stream';
import { runTool, type CliIO, type ToolDef } from '../../src/cli/run.js';
import type { ClientLike, ClientOptions, KeySummary } from '../../src/cli/service.js';
import { GENERAL_SCHEMES, type EccCurve, type HashName, type KeyScheme, type KeyType, type KeyUsage, type RsaBits } from '../../src/service/protocol/vocabulary.js';

export class FakeServiceError extends Error {
  override name = 'ServiceError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly tpmRc?: string,
    readonly tpmText?: string,
  ) {
    super(message);
  }
}

export class FakeUnreachable extends Error {
  override name = 'ServiceUnreachableError';
}

export interface FakeState {
  keys: Map<string, KeySummary>;
  calls: string[];
  options: ClientOptions[];
  /** When set, every call throws it. */
  fail?: unknown;
  signed: Uint8Array[];
  next: number;
}

export function fakeClientFactory(state: FakeState): (o: ClientOptions) => ClientLike {
  return (o) => {
    state.options.push(o);
    const guard = (what: string): void => {
      state.calls.push(what);
      if (state.fail) throw state.fail;
    };
    const PEM = '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n';
    const notFaked = async (what: string): Promise<never> => {
      guard(what);
      throw new Error(`the fake client has no ${what}`);
    };
    const own = (h: string | number): KeySummary => {
      const k = state.keys.get(String(h));
      if (!k) throw new FakeServiceError(403, 'FORBIDDEN', 'the handle does not belong to this application');
      return k;
    };
    return {
      async createKey(req) {
        guard(`createKey ${req.type} ${req.hashAlg ?? ''}`.trim());
        const handle = `0x${(state.next++).toString(16)}`;
        // The tools send names (they parse ids themselves).
        const type = req.type as KeyType;
        const shape = type === 'rsa' ? ({ kind: 'ak', usage: 'sign', scheme: 'rsassa', bits: 2048 } as const) : ({ kind: 'ak', usage: 'sign', scheme: 'ecdsa', curve: 'P-256' } as const);
        if (req.kind === 'general') {
          // As the service's defaults for a general key (messages.ts CreateKeyRequest).
          const usage = (req.usage ?? 'sign') as KeyUsage;
          const scheme = (req.scheme ?? GENERAL_SCHEMES[type][usage][0]) as KeyScheme;
          state.calls[state.calls.length - 1] += ` general ${usage} ${scheme}${req.bits !== undefined ? ` ${req.bits}` : ''}${req.curve !== undefined ? ` ${req.curve}` : ''}`;
          const size = type === 'rsa' ? { bits: (req.bits ?? 2048) as RsaBits } : { curve: (req.curve ?? 'P-256') as EccCurve };
          const g: KeySummary = { handle, type, hashAlg: (req.hashAlg ?? 'sha256') as HashName, kind: 'general', usage, scheme, ...size, name: '000b01', createdAt: '2025-01-01T00:00:00.000Z' };
          state.keys.set(handle, g);
          return { ...g, pem: PEM };
        }
        const k: KeySummary = { handle, type, hashAlg: (req.hashAlg ?? 'sha256') as HashName, ...shape, name: '000b00', createdAt: '2025-01-01T00:00:00.000Z' };
        state.keys.set(handle, k);
        return { ...k, pem: PEM };
      },
      async listKeys() {
        guard('listKeys');
        return [...state.keys.values()];
      },
      async getKey(h) {
        guard(`getKey ${h}`);
        return { ...own(h), pem: PEM };
      },
      async getPublic(h, format) {
        guard(`getPublic ${h} ${format}`);
        const k = own(h);
        return format === 'pem' ? { handle: k.handle, format: 'pem' as const, pem: PEM } : { handle: k.handle, format: format as 'der' | 'tss', data: new Uint8Array([1, 2, 3]) };
      },
      async sign(h, req) {
        guard(`sign ${h} ${req.hashAlg ?? '(the key\'s hash)'} ${req.format}`);
        const k = own(h);
        // As the service: no hash means the key's; a wrong one is refused before the body is read.
        if ((req.hashAlg ?? k.hashAlg) !== k.hashAlg) throw new FakeServiceError(422, 'UNSUPPORTED', 'hash does not match the key scheme');
        const chunks: Buffer[] = [];
        if (req.message instanceof Uint8Array) chunks.push(Buffer.from(req.message));
        else {
          let n = 0;
          for await (const c of req.message as AsyncIterable<Buffer>) {
            chunks.push(c);
            n += c.length;
            req.onProgress?.(n);
          }
        }
        const msg = Buffer.concat(chunks);
        state.signed.push(msg);
        return { handle: k.handle, sigAlg: 'rsassa', hashAlg: k.hashAlg, format: (req.format ?? 'plain') as 'plain', signature: new Uint8Array(Buffer.from('SIG')), digest: 'ab', messageLength: msg.length };
      },
      async signDigest(h, req) {
        guard(`signDigest ${h} ${req.hashAlg ?? "(the key's hash)"} ${req.format ?? 'plain'}`);
        const k = own(h);
        if (k.kind === 'ak') throw new FakeServiceError(422, 'UNSUPPORTED', 'key 0x81010000 is an AK: it signs only messages the TPM hashed, not a digest');
        if (k.usage !== 'sign') throw new FakeServiceError(422, 'UNSUPPORTED', 'the key is a decryption key: it cannot sign');
        if ((req.hashAlg ?? k.hashAlg) !== k.hashAlg) throw new FakeServiceError(422, 'UNSUPPORTED', 'hash does not match the key scheme');
        state.signed.push(Buffer.from(req.digest));
        return { handle: k.handle, sigAlg: k.scheme, hashAlg: k.hashAlg, format: (req.format ?? 'plain') as 'plain', signature: new Uint8Array(Buffer.from('SIG')), digest: Buffer.from(req.digest).toString('hex'), messageLength: 0 };
      },
      async decrypt(h, req) {
        guard(`decrypt ${h} ${req.ciphertext.length}${req.label !== undefined ? ` label=${req.label}` : ''}`);
        const k = own(h);
        if (k.scheme !== 'oaep') throw new FakeServiceError(422, 'UNSUPPORTED', `key ${k.handle} does not decrypt (its scheme is ${k.scheme})`);
        return new Uint8Array(Buffer.from('PLAIN'));
      },
      async ecdh(h, req) {
        guard(`ecdh ${h} ${req.peer.split('\n')[0]}`);
        const k = own(h);
        if (k.scheme !== 'ecdh') throw new FakeServiceError(422, 'UNSUPPORTED', `key ${k.handle} does not agree keys (its scheme is ${k.scheme})`);
        return new Uint8Array(32).fill(0x5a);
      },
      // Operations without a named method: not faked until a tool uses one.
      async request(op) {
        guard(`request ${op}`);
        throw new Error(`the fake client has no ${op}`);
      },
      async deleteKey(h) {
        guard(`deleteKey ${h}`);
        state.keys.delete(own(h).handle);
      },
      // The attestation tools are tested against the real service (test/cli/attest-*.test.ts).
      readPcrs: () => notFaked('readPcrs'),
      quote: () => notFaked('quote'),
      certify: () => notFaked('certify'),
      deviceCertify: () => notFaked('deviceCertify'),
      activateCredential: () => notFaked('activateCredential'),
      ekPublic: () => notFaked('ekPublic'),
      ekCertificate: () => notFaked('ekCertificate'),
    };
  };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

export function newState(): FakeState {
  return { keys: new Map(), calls: [], options: [], signed: [], next: 0x81010000 };
}

export async function run(
  def: ToolDef<any>,
  argv: string[],
  opts: { state?: FakeState; env?: NodeJS.ProcessEnv; stdin?: Buffer | string; stdoutTTY?: boolean } = {},
): Promise<RunResult & { state: FakeState }> {
  const state = opts.state ?? newState();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  if (opts.stdoutTTY) Object.assign(stdout, { isTTY: true });
  const io: CliIO = {
    // A config path that does not exist keeps the machine's /etc out of unit tests.
    env: { EVE_TOOLS_CONFIG: 'none', ...opts.env },
    stdout,
    stderr,
    stdin: Readable.from(opts.stdin !== undefined ? [Buffer.from(opts.stdin)] : []),
    createClient: fakeClientFactory(state),
  };
  const code = await runTool(def, argv, io);
  const stdoutBytes = Buffer.concat(out);
  return { code, stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBytes, state };
}
