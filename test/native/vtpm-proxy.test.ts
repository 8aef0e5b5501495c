/**
 * The vTPM-proxy part of the native addon and the daemon's refusals, on this machine (which has
 * no /dev/vtpmx: the device itself is made and used in the qemu guest, test/guest/vtpm-proxy.test.ts).
 * The addon's read()/write() are checked on a real FIFO; vtpmNewDev() on a missing path and on a
 * character device that is not the proxy's; runVtpmd() in-process for every refusal before a
 * device exists (usage, unreachable channel, no /dev/vtpmx), with its exit status and message.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadVsockAddon } from '../../src/service/vsock/addon.js';
import { commandCode, responseCode, VtpmDevice, VtpmProxyError } from '../../src/guest/vtpm-proxy.js';
import { runVtpmd, VTPMD_EXIT } from '../../src/guest/vtpmd.js';

const tmp = mkdtempSync(join(tmpdir(), 'vtpm-proxy-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Io {
  out: string;
  err: string;
}

async function vtpmd(args: string[], env: Record<string, string> = {}): Promise<Io & { code: number }> {
  const io = { out: '', err: '' };
  const saved = { ...process.env };
  Object.assign(process.env, { EVE_TOOLS_CONFIG: 'none' }, env);
  try {
    const code = await runVtpmd(args, {
      stdout: { write: (s: string) => (io.out += s) },
      stderr: { write: (s: string) => (io.err += s) },
      signal: new AbortController().signal,
    });
    return { ...io, code };
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

describe('the addon: vtpmNewDev, read, write', () => {
  const addon = loadVsockAddon() as unknown as {
    vtpmNewDev(p: string): unknown;
    read(fd: number, b: Uint8Array): number | null;
    write(fd: number, b: Uint8Array): number;
  };

  it('vtpmNewDev names the errno: a missing control device, and one that is not the proxy', () => {
    expect(() => addon.vtpmNewDev(join(tmp, 'no-vtpmx'))).toThrow(expect.objectContaining({ code: 'ENOENT', message: expect.stringMatching(/^open: /) }));
    expect(() => addon.vtpmNewDev('/dev/null')).toThrow(expect.objectContaining({ code: 'ENOTTY', message: expect.stringMatching(/^ioctl VTPM_PROXY_IOC_NEW_DEV: /) }));
    expect(() => addon.vtpmNewDev('')).toThrow(/control device's path/);
  });

  it('read gives null when nothing is ready, then the bytes written; write returns the count', () => {
    const fifo = join(tmp, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    try {
      const buf = new Uint8Array(64);
      expect(addon.read(fd, buf)).toBeNull();
      expect(addon.write(fd, responseCode(0x101))).toBe(10);
      expect(addon.read(fd, buf)).toBe(10);
      expect(commandCode(buf.subarray(0, 10))).toBe(0x101);
      expect(() => addon.read(fd, new Uint16Array(4) as unknown as Uint8Array)).toThrow(/expected a Uint8Array/);
      expect(() => addon.write(1 << 30, buf)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    } finally {
      closeSync(fd);
    }
  });
});

describe('VtpmDevice: refusals say what to do', () => {
  it('no control device: modprobe', () => {
    expect(() => new VtpmDevice({ control: join(tmp, 'vtpmx') })).toThrow(VtpmProxyError);
    expect(() => new VtpmDevice({ control: join(tmp, 'vtpmx') })).toThrow(/the kernel's vTPM proxy is not loaded \(modprobe tpm_vtpm_proxy\)/);
  });

  it('a character device that is not the proxy', () => {
    expect(() => new VtpmDevice({ control: '/dev/null' })).toThrow(/\/dev\/null is not the vTPM proxy's control device/);
  });

  it('frames: the code of a command, a bare response', () => {
    expect(commandCode(new Uint8Array([0x80, 1, 0, 0, 0, 12, 0, 0, 1, 0x7b, 0, 8]))).toBe(0x17b);
    expect(commandCode(new Uint8Array(9))).toBe(-1);
    expect([...responseCode(0x143)]).toEqual([0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x43]);
  });
});

describe('runVtpmd: exit status and one line before any device is made', () => {
  it('--help, --version', async () => {
    const h = await vtpmd(['--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/^Usage: eve-tpm-vtpmd/);
    expect((await vtpmd(['--version'])).out).toMatch(/^eve-tpm-vtpmd \d+\.\d+\.\d+/);
  });

  it('usage errors: exit 2', async () => {
    const bad = await vtpmd(['--bogus']);
    expect(bad.code).toBe(VTPMD_EXIT.USAGE);
    expect(bad.err).toMatch(/^eve-tpm-vtpmd: .*--bogus.*\(try --help\)\n$/);
    expect((await vtpmd(['--tpm', '/dev/null', '--service', 'unix:/x'])).err).toMatch(/exclude each other/);
    expect((await vtpmd(['--tpm', '/dev/null', '--ready-timeout', '0'])).code).toBe(VTPMD_EXIT.USAGE);
    const addr = await vtpmd(['--service', 'nope:1']);
    expect(addr.code).toBe(VTPMD_EXIT.USAGE);
    expect(addr.err).toMatch(/--service/);
  });

  it('the TPM or the service cannot be used: exit 4', async () => {
    const missing = await vtpmd(['--tpm', join(tmp, 'tpm0')]);
    expect(missing).toMatchObject({ code: VTPMD_EXIT.NO_CHANNEL, err: `eve-tpm-vtpmd: no TPM device at ${join(tmp, 'tpm0')}\n` });
    const notDev = await vtpmd(['--tpm', tmp]);
    expect(notDev.err).toMatch(/is not a TPM device \(not a character device\)/);
    const none = await vtpmd(['--service', `unix:${join(tmp, 'no.sock')}`], { EVE_TOOLS_SECRET: 's' });
    expect(none.code).toBe(VTPMD_EXIT.NO_CHANNEL);
    expect(none.err).toMatch(/^eve-tpm-vtpmd: cannot reach the TPM service at unix:/);
  });

  it('a service that refuses the upgrade: exit 4 with its answer', async () => {
    const sock = join(tmp, 'refuse.sock');
    const server = createServer((s) => {
      s.once('data', () => s.end('HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\r\n{"error":{"message":"unknown secret"}}'));
    });
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const r = await vtpmd(['--service', `unix:${sock}`], { EVE_TOOLS_SECRET: 'wrong' });
      expect(r.code).toBe(VTPMD_EXIT.NO_CHANNEL);
      expect(r.err).toMatch(/HTTP 401.*unknown secret/);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('no /dev/vtpmx: exit 3, modprobe', async () => {
    const r = await vtpmd(['--tpm', '/dev/null', '--vtpmx', join(tmp, 'vtpmx')]);
    expect(r.code).toBe(VTPMD_EXIT.NO_DEVICE);
    expect(r.err).toBe(`eve-tpm-vtpmd: no ${join(tmp, 'vtpmx')}: the kernel's vTPM proxy is not loaded (modprobe tpm_vtpm_proxy)\n`);
  });
});
