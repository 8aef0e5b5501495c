/**
 * `tenant add --raw-tpm device`: the user-data carries eve-tpm-vtpmd.cjs and the setup script that
 * runs it (src/guest/vtpmd-setup.ts); `cloud-init schema` accepts it, embedded and downloaded. The
 * setup script parses under dash and busybox sh, and its refusals run for real under dash (a fake
 * `modprobe` and `id` in PATH: no kernel module is loaded here; busybox would run its own applets). deploy/install.sh's `--raw-tpm` refusals too. The device
 * itself, started by this user-data in a qemu guest: test/guest/vtpm-proxy.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cloudInitUserData, loadEmbeddedTools, ToolsPayloadError } from '../../src/service/tenants/cloud-init.js';
import { GUEST_VTPMD, GUEST_VTPMD_SETUP, guestSetupScript } from '../../src/service/tenants/guest-setup.js';
import { tenantAdd } from '../../src/service/tenants/tenant-add.js';
import { vtpmdSetupScript } from '../../src/guest/vtpmd-setup.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { bundleExecutables } from '../guest/harness.js';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

interface WriteFile {
  path: string;
  content: string;
  permissions?: string;
  encoding?: string;
  append?: boolean;
}
interface UserData {
  write_files: WriteFile[];
  runcmd: unknown[];
}

/** YAML → JSON with PyYAML's safe_load, as cloud-init reads user-data. */
function yamlToJson(file: string): UserData {
  const r = spawnSync('python3', ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`not YAML: ${r.stderr}`);
  return JSON.parse(r.stdout) as UserData;
}

