/** The raw channel from a test: upgrade over a real socket, send frames, read answers. */
import { spawnSync } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestEnv } from '../service/env.js';
import { TPM_ALG, TPM_CAP, TPM_RH } from '../../src/tpm/constants.js';
import { DictionaryAttackLockReset } from '../helpers/hierarchy.js';
import * as C from '../../src/tpm/commands.js';
import { COMMANDS } from '../../src/tpm/entries/wire.js';

const REPO_ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

export interface RawConn {
  /** The HTTP answer head (status line and headers). */
  readonly head: string;
  readonly status: number;
  /** The body of a refused upgrade. */
  readonly body: string;
  /** Sends a frame (or any bytes) and resolves with the next response frame. */
  send(bytes: Uint8Array): Promise<Uint8Array>;
  write(bytes: Uint8Array): void;
  /** Resolves when the service closed the connection (with whatever it sent after the last answer). */
  closed(): Promise<Buffer>;
  close(): void;
  readonly socket: Socket;
}

/** Opens the raw channel at a `unix:` or `tcp:` address. */
export function openRaw(address: string, secret: string | undefined, headers: Record<string, string> = { Connection: 'Upgrade', Upgrade: 'tpm2-frames' }, path = '/v1/tpm'): Promise<RawConn> {
  const s = address.startsWith('unix:') ? connect({ path: address.slice(5) }) : connect({ host: address.split(':')[1]!, port: Number(address.split(':')[2]) });
  const lines = [`GET ${path} HTTP/1.1`, 'Host: x', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  if (secret !== undefined) lines.push(`Authorization: Bearer ${secret}`);
  s.write(`${lines.join('\r\n')}\r\n\r\n`);
  let buf = Buffer.alloc(0);
  let ended = false;
  const wakers: Array<() => void> = [];
  const wake = (): void => {
    for (const w of wakers.splice(0)) w();
  };
  s.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    wake();
  });
  s.on('close', () => {
    ended = true;
    wake();
  });
  s.on('error', () => {});
  const until = async (ready: () => boolean): Promise<void> => {
    while (!ready()) {
      if (ended) throw new Error(`connection closed; had ${buf.length} bytes`);
      await new Promise<void>((r) => wakers.push(r));
    }
  };
  return (async () => {
    await until(() => buf.includes('\r\n\r\n'));
    const end = buf.indexOf('\r\n\r\n');
    const head = buf.subarray(0, end).toString('latin1');
    buf = buf.subarray(end + 4);
    const status = Number(head.split(' ')[1]);
    let body = '';
    if (status !== 101) {
      const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      await until(() => buf.length >= len).catch(() => {});
      body = buf.toString('utf8');
    }
    return {
      head,
      status,
      body,
      socket: s,
      write: (b) => void s.write(b),
      async send(bytes) {
        s.write(bytes);
        await until(() => buf.length >= 10 && buf.length >= buf.readUInt32BE(2));
        const size = buf.readUInt32BE(2);
        const out = new Uint8Array(buf.subarray(0, size));
        buf = buf.subarray(size);
        return out;
      },
      async closed() {
        await until(() => ended).catch(() => {});
        return buf;
      },
      close: () => s.destroy(),
    };
  })();
}

/** Bundles eve_tools_tpm2_tcti into `dir` (as the package's bin is built) and returns its path. */
export function bundleTcti(dir: string): string {
  const out = join(dir, 'eve_tools_tpm2_tcti.cjs');
  const b = spawnSync(
    join(REPO_ROOT, 'node_modules/.bin/esbuild'),
    ['src/bin/eve_tools_tpm2_tcti.ts', '--bundle', '--platform=node', '--format=cjs', `--outfile=${out}`, '--external:node-vsock-linux-x64-gnu', '--log-level=error'],
    { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 },
  );
  if (b.status !== 0) throw new Error(`esbuild failed: ${b.stderr}`);
  chmodSync(out, 0o755);
  return out;
}

export const u32At = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at);
export const rcOf = (b: Uint8Array): number => u32At(b, 6);

