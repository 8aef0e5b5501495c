/**
 * eve_tools_tpm2_sign's requests, counted on a real service (swtpm, real HTTP over its unix
 * socket, the tool's real client): a message of known length up to ASK_KEY_ABOVE is signed in
 * exactly one request, with or without -g; a wrong -g is still refused with the precise
 * message (the key's hash asked only then); a larger message is checked against the key
 * before it is streamed, so a wrong -g sends nothing.
 */
import { createPublicKey, verify } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServiceClient } from '../../src/cli/client.js';
import { EXIT } from '../../src/cli/errors.js';
import { runTool, type CliIO } from '../../src/cli/run.js';
import { ASK_KEY_ABOVE, sign } from '../../src/cli/tools/sign.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { eventually, startEnv, type TestEnv } from '../service/env.js';

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('eve_tools_tpm2_sign: requests per sign', () => {
  let env: TestEnv;
  let key: { handle: string; pem: string };

  /** The requests the service logged since `from`: op and status. */
  const requests = (from: number): string[] => env.logs.slice(from).filter((l) => l.event === 'request').map((l) => `${String(l.op)} ${String(l.status)}`);

  const runSign = async (argv: string[]): Promise<{ code: number; stderr: string }> => {
    const err: Buffer[] = [];
    const stderr = new PassThrough();
    stderr.on('data', (c: Buffer) => err.push(c));
    const io: CliIO = {
      env: { EVE_TOOLS_SERVICE: env.unix, EVE_TOOLS_SECRET: env.secrets.app!, EVE_TOOLS_CONFIG: 'none' },
      stdout: new PassThrough(),
      stderr,
      stdin: Readable.from([]),
      createClient: createServiceClient,
    };
    const from = env.logs.length;
    const code = await runTool(sign, argv, io);
    // The request line is written once the response is closed: wait for it, not for a time.
    if (code === 0) await eventually(() => requests(from).some((r) => r.startsWith('sign ')), 5000, 'the request line');
    return { code, stderr: Buffer.concat(err).toString('utf8') };
  };

  beforeAll(async () => {
    env = await startEnv({ tenants: [{ id: 'app' }] });
    await eventually(() => env.service.core.supervisor.healthy, 10_000, 'TPM maintenance');
    key = await env.client('app').createKey({ type: 'ecc' });
  }, 60_000);
  afterAll(async () => {
    await env?.stop();
  });

  it('signs a small file in exactly one request, with -g and without', async () => {
    const m = join(env.dir, 'small.txt');
    const message = Buffer.from('a message of 32 bytes, to sign.\n');
    writeFileSync(m, message);
    for (const g of [['-g', '0x00B'], []]) {
      const s = join(env.dir, `small${g.length}.sig`);
      const from = env.logs.length;
      const r = await runSign(['-k', key.handle, '-m', m, ...g, '-s', s]);
      expect(r).toEqual({ code: 0, stderr: '' });
      expect(requests(from)).toEqual(['sign 200']);
      expect(verify('sha256', message, createPublicKey(key.pem), readFileSync(s))).toBe(true);
    }
  });

  it('refuses a wrong -g on a small file with the precise message, asking the key only then', async () => {
    const m = join(env.dir, 'small.txt');
    const from = env.logs.length;
    const r = await runSign(['-k', key.handle, '-m', m, '-g', 'sha384', '-s', join(env.dir, 'never.sig')]);
    expect(r.code).toBe(EXIT.UNSUPPORTED);
    expect(r.stderr).toBe(
      `eve_tools_tpm2_sign: key ${key.handle} signs with sha256 only (an AK's hash is fixed when it is created), not sha384; ` +
        'create a sha384 key with: eve_tools_tpm2_genaik -g ecc -G 0xC\n',
    );
    await eventually(() => requests(from).length === 2, 5000, 'both request lines');
    expect(requests(from)).toEqual(['sign 422', 'get-key 200']);
  });

  it('checks a large file against the key before streaming it', async () => {
    const m = join(env.dir, 'large.bin');
    writeFileSync(m, Buffer.alloc(ASK_KEY_ABOVE + 1, 0x61));
    let from = env.logs.length;
    const r = await runSign(['-k', key.handle, '-m', m, '-g', 'sha384', '-s', join(env.dir, 'never.sig')]);
    expect(r.code).toBe(EXIT.UNSUPPORTED);
    await eventually(() => requests(from).length === 1, 5000, 'the request line');
    expect(requests(from)).toEqual(['get-key 200']); // nothing streamed
    from = env.logs.length;
    expect((await runSign(['-k', key.handle, '-m', m, '-g', 'sha256', '-s', join(env.dir, 'large.sig')])).code).toBe(0);
    expect(requests(from)).toEqual(['get-key 200', 'sign 200']);
  });
});