function schema(file: string): { status: number | null; out: string } {
  const r = spawnSync('cloud-init', ['schema', '--config-file', file], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'device-ud-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BUNDLE = new TextEncoder().encode('#!/usr/bin/env node\n// the tools bundle\n');
const DAEMON = new TextEncoder().encode('#!/usr/bin/env node\n// eve-tpm-vtpmd\n');

describe('the user-data of --raw-tpm device', () => {
  const make = (rawTpm: 'device' | 'none' | 'tcti') =>
    cloudInitUserData({ tenantId: 'app', secret: 's3cret', service: 'vsock:2:8877', tools: { embed: { bundle: BUNDLE, addons: [], vtpmd: DAEMON } }, rawTpm });

  it('embeds the daemon and its setup script, runs it after the tools, and sets no TCTI', () => {
    const file = join(dir, 'device.yaml');
    writeFileSync(file, make('device'));
    const ud = yamlToJson(file);
    const byPath = new Map(ud.write_files.map((f) => [f.path, f]));
    const daemon = byPath.get(GUEST_VTPMD)!;
    expect(daemon).toMatchObject({ permissions: '0755', encoding: 'gz+b64' });
    expect(gunzipSync(Buffer.from(daemon.content, 'base64'))).toEqual(Buffer.from(DAEMON));
    expect(byPath.get(GUEST_VTPMD_SETUP)).toMatchObject({ permissions: '0755', content: vtpmdSetupScript(GUEST_VTPMD) });
    const setup = byPath.get('/usr/local/lib/eve-tools/setup.sh')!.content;
    expect(setup).toBe(guestSetupScript('device'));
    expect(setup.trimEnd().split('\n').pop()).toBe(`sh ${GUEST_VTPMD_SETUP}`);
    // device: tpm2-tss's default TCTI is the device; only the setup script writes one, for /dev/tpmrmN ≠ 0.
    expect([...byPath.keys()]).not.toContain('/etc/environment');
    expect(ud.runcmd).toEqual([['sh', '/usr/local/lib/eve-tools/setup.sh']]);
    // The other modes carry no daemon.
    for (const mode of ['none', 'tcti'] as const) expect(make(mode)).not.toContain(GUEST_VTPMD);
  });

  it('the setup scripts are POSIX sh (dash -n, busybox sh -n)', () => {
    const shells = [['dash', '-n'], ...(has('busybox') ? [['busybox', 'sh', '-n']] : [])];
    for (const script of [vtpmdSetupScript(GUEST_VTPMD), guestSetupScript('device')]) {
      const f = join(dir, 'check.sh');
      writeFileSync(f, script);
      for (const sh of shells) {
        const r = spawnSync(sh[0]!, [...sh.slice(1), f], { encoding: 'utf8' });
        expect(r.status, `${sh.join(' ')}: ${r.stderr}`).toBe(0);
      }
    }
  });

  it.skipIf(skipUnlessCI(!has('cloud-init') || !has('python3'), 'cloud-init, python3'))('cloud-init schema: valid, embedded and downloaded', () => {
    const embedded = join(dir, 'schema-embedded.yaml');
    writeFileSync(embedded, make('device'));
    const url = join(dir, 'schema-url.yaml');
    const downloaded = cloudInitUserData({ tenantId: 'app', secret: 's', service: 'vsock:2:8877', tools: { url: 'https://example.com/eve-tools.tar.gz', sha256: 'a'.repeat(64) }, rawTpm: 'device' });
    writeFileSync(url, downloaded);
    expect(downloaded).toContain('sh "$work/eve-tools/install.sh" --prefix /usr/local --raw-tpm device');
    for (const f of [embedded, url]) {
      const r = schema(f);
      expect(r.out, f).toMatch(/Valid cloud-config/);
      expect(r.status).toBe(0);
    }
  });
});

describe('the setup script refuses clearly (dash)', () => {
  /** Runs the script with fake `id` (root) and `modprobe` (fails like a kernel without the module). */
  function runSetup(shell: string[], daemon: string): { status: number | null; stderr: string } {
    const bin = join(dir, 'fakebin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'id'), '#!/bin/sh\necho 0\n');
    writeFileSync(join(bin, 'modprobe'), '#!/bin/sh\necho "modprobe: FATAL: Module $1 not found in directory /lib/modules/test" >&2\nexit 1\n');
    chmodSync(join(bin, 'id'), 0o755);
    chmodSync(join(bin, 'modprobe'), 0o755);
    const script = join(dir, 'vtpmd-setup.sh');
    writeFileSync(script, vtpmdSetupScript(daemon));
    const r = spawnSync(shell[0]!, [...shell.slice(1), script], { env: { PATH: `${bin}:${process.env.PATH}` }, encoding: 'utf8' });
    return { status: r.status, stderr: r.stderr };
  }
  const shells = [['dash']];

  it('no daemon installed', () => {
    for (const sh of shells) {
      const r = runSetup(sh, join(dir, 'no-such.cjs'));
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(`eve-tools: no ${join(dir, 'no-such.cjs')}: the TPM device daemon was not installed\n`);
    }
  });

  it.skipIf(existsSync('/dev/vtpmx'))('the kernel has no tpm_vtpm_proxy: says so, makes nothing', () => {
    const daemon = join(dir, 'eve-tpm-vtpmd.cjs');
    writeFileSync(daemon, DAEMON);
    for (const sh of shells) {
      const r = runSetup(sh, daemon);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(
        "eve-tools: cannot load the kernel module tpm_vtpm_proxy (modprobe: FATAL: Module tpm_vtpm_proxy not found in directory /lib/modules/test): this VM's kernel needs CONFIG_TCG_VTPM_PROXY (a module in Debian's and Ubuntu's generic kernels); no TPM device was made\n",
      );
    }
  });
});

describe('tenant add --raw-tpm device', () => {
  const tools = (name: string, withDaemon: boolean): string => {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'eve-tools.cjs'), BUNDLE);
    if (withDaemon) writeFileSync(join(d, 'eve-tpm-vtpmd.cjs'), DAEMON);
    return join(d, 'eve-tools.cjs');
  };
  const tenantsFile = (): string => join(dir, 'tenants.json');
  const ids = (): string[] => (existsSync(tenantsFile()) ? (JSON.parse(readFileSync(tenantsFile(), 'utf8')) as { tenants: { id: string }[] }).tenants.map((t) => t.id) : []);

  it('is accepted and embeds the daemon found beside the tools bundle', async () => {
    const userData = join(dir, 'added.yaml');
    const r = await tenantAdd({ id: 'dev', tenants: tenantsFile(), serviceAddress: 'vsock:2:8877', userData, toolsBundle: tools('with', true), prebuilds: join(dir, 'none'), rawTpm: 'device' });
    expect(r.stderr).toContain(`written to ${userData}`);
    const text = readFileSync(userData, 'utf8');
    expect(text).toContain(`  - path: ${GUEST_VTPMD}\n`);
    expect(text).toContain(`  - path: ${GUEST_VTPMD_SETUP}\n`);
    expect(ids()).toEqual(['dev']);
  });

  it('without the daemon beside the bundle: one clear error, no tenant added', async () => {
    const bundle = tools('without', false);
    await expect(tenantAdd({ id: 'nodaemon', tenants: tenantsFile(), serviceAddress: 'vsock:2:8877', userData: join(dir, 'x.yaml'), toolsBundle: bundle, prebuilds: join(dir, 'none'), rawTpm: 'device' })).rejects.toThrow(
      `--raw-tpm device embeds the device daemon, but ${join(dir, 'without', 'eve-tpm-vtpmd.cjs')} cannot be read (ENOENT): run 'npm run build' (it is built beside eve-tools.cjs)`,
    );
    expect(ids()).toEqual(['dev']);
    expect(() => loadEmbeddedTools(bundle, join(dir, 'none'), { vtpmd: true })).toThrow(ToolsPayloadError);
    expect(loadEmbeddedTools(bundle, join(dir, 'none')).vtpmd).toBeUndefined();
  });
});

describe('deploy/install.sh --raw-tpm', () => {
  const script = join(REPO_ROOT, 'deploy/install.sh');
  /** A built tree as install.sh finds it: placeholder tools, and the real daemon bundle if asked. */
  const tree = async (name: string, daemon: boolean): Promise<string> => {
    const from = join(dir, name);
    mkdirSync(join(from, 'bin'), { recursive: true });
    for (const t of /^TOOLS="([^"]+)"/m.exec(readFileSync(script, 'utf8'))![1]!.split(' ')) writeFileSync(join(from, 'bin', `${t}.cjs`), BUNDLE);
    if (daemon) await bundleExecutables(join(from, 'bin'), ['eve-tpm-vtpmd']);
    return from;
  };
  const fakeModprobe = (): string => {
    const bin = join(dir, 'fake-modprobe');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'modprobe'), '#!/bin/sh\necho "modprobe: FATAL: Module $1 not found in directory /lib/modules/test" >&2\nexit 1\n');
    chmodSync(join(bin, 'modprobe'), 0o755);
    return bin;
  };
  const root = process.getuid?.() === 0;

  it.skipIf(!root || existsSync('/dev/vtpmx'))('device: installs the daemon, runs the script it prints, and stops at the missing module', async () => {
    const from = await tree('tree-device', true);
    const prefix = join(dir, 'prefix-device');
    // No module is loaded on this machine: modprobe is a fake that fails as on a kernel without it.
    const r = spawnSync('sh', [script, '--from', from, '--prefix', prefix, '--raw-tpm', 'device'], { env: { PATH: `${fakeModprobe()}:${process.env.PATH}` }, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^install\.sh: installed \d+ tools in /);
    expect(r.stderr).toBe(
      "eve-tools: cannot load the kernel module tpm_vtpm_proxy (modprobe: FATAL: Module tpm_vtpm_proxy not found in directory /lib/modules/test): this VM's kernel needs CONFIG_TCG_VTPM_PROXY (a module in Debian's and Ubuntu's generic kernels); no TPM device was made\n",
    );
    // The very script the user-data carries, for the daemon where install.sh put it.
    expect(readFileSync(join(prefix, 'lib/eve-tools/vtpmd-setup.sh'), 'utf8')).toBe(vtpmdSetupScript(join(prefix, 'lib/eve-tools/bin/eve-tpm-vtpmd.cjs')));
    expect(existsSync(join(prefix, 'bin/eve-tpm-vtpmd'))).toBe(true);
    expect(spawnSync('sh', [script, '--uninstall', '--prefix', prefix]).status).toBe(0);
    expect(existsSync(join(prefix, 'bin/eve-tpm-vtpmd'))).toBe(false);
  }, 120_000);

  it.skipIf(skipUnlessCI(!root || !has('unshare') || !existsSync('/etc/environment') || !existsSync('/etc/profile.d'), 'root, unshare, /etc/environment'))(
    'tcti: the same defaults as the user-data, in a private mount namespace',
    async () => {
      const from = await tree('tree-tcti', false);
      const prefix = join(dir, 'prefix-tcti');
      const etc = join(dir, 'etc');
      mkdirSync(join(etc, 'profile.d'), { recursive: true });
      writeFileSync(join(etc, 'environment'), 'LANG="C.UTF-8"\nTPM2TOOLS_TCTI="stale"\n');
      // /etc/environment and /etc/profile.d of this machine are shadowed by test files, in this namespace only.
      const cmd = [
        'set -e',
        `mount --bind ${etc}/environment /etc/environment`,
        `mount --bind ${etc}/profile.d /etc/profile.d`,
        `sh ${script} --from ${from} --prefix ${prefix} --raw-tpm tcti`,
      ].join('\n');
      const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', cmd], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const tcti = `cmd:${prefix}/bin/eve_tools_tpm2_tcti`;
      expect(r.stdout).toContain(`install.sh: TPM2TOOLS_TCTI=${tcti} set in /etc/profile.d/eve-tools-tpm2.sh and /etc/environment\n`);
      expect(readFileSync(join(etc, 'environment'), 'utf8')).toBe(`LANG="C.UTF-8"\nTPM2TOOLS_TCTI="${tcti}"\nTPM2OPENSSL_TCTI="${tcti}"\n`);
      expect(readFileSync(join(etc, 'profile.d/eve-tools-tpm2.sh'), 'utf8')).toContain(`export TPM2TOOLS_TCTI="${tcti}"\nexport TPM2OPENSSL_TCTI="${tcti}"\n`);
    },
    60_000,
  );

  it('refuses an unknown mode, and device without the daemon in the tree, with one line', async () => {
    const a = spawnSync('sh', [script, '--raw-tpm', 'vtpm'], { encoding: 'utf8' });
    expect(a.status).toBe(1);
    expect(a.stderr).toBe("install.sh: --raw-tpm must be one of none, tcti, device, got 'vtpm'\n");
    const from = await tree('tree', false);
    const b = spawnSync('sh', [script, '--from', from, '--prefix', join(dir, 'prefix'), '--raw-tpm', 'device'], { encoding: 'utf8' });
    expect(b.status).toBe(1);
    expect(b.stderr).toBe(`install.sh: --raw-tpm device needs the device daemon ${from}/bin/eve-tpm-vtpmd.cjs (a bundle from an older build has none)\n`);
    expect(existsSync(join(dir, 'prefix'))).toBe(false);
  });
});