/** tpm2-tools and tpm2-tss's cmd TCTI (Debian libtss2-tcti-cmd0) are installed. */
export const stockToolsThere = (): boolean =>
  spawnSync('tpm2_getrandom', ['--version']).status === 0 && /libtss2-tcti-cmd\.so/.test(spawnSync('ldconfig', ['-p'], { encoding: 'utf8' }).stdout ?? '');

/** The environment of a stock tool run as `tenant` through the bundled TCTI helper at `tcti`, to the service at `address`. */
export function tctiEnv(tcti: string, address: string, secret: string | undefined): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    TPM2TOOLS_TCTI: `cmd:${process.execPath} ${tcti}`,
    EVE_TOOLS_CONFIG: 'none',
    EVE_TOOLS_SERVICE: address,
    EVE_TOOLS_SECRET: secret,
  };
}

/**
 * Resolves once the service has cleaned up every raw connection that ended (a `raw-close` log
 * line for each `raw-open`) and the queue has run what was before it. No time limit of its own:
 * how long that takes is the machine's business; the test's timeout ends a wait that never ends.
 */
export async function rawSettled(env: Pick<TestEnv, 'logs' | 'onTpm'>): Promise<void> {
  const count = (e: string): number => env.logs.filter((l) => l.event === e).length;
  while (count('raw-close') < count('raw-open')) await new Promise((r) => setTimeout(r, 10));
  await env.onTpm(async () => {});
}

/** What an attack corpus must not change: EVE's objects' Names, its NV index, the PCRs, the lockout counter. */
export async function eveSnapshot(t: import('../../src/tpm/index.js').TpmRunner, nv: number): Promise<unknown> {
  const names = [];
  for (const h of [0x81000001, 0x81000003]) names.push(Buffer.from((await t.run(C.ReadPublic, { objectHandle: h })).name).toString('hex'));
  const nvName = Buffer.from((await t.run(C.NV_ReadPublic, { nvIndex: nv })).nvName).toString('hex');
  const pcrs = (await t.run(C.PCR_Read, { pcrSelectionIn: [{ hash: TPM_ALG.SHA256, pcrSelect: Uint8Array.of(0xff, 0xff, 0xff) }] } as never)).pcrValues.map((v: Uint8Array) => Buffer.from(v).toString('hex'));
  const lockout = (await t.run(C.GetCapability, { capability: TPM_CAP.TPM_PROPERTIES as never, property: 0x20e, propertyCount: 1 })).capabilityData;
  return { names, nvName, pcrs, lockout };
}

/** Records the name of every command sent through `transport` into `sent` (what the chip was asked). */
export function recordCommands(transport: { send(frame: Uint8Array): Promise<Uint8Array> }, sent: string[]): void {
  const send = transport.send.bind(transport);
  transport.send = (frame: Uint8Array) => {
    const code = frame.length >= 10 ? new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(6) : 0;
    sent.push(COMMANDS.get(code)?.name ?? `0x${code.toString(16)}`);
    return send(frame);
  };
}

/**
 * The chip's DA failure count (TPM_PT_LOCKOUT_COUNTER), then cleared with the lockout
 * authorization (empty on swtpm), as EVE's own lockout reset would. A restart of swtpm without
 * TPM2_Shutdown is a non-orderly one, which the chip counts as one failure; with swtpm's 3
 * tries the firewall's total across apps then leaves the apps none (docs/FIREWALL.md "DA safety").
 */
export async function clearChipLockout(t: import('../../src/tpm/index.js').TpmRunner): Promise<number> {
  const caps = (await t.run(C.GetCapability, { capability: TPM_CAP.TPM_PROPERTIES as never, property: 0x20e, propertyCount: 1 })).capabilityData as unknown as { data: { property: number; value: number }[] };
  await t.run(DictionaryAttackLockReset, { lockHandle: TPM_RH.LOCKOUT });
  return caps.data.find((p) => p.property === 0x20e)?.value ?? 0;
}
