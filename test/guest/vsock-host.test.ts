/**
 * Host-only parts of the vsock adapter (no socket is ever opened here: this machine must not
 * make vsock connections): parsing `ss` output into peers, argument checks, and how the addon
 * is found by an ESM import and by a tool bundled to one CommonJS file.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectVsock, listenVsock, loadVsockAddon, VsockUnavailableError } from '../../src/service/vsock/index.js';
import { parseSsVsock, peerFromEntries } from '../../src/service/vsock/peer.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { bundle, guestDir, removeDir } from './harness.js';
import { skipUnlessCI } from '../helpers/ci.js';

// Captured in the guest (`ss --vsock -a -H -n -p`): a client, the listener, the accepted socket.
const SS_OUTPUT = [
  'v_str ESTAB  0      0      *:1483022416 1:5000       users:(("ss",pid=133,fd=24),("node",pid=122,fd=24))',
  'v_str LISTEN 0      0      *:5000       *:*          users:(("ss",pid=133,fd=19),("node",pid=122,fd=19))',
  'v_str ESTAB  0      0      1:5000       1:1483022416 users:(("ss",pid=133,fd=20),("node",pid=122,fd=20))',
  '',
].join('\n');

describe('peer CID from ss output', () => {
  const entries = parseSsVsock(SS_OUTPUT);

  it('parses every socket line', () => {
    expect(entries).toHaveLength(3);
    expect(entries[1]).toEqual({ state: 'LISTEN', local: { cid: undefined, port: 5000 }, peer: { cid: undefined, port: undefined }, users: [{ pid: 133, fd: 19 }, { pid: 122, fd: 19 }] });
  });

  it('finds the accepted socket by pid and fd', () => {
    expect(peerFromEntries(entries, 122, 20, 5000)).toEqual({ cid: 1, port: 1483022416 });
    expect(peerFromEntries(entries, 122, 24)).toEqual({ cid: 1, port: 5000 });
  });

  it('refuses what it cannot attribute exactly', () => {
    expect(() => peerFromEntries(entries, 122, 21)).toThrow(/does not list/); // unknown fd
    expect(() => peerFromEntries(entries, 999, 20)).toThrow(/does not list/); // another process
    expect(() => peerFromEntries(entries, 122, 19)).toThrow(/no definite vsock peer/); // the listener
    expect(() => peerFromEntries(entries, 122, 24, 5000)).toThrow(/bound to vsock port/); // not ours
    // a forged line naming our pid/fd (e.g. via a process name) makes it ambiguous, never wrong
    const forged = parseSsVsock(`${SS_OUTPUT}v_str ESTAB 0 0 1:5000 77:1 users:(("x",pid=122,fd=20))\n`);
    expect(() => peerFromEntries(forged, 122, 20)).toThrow(/more than once/);
  });

  it('ignores headers, garbage and out-of-range numbers', () => {
    const odd = parseSsVsock(
      'Netid State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\nnonsense\nv_str ESTAB 0 0 1:5000 99999999999:1 users:(("n",pid=1,fd=3))\n',
    );
    expect(odd).toEqual([]);
  });
});

describe('argument checks (nothing is opened)', () => {
  it('rejects bad CIDs and ports before touching the addon', async () => {
    await expect(connectVsock(-1, 80)).rejects.toThrow(RangeError);
    await expect(connectVsock(0xffffffff, 80)).rejects.toThrow(RangeError);
    await expect(connectVsock(2, 1.5)).rejects.toThrow(RangeError);
    await expect(connectVsock(1, 80, { timeoutMs: 0 })).rejects.toThrow(RangeError);
    await expect(listenVsock(0x1_0000_0000, () => {})).rejects.toThrow(RangeError);
  });
});

describe('finding the addon', () => {
  const installed = existsSync(resolve(REPO_ROOT, 'node_modules/node-vsock-linux-x64-gnu/node-vsock.linux-x64-gnu.node'));
  let dir: string | undefined;
  let tool = '';

  beforeAll(async () => {
    dir = guestDir('vsock-probe');
    mkdirSync(join(dir, 'bin'));
    tool = await bundle('test/guest/fixtures/addon-probe.ts', join(dir, 'bin'), 'probe');
  }, 60_000);
  afterAll(() => removeDir(dir));

  const runTool = (env: Record<string, string> = {}): { status: number | null; out: string } => {
    const e: Record<string, string | undefined> = { ...process.env, ...env };
    if (!('EVE_TOOLS_VSOCK_ADDON' in env)) delete e.EVE_TOOLS_VSOCK_ADDON;
    const r = spawnSync(process.execPath, [tool], { cwd: dir, env: e, encoding: 'utf8' });
    return { status: r.status, out: r.stdout.trim() };
  };

  it.skipIf(skipUnlessCI(!installed))('from an ESM import (the installed optional dependency)', () => {
    expect(typeof loadVsockAddon().VsockSocket).toBe('function');
  });

  it('a bundled tool without the addon explains what is missing', () => {
    const r = runTool();
    expect(r.status).toBe(3);
    expect(r.out).toMatch(/^unavailable: .*node-vsock-linux-x64-gnu is not installed.*EVE_TOOLS_VSOCK_ADDON/);
  });

  it.skipIf(skipUnlessCI(!installed))('a bundled tool finds it in node_modules next to it, or via EVE_TOOLS_VSOCK_ADDON', () => {
    const src = resolve(REPO_ROOT, 'node_modules/node-vsock-linux-x64-gnu');
    cpSync(src, join(dir!, 'bin/node_modules/node-vsock-linux-x64-gnu'), { recursive: true });
    expect(runTool()).toEqual({ status: 0, out: 'ok function' });
    cpSync(src, join(dir!, 'elsewhere'), { recursive: true });
    rmSync(join(dir!, 'bin/node_modules'), { recursive: true, force: true });
    expect(runTool({ EVE_TOOLS_VSOCK_ADDON: join(dir!, 'elsewhere') })).toEqual({ status: 0, out: 'ok function' });
    const bad = runTool({ EVE_TOOLS_VSOCK_ADDON: join(dir!, 'nope') });
    expect(bad.status).toBe(3);
    expect(bad.out).toMatch(/^unavailable: .*EVE_TOOLS_VSOCK_ADDON=.*nope/);
  });

  it('VsockUnavailableError is an Error with its own name', () => {
    const e = new VsockUnavailableError('x');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('VsockUnavailableError');
  });
});
