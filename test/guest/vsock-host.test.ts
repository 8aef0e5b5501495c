/**
 * Host-only parts of the vsock adapter (no vsock connection is ever made here): argument checks,
 * and how the addon is found by an ESM import and by a tool bundled to one CommonJS file.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectVsock, listenVsock, loadVsockAddon, platformTag, VsockUnavailableError } from '../../src/service/vsock/index.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { bundle, guestDir, removeDir } from './harness.js';
import { skipUnlessCI } from '../helpers/ci.js';

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
  const prebuilt = resolve(REPO_ROOT, 'prebuilds', platformTag(), 'vsock.node');
  const installed = existsSync(prebuilt);
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

  it.skipIf(skipUnlessCI(!installed))('from an ESM import (the repository prebuilds/ or a node-gyp build)', () => {
    expect(typeof loadVsockAddon().accept).toBe('function');
  });

  it('a bundled tool without the addon says in one line what to do', () => {
    const r = runTool();
    expect(r.status).toBe(3);
    expect(r.out).toMatch(new RegExp(`^unavailable: vsock is not available: no vsock addon for ${platformTag()}; build one with .*EVE_TOOLS_VSOCK_ADDON=`));
    expect(r.out.split('\n')).toHaveLength(1);
  });

  it.skipIf(skipUnlessCI(!installed))('a bundled tool finds prebuilds/ above it, vsock.node beside it, or EVE_TOOLS_VSOCK_ADDON', () => {
    const rel = join('prebuilds', platformTag(), 'vsock.node');
    mkdirSync(join(dir!, rel, '..'), { recursive: true });
    cpSync(prebuilt, join(dir!, rel)); // as in the npm package: dist/bin/tool.cjs + prebuilds/
    expect(runTool()).toEqual({ status: 0, out: 'ok function' });
    rmSync(join(dir!, 'prebuilds'), { recursive: true, force: true });
    cpSync(prebuilt, join(dir!, 'bin/vsock.node'));
    expect(runTool()).toEqual({ status: 0, out: 'ok function' });
    rmSync(join(dir!, 'bin/vsock.node'));
    cpSync(prebuilt, join(dir!, 'elsewhere.node'));
    expect(runTool({ EVE_TOOLS_VSOCK_ADDON: join(dir!, 'elsewhere.node') })).toEqual({ status: 0, out: 'ok function' });
    const bad = runTool({ EVE_TOOLS_VSOCK_ADDON: join(dir!, 'nope') });
    expect(bad.status).toBe(3);
    expect(bad.out).toMatch(/^unavailable: .*EVE_TOOLS_VSOCK_ADDON=.*nope/);
    // a .node that is not ours
    const other = join(dir!, 'other.node');
    cpSync(process.execPath, other);
    expect(runTool({ EVE_TOOLS_VSOCK_ADDON: other }).out).toMatch(/^unavailable: .*cannot load the vsock addon from EVE_TOOLS_VSOCK_ADDON=/);
  });

  it('VsockUnavailableError is an Error with its own name', () => {
    const e = new VsockUnavailableError('x');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('VsockUnavailableError');
  });
});
