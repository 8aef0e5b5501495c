/**
 * The vsock addon itself (native/vsock/vsock.c): built from source with node-gyp, cross-built for
 * linux x64/arm64 × glibc/musl by scripts/build-addon.sh and checked with readelf, the shipped
 * prebuilds/ checked the same way, the x64 glibc build loaded here and the arm64 glibc build
 * loaded under qemu-aarch64-static by Debian 12's arm64 node (unpacked into a sysroot).
 * No vsock connection is made on this machine (that happens in the qemu guest suites); socket()
 * is exercised, and answers a descriptor or EAFNOSUPPORT depending on the kernel.
 * The musl builds are checked with readelf only: no musl Node runs here.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/shared.js';
import { skipUnlessCI } from '../helpers/ci.js';

const TARGETS = ['x64-glibc', 'x64-musl', 'arm64-glibc', 'arm64-musl'] as const;
const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const run = (cmd: string, args: string[], opts: { cwd?: string; timeout?: number } = {}) =>
  spawnSync(cmd, args, { encoding: 'utf8', timeout: opts.timeout ?? 120_000, cwd: opts.cwd ?? REPO_ROOT });
const tmp = mkdtempSync(join(tmpdir(), 'vsock-addon-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** What readelf says about a built addon. */
function elfFacts(file: string): { machine: string; needed: string[]; napiEntry: boolean; interp: boolean } {
  const h = run('readelf', ['-h', '-d', '-l', '--dyn-syms', '-W', file]).stdout;
  return {
    machine: /Machine:\s+(.+)/.exec(h)?.[1]?.trim() ?? '',
    needed: [...h.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]!),
    napiEntry: /FUNC\s+GLOBAL\s+DEFAULT\s+\d+\s+napi_register_module_v1$/m.test(h),
    interp: /INTERP/.test(h),
  };
}

function expectFacts(file: string, target: (typeof TARGETS)[number]): void {
  const f = elfFacts(file);
  expect(f.machine, file).toBe(target.startsWith('x64') ? 'Advanced Micro Devices X86-64' : 'AArch64');
  expect(f.needed, file).toEqual([target.endsWith('glibc') ? 'libc.so.6' : 'libc.so']);
  expect(f.napiEntry, file).toBe(true);
  expect(f.interp, `${file} is a shared object, no interpreter`).toBe(false);
}

/** Loads `file` in `node` (argv prefix) and reports what socket()/getsockname/accept do. */
const PROBE = `
const m = { exports: {} };
process.dlopen(m, process.argv[1]);
const a = m.exports, out = { arch: process.arch, abi: a.abi, functions: Object.keys(a).filter((k) => typeof a[k] === 'function').sort() };
try { a.close(1 << 30); } catch (e) { out.badClose = e.code; }
try {
  const fd = a.socket();
  out.socket = 'ok';
  out.name = a.getsockname(fd);
  try { a.accept(fd); } catch (e) { out.acceptUnlistened = e.code; }
  try { a.getpeername(fd); } catch (e) { out.peerUnconnected = e.code; }
  const w = a.watch(fd, true, () => {});
  a.unwatch(w);
  a.close(fd);
} catch (e) { out.socket = e.code; out.message = e.message; }
console.log(JSON.stringify(out));
`;

function probe(node: string[], file: string): Record<string, unknown> {
  const r = run(node[0]!, [...node.slice(1), '-e', PROBE, file], { timeout: 90_000 });
  expect(r.status, `${node.join(' ')}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

function expectProbe(p: Record<string, unknown>, arch: string): void {
  expect(p.arch).toBe(arch);
  expect(p.abi).toBe(1);
  expect(p.functions).toEqual(['accept', 'bind', 'close', 'connect', 'connectResult', 'getpeername', 'getsockname', 'listen', 'read', 'setRef', 'socket', 'unwatch', 'vtpmNewDev', 'watch', 'write']);
  expect(p.badClose).toBe('EBADF');
  if (p.socket === 'ok') {
    // a fresh socket: bound to nothing, not listening, not connected
    expect(p.name).toEqual({ cid: 0xffffffff, port: 0xffffffff });
    expect(p.acceptUnlistened).toBe('EINVAL');
    expect(p.peerUnconnected).toBe('ENOTCONN');
  } else {
    expect(p.socket, String(p.message)).toMatch(/^(EAFNOSUPPORT|ENODEV)$/);
  }
}

const nodeGyp = join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
const nodeDir = resolve(dirname(process.execPath), '..');
const canGyp = existsSync(nodeGyp) && existsSync(join(nodeDir, 'include/node/node_api.h')) && has('make') && has('gcc') && has('python3');

describe('node-gyp build from source', () => {
  it.skipIf(skipUnlessCI(!canGyp, "npm's node-gyp, make, gcc, python3 and Node's headers"))(
    'builds native/vsock with node-gyp and loads in this Node',
    () => {
      const src = join(tmp, 'gyp');
      cpSync(join(REPO_ROOT, 'native/vsock'), src, { recursive: true, filter: (p) => !p.includes('/build') });
      const r = run(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${nodeDir}`], { cwd: src, timeout: 180_000 });
      expect(r.status, r.stderr).toBe(0);
      const built = join(src, 'build/Release/vsock.node');
      expectFacts(built, 'x64-glibc');
      expectProbe(probe([process.execPath], built), 'x64');
    },
    200_000,
  );
});

