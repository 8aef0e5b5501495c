/**
 * deploy/systemd: the units are checked by systemd's own `systemd-analyze verify` (in a scratch
 * root holding the units, the system's stock units they depend on, and a stand-in executable
 * at ExecStart's path, since verify insists the command exists), which must print nothing;
 * then what the service relies on: the vsock socket is passed listening (Accept=no), ExecStart
 * serves it (`--listen systemd`) and the state directory systemd makes is the one it is given.
 * Running them needs systemd as PID 1, which this test machine is not (said in docs/EVE.md).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { skipUnlessCI } from '../helpers/ci.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { listenTargets } from '../../src/service/http/socket-activation.js';

const UNITS = join(REPO_ROOT, 'deploy/systemd');
const SERVICE = 'eve-tpm-service.service';
const SOCKET = 'eve-tpm-service.socket';
const read = (name: string): string => readFileSync(join(UNITS, name), 'utf8');

/** `Key=value` lines of a unit (comments and sections dropped). */
function settings(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (kv) m.set(kv[1]!, [...(m.get(kv[1]!) ?? []), kv[2]!]);
  }
  return m;
}

const haveAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
const STOCK = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((d) => existsSync(join(d, 'sysinit.target')));

describe.skipIf(skipUnlessCI(!haveAnalyze || !STOCK, 'systemd-analyze (Debian package systemd)'))('systemd units: systemd-analyze verify', () => {
  const roots: string[] = [];
  afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

  /** Verifies the two units, the service text optionally changed; returns exit status and output. */
  function verify(edit: (unitText: string) => string = (t) => t): { status: number | null; output: string } {
    const root = mkdtempSync(join(tmpdir(), 'units-'));
    roots.push(root);
    mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
    mkdirSync(join(root, 'usr/lib/systemd'), { recursive: true });
    cpSync(STOCK!, join(root, 'usr/lib/systemd/system'), { recursive: true });
    writeFileSync(join(root, 'etc/systemd/system', SERVICE), edit(read(SERVICE)));
    writeFileSync(join(root, 'etc/systemd/system', SOCKET), read(SOCKET));
    const exe = settings(read(SERVICE)).get('ExecStart')![0]!.split(' ')[0]!;
    mkdirSync(join(root, exe, '..'), { recursive: true });
    writeFileSync(join(root, exe), '#!/bin/sh\n');
    chmodSync(join(root, exe), 0o755);
    const r = spawnSync('systemd-analyze', ['verify', `--root=${root}`, '--man=no', SOCKET, SERVICE], { encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, output: (r.stdout + r.stderr).trim() };
  }

  it('accepts both units without a single warning', () => {
    expect(verify()).toEqual({ status: 0, output: '' });
  });

  it('would notice a mistake (a misspelt hardening key, a bad value)', () => {
    expect(verify((t) => t.replace('ProtectSystem=strict', 'ProtectSytem=strict')).output).toMatch(/Unknown key 'ProtectSytem'/);
    expect(verify((t) => t.replace('DevicePolicy=closed', 'DevicePolicy=shut')).output).toMatch(/device policy.*shut/i);
  });
});

describe('systemd units: what the service relies on', () => {
  const socket = settings(read(SOCKET));
  const service = settings(read(SERVICE));
  const exec = service.get('ExecStart')![0]!.split(/\s+/);
  const flag = (name: string): string | undefined => exec[exec.indexOf(name) + 1];

  it('passes the vsock port listening, to one process', () => {
    expect(socket.get('ListenStream')).toEqual(['vsock::8877']);
    expect(socket.get('Accept')).toEqual(['no']);
    expect(socket.get('Service')).toEqual([SERVICE]);
  });

  it('serves what systemd passes, on the directories systemd makes', () => {
    expect(flag('--listen')).toBe('systemd');
    // The address really parses to the inherited sockets (none here: the error proves the path).
    expect(() => listenTargets([flag('--listen')!], {}, 1)).toThrow(/no sockets were passed/);
    expect(service.get('Requires')).toEqual([SOCKET]);
    expect(flag('--state-dir')).toBe(`/var/lib/${service.get('StateDirectory')![0]}`);
    expect(flag('--tenants')!.startsWith(`/etc/${service.get('ConfigurationDirectory')![0]}/`)).toBe(true);
    expect(flag('--tpm')).toBe('/dev/tpmrm0');
  });

  it('is hardened, leaving only the TPM device and the state directory', () => {
    expect(service.get('DevicePolicy')).toEqual(['closed']);
    expect(service.get('DeviceAllow')).toEqual(['/dev/tpmrm0 rw']);
    expect(service.get('ProtectSystem')).toEqual(['strict']);
    expect(service.get('NoNewPrivileges')).toEqual(['yes']);
    expect(service.get('CapabilityBoundingSet')).toEqual(['']);
    expect(service.get('RestrictAddressFamilies')).toEqual(['AF_UNIX AF_VSOCK']);
    // Node's JIT writes code: this one must stay off or the service cannot start.
    expect(service.has('MemoryDenyWriteExecute')).toBe(false);
  });
});