const crossMissing = !has('aarch64-linux-gnu-gcc') || !existsSync('/usr/lib/x86_64-linux-musl/libc.so') || !existsSync('/usr/lib/aarch64-linux-musl/libc.so') || !has('readelf');

describe('scripts/build-addon.sh: the four prebuilds', () => {
  it.skipIf(skipUnlessCI(crossMissing, 'gcc-aarch64-linux-gnu, musl-tools, musl-dev:arm64'))(
    'cross-builds all four and each passes its readelf checks',
    () => {
      const out = join(tmp, 'prebuilds');
      const r = run(join(REPO_ROOT, 'scripts/build-addon.sh'), [out]);
      expect(r.status, r.stderr).toBe(0);
      for (const t of TARGETS) {
        expect(r.stdout).toContain(`build-addon: linux-${t} ok`);
        expectFacts(join(out, `linux-${t}/vsock.node`), t);
        // The build is byte-reproducible with Debian 12's compilers: the shipped file must be this one.
        const shipped = join(REPO_ROOT, `prebuilds/linux-${t}/vsock.node`);
        expect(readFileSync(join(out, `linux-${t}/vsock.node`)).equals(readFileSync(shipped)), `${shipped} is stale: run scripts/build-addon.sh`).toBe(true);
      }
    },
    150_000,
  );

  it("the script's readelf checks reject a build made for another target", () => {
    const f = join(REPO_ROOT, 'prebuilds/linux-x64-glibc/vsock.node');
    const check = (t: string) => run(join(REPO_ROOT, 'scripts/build-addon.sh'), ['--check', t, f]);
    expect(check('x64-glibc').status).toBe(0);
    expect(check('arm64-glibc').stderr).toMatch(/is not AArch64/);
    expect(check('x64-musl').stderr).toMatch(/does not need libc\.so$/m);
    expect(check('x64-musl').status).not.toBe(0);
    expect(run(join(REPO_ROOT, 'scripts/build-addon.sh'), [join(tmp, 'bad'), 'riscv-glibc']).stderr).toMatch(/unknown target riscv-glibc/);
  });

  for (const t of TARGETS) {
    it(`the shipped prebuilds/linux-${t}/vsock.node: machine, libc, N-API entry point`, () => {
      const f = join(REPO_ROOT, `prebuilds/linux-${t}/vsock.node`);
      expect(existsSync(f), `${f} missing: run scripts/build-addon.sh`).toBe(true);
      expectFacts(f, t);
    });
  }

  it('the shipped x64 glibc prebuild loads in this Node', () => {
    expectProbe(probe([process.execPath], join(REPO_ROOT, 'prebuilds/linux-x64-glibc/vsock.node')), 'x64');
  });
});

describe('the watcher (libuv poll) on a real descriptor', () => {
  it('calls back on readiness, can be stopped from its own callback, and then lets the process exit', () => {
    // A FIFO opened read-write is writable at once; vsock fds behave alike but cannot be connected here.
    const fifo = join(tmp, 'fifo');
    expect(run('mkfifo', [fifo]).status).toBe(0);
    const script = `
      const m = { exports: {} };
      process.dlopen(m, process.argv[1]);
      const fs = require('fs');
      const fd = fs.openSync(process.argv[2], fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      let calls = 0;
      const w = m.exports.watch(fd, true, (status) => {
        calls++;
        m.exports.unwatch(w);
        m.exports.unwatch(w); // twice is harmless
        setTimeout(() => console.log(JSON.stringify({ status, calls })), 20);
      });
    `;
    const r = run(process.execPath, ['-e', script, join(REPO_ROOT, 'prebuilds/linux-x64-glibc/vsock.node'), fifo], { timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0); // not killed by the timeout: the stopped watcher holds no loop
    expect(JSON.parse(r.stdout.trim())).toEqual({ status: 0, calls: 1 });
  });
});

describe('arm64 glibc under qemu-user', () => {
  const arm64 = spawnSync('dpkg', ['--print-foreign-architectures'], { encoding: 'utf8' }).stdout?.split('\n').includes('arm64') ?? false;
  const missing = !has('qemu-aarch64-static') || !arm64;
  it.skipIf(skipUnlessCI(missing, 'qemu-user-static and the arm64 dpkg architecture'))(
    "Debian 12's arm64 node loads prebuilds/linux-arm64-glibc/vsock.node and calls it",
    () => {
      const sys = run(join(REPO_ROOT, 'test/native/arm64-node-sysroot.sh'), [], { cwd: tmp, timeout: 240_000 });
      expect(sys.status, sys.stderr).toBe(0);
      const root = sys.stdout.trim();
      const p = probe(['qemu-aarch64-static', '-L', root, join(root, 'usr/bin/node')], join(REPO_ROOT, 'prebuilds/linux-arm64-glibc/vsock.node'));
      expectProbe(p, 'arm64');
    },
    300_000,
  );
});
