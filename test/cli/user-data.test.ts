/**
 * `eve-tpm-service tenant add --user-data`: the cloud-init user-data that installs the tools in
 * an application VM with no network. Checked three ways: its content decoded (the bundle and
 * addons byte for byte, the config with the secret), Debian's own `cloud-init schema`, and
 * really applied — write_files and runcmd as cloud-init does them (test/guest/apply-user-data.mjs)
 * — in a private mount namespace whose /usr/local and /etc are throw-away overlays, with
 * Debian 12's Node.js 18 as `node`; then the proposal's commands by their installed names
 * against the real service (Node 20, swtpm) over a unix socket, and openssl verifies.
 * The same install inside the qemu guest, over vsock: test/guest/install.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipUnlessCI } from '../helpers/ci.js';
import { debianNode18, throwAwayRoot, type DebianNode } from '../helpers/debian-node18.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { bundleExecutables } from '../guest/harness.js';
import { killAll, spawnService, waitHealthy } from '../service/child.js';
import { TOOL_NAMES } from '../../src/service/protocol/tools.js';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const missing = ['cloud-init', 'python3', 'openssl', 'unshare', 'apt-get', 'dpkg'].filter((c) => !has(c));
if (!swtpmAvailable()) missing.push('swtpm');
const socatVsock = /WITH_VSOCK 1/.test(spawnSync('socat', ['-V'], { encoding: 'utf8' }).stdout ?? '');

interface WriteFile {
  path: string;
  content: string;
  encoding?: string;
  permissions?: string;
  owner?: string;
}
interface UserData {
  write_files: WriteFile[];
  runcmd: unknown[];
  packages?: string[];
}

/** YAML → JSON with PyYAML's safe_load, which is how cloud-init reads user-data. */
export function yamlToJson(file: string): unknown {
  const r = spawnSync('python3', ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`not YAML: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Debian's `cloud-init schema` on the file: [exit status, output]. */
function schema(file: string): [number | null, string] {
  const r = spawnSync('cloud-init', ['schema', '--config-file', file], { encoding: 'utf8' });
  return [r.status, `${r.stdout}${r.stderr}`];
}

const decoded = (f: WriteFile): Buffer => (f.encoding === 'gz+b64' ? gunzipSync(Buffer.from(f.content, 'base64')) : Buffer.from(f.content));

describe.skipIf(skipUnlessCI(missing.length > 0, missing.join(', ')))('tenant add --user-data', () => {
  let dir: string;
  let service: string;
  let bundle: string;
  let prebuilds: string;
  let armAddon: Buffer;
  const admin = (args: string[]) => spawnSync(process.execPath, [service, 'tenant', 'add', ...args], { encoding: 'utf8' });
  const tenantIds = (file: string): string[] => (existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { tenants: { id: string }[] }).tenants.map((t) => t.id) : []);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'user-data-'));
    const bin = join(dir, 'bin');
    const out = await bundleExecutables(bin, ['eve-tpm-service', 'eve-tools']);
    service = out['eve-tpm-service']!;
    bundle = out['eve-tools']!;
    // One addon, for one platform only: exactly what exists is embedded.
    prebuilds = join(dir, 'prebuilds');
    mkdirSync(join(prebuilds, 'linux-arm64-glibc'), { recursive: true });
    armAddon = Buffer.from(`not really an addon ${Math.random()}`.repeat(100));
    writeFileSync(join(prebuilds, 'linux-arm64-glibc/vsock.node'), armAddon);
  }, 120_000);
  afterAll(async () => {
    await killAll();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('writes complete offline user-data (0600); --json puts the secret and paths on stdout, the human text on stderr', () => {
    const tenants = join(dir, 'a-tenants.json');
    const file = join(dir, 'a.yaml');
    const r = admin(['--id', 'app', '--cid', '7', '--tenants', tenants, '--user-data', file, '--prebuilds', prebuilds, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toEqual({ tenant: 'app', record: expect.stringMatching(/^[0-9a-f]{16}$/), cid: 7, maxKeys: 8, secret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), userData: file, tenantsFile: tenants });
    expect(r.stderr).toMatch(/^Tenant app added \(CID 7\), quota 8 keys, record [0-9a-f]{16}\.\ncloud-init user-data \(\d+ bytes, holds the secret\) written to /);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    expect(text.startsWith('#cloud-config\n')).toBe(true);
    expect(text).not.toMatch(/CHANGE-ME|https?:|curl|packages:/);
    const ud = yamlToJson(file) as UserData;
    expect(Object.keys(ud).sort()).toEqual(['runcmd', 'write_files']);
    const byPath = new Map(ud.write_files.map((f) => [f.path, f]));
    expect([...byPath.keys()]).toEqual([
      '/usr/local/lib/eve-tools/eve-tools.cjs',
      '/usr/local/lib/eve-tools/prebuilds/linux-arm64-glibc/vsock.node',
      '/usr/local/lib/eve-tools/setup.sh',
      '/etc/eve-tools/config.json',
    ]);
    expect(decoded(byPath.get('/usr/local/lib/eve-tools/eve-tools.cjs')!).equals(readFileSync(bundle))).toBe(true);
    expect(decoded(byPath.get('/usr/local/lib/eve-tools/prebuilds/linux-arm64-glibc/vsock.node')!).equals(armAddon)).toBe(true);
    const config = byPath.get('/etc/eve-tools/config.json')!;
    expect(config).toMatchObject({ permissions: '0600', owner: 'root:root' });
    expect(JSON.parse(config.content)).toEqual({ service: 'vsock:2:8877', secret: out.secret });
    expect(ud.runcmd).toEqual([['sh', '/usr/local/lib/eve-tools/setup.sh']]);
    const setup = decoded(byPath.get('/usr/local/lib/eve-tools/setup.sh')!).toString();
    expect(spawnSync('sh', ['-n'], { input: setup }).status).toBe(0);
    const [status, said] = schema(file);
    expect(said).toMatch(/Valid cloud-config/);
    expect(status).toBe(0);
  });

  it('without --json prints only the secret block on stdout; - writes the user-data to stdout', () => {
    const tenants = join(dir, 'b-tenants.json');
    const r = admin(['--id', 'b1', '--tenants', tenants]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Secret \(shown only now; only its hash is stored\):\n {2}[A-Za-z0-9_-]{43}\n$/);
    expect(r.stderr).toMatch(/^Tenant b1 added, quota 8 keys.*\nNo user-data written: --user-data FILE/);
    const s = admin(['--id', 'b2', '--tenants', tenants, '--user-data', '-', '--prebuilds', prebuilds]);
    expect(s.status, s.stderr).toBe(0);
    expect(s.stdout.startsWith('#cloud-config\n')).toBe(true);
    expect(s.stdout).toContain('path: /etc/eve-tools/config.json');
  });

  it('refuses half a --tools-url/--tools-sha256 pair and other bad combinations: one line, exit 2, no tenant added', () => {
    const tenants = join(dir, 'c-tenants.json');
    const sha = 'ab'.repeat(32);
    const cases: [string[], RegExp][] = [
      [['--tools-url', 'https://example.org/t.tgz'], /--tools-url and --tools-sha256 go together: --tools-sha256 is missing/],
      [['--tools-sha256', sha, '--user-data', join(dir, 'c.yaml')], /--tools-url and --tools-sha256 go together: --tools-url is missing/],
      [['--tools-url', 'https://example.org/t.tgz', '--tools-sha256', 'CHANGE-ME', '--user-data', join(dir, 'c.yaml')], /--tools-sha256 must be 64 hex digits/],
      [['--tools-url', 'ftp://x', '--tools-sha256', sha, '--user-data', join(dir, 'c.yaml')], /--tools-url must be an http\(s\) URL/],
      [['--tools-url', 'https://example.org/t.tgz', '--tools-sha256', sha], /--tools-url and --tools-sha256 need --user-data FILE/],
      [['--user-data', '-', '--json'], /--user-data - and --json both want stdout/],
      [['--tools-bundle', bundle], /--tools-bundle and --prebuilds need --user-data FILE/],
      [['--user-data', join(dir, 'c.yaml'), '--tools-bundle', join(dir, 'nope.cjs')], /cannot read the tools bundle .*nope\.cjs \(ENOENT\): run 'npm run build', or pass --tools-bundle FILE/],
    ];
    for (const [args, line] of cases) {
      const r = admin(['--id', 'c', '--tenants', tenants, ...args]);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(line);
      expect(tenantIds(tenants)).toEqual([]);
    }
    expect(existsSync(join(dir, 'c.yaml'))).toBe(false);
  });

  it('--tools-url with --tools-sha256: download user-data, the URL quoted for sh, schema-valid', () => {
    const tenants = join(dir, 'd-tenants.json');
    const file = join(dir, 'd.yaml');
    const url = "https://h.example/t.tgz?a=1&b='x'";
    const r = admin(['--id', 'd', '--tenants', tenants, '--user-data', file, '--tools-url', url, '--tools-sha256', 'AB'.repeat(32)]);
    expect(r.status, r.stderr).toBe(0);
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain('CHANGE-ME');
    const line = text.split('\n').find((l) => l.trim().startsWith('url='))!.trim();
    expect(spawnSync('sh', ['-c', `${line}; printf %s "$url"`], { encoding: 'utf8' }).stdout).toBe(url);
    expect(text).toContain(`sha=${'ab'.repeat(32)}\n`);
    const [status, said] = schema(file);
    expect(said).toMatch(/Valid cloud-config/);
    expect(status).toBe(0);
  });

  it('deploy/cloud-init.yaml (the by-hand download template) is valid too', () => {
    const [status, said] = schema(join(REPO_ROOT, 'deploy/cloud-init.yaml'));
    expect(said).toMatch(/Valid cloud-config/);
    expect(status).toBe(0);
  });

  describe('applied as cloud-init would, with no network, on Debian 12 Node.js 18', () => {
    let node18: DebianNode;
    let swtpm: SwtpmInstance;
    let socket: string;
    let tenants: string;
    const file = (): string => join(dir, 'e.yaml');

    beforeAll(async () => {
      node18 = debianNode18();
      swtpm = await startSwtpm();
      tenants = join(dir, 'e-tenants.json');
      socket = join(dir, 'svc.sock');
      // The tenant (and its user-data) first, so the service starts knowing it.
      const add = admin(['--id', 'vm', '--tenants', tenants, '--service-address', `unix:${socket}`, '--user-data', file(), '--prebuilds', prebuilds]);
      if (add.status !== 0) throw new Error(`tenant add: ${add.stderr}`);
      const svc = spawnService(service, ['serve', '--tpm', `swtpm:unix:${swtpm.sockPath}`, '--listen', `unix:${socket}`, '--state-dir', join(dir, 'state'), '--tenants', tenants]);
      await waitHealthy(svc, `unix:${socket}`);
    }, 300_000);
    afterAll(async () => {
      await killAll();
      await swtpm?.stop();
    });

    /**
     * Runs `script` as root in fresh mount and pid namespaces: /usr/local, /etc and /run are
     * throw-away overlays (the host's stay untouched), Debian's node is first on PATH, and every
     * process left (a bridge setup.sh started) ends with the namespace.
     */
    function inVm(name: string, script: string[]): { status: number | null; stdout: string; stderr: string } {
      const work = join(dir, name);
      mkdirSync(join(work, 'ovl'), { recursive: true });
      const setup = throwAwayRoot(node18, work);
      const env: NodeJS.ProcessEnv = { LD_LIBRARY_PATH: node18.env.LD_LIBRARY_PATH, HOME: work };
      const r = spawnSync('unshare', ['-m', '-p', '-f', '--propagation', 'private', 'sh', '-c', [...setup, ...script].join('\n')], { env, encoding: 'utf8', timeout: 120_000 });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    }
    const apply = (file: string): string => {
      const json = `${file}.json`;
      writeFileSync(json, JSON.stringify(yamlToJson(file)));
      return `node ${join(REPO_ROOT, 'test/guest/apply-user-data.mjs')} ${json}`;
    };

    it('installs the tools and the config; genaik, pubgetaik and sign work and openssl verifies', () => {
      writeFileSync(join(dir, 'message.txt'), 'Hello from an offline VM.\n');
      const r = inVm('e-vm', [
        apply(file()),
        'echo "config mode $(stat -c %a /etc/eve-tools/config.json) node $(node --version)"',
        `cp ${join(dir, 'message.txt')} .`,
        'eve_tools_usage --json',
        'eve_tools_tpm2_genaik -g 0x1',
        'eve_tools_tpm2_pubgetaik -k 0x81010000 -f ak.pem',
        'eve_tools_tpm2_sign -k 0x81010000 -m message.txt -g 0x00B -s sign.bin',
        'openssl dgst -sha256 -verify ak.pem -signature sign.bin message.txt',
      ]);
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stdout).toContain('write_files: /usr/local/lib/eve-tools/eve-tools.cjs');
      expect(r.stdout).toMatch(/runcmd: \["sh","\/usr\/local\/lib\/eve-tools\/setup\.sh"\] -> 0/);
      expect(r.stderr).toContain(`eve-tools: installed ${TOOL_NAMES.length} tools in /usr/local/bin`);
      expect(r.stdout).toContain('config mode 600 node v18.');
      expect(r.stdout).toMatch(/^\{"tenant":"[^"]+","timestamp":"[^"]+","cgroup":\{"available":false,"configured":false,/m); // eve_tools_usage, not TPM-prefixed
      expect(r.stdout).toMatch(/0x81010000/);
      expect(r.stdout).toMatch(/Verified OK\n$/);
    });

    it.skipIf(skipUnlessCI(!socatVsock, 'socat with vsock support'))('with no addon for the VM, sets up the socat bridge and points the tools at it', () => {
      // Only an arm64 addon embedded; this machine is x64. This host has no vsock transport, so
      // the bridge's far side fails: the tools must then name the bridge socket (exit 4).
      const file = join(dir, 'f.yaml');
      const add = admin(['--id', 'bridged', '--tenants', join(dir, 'f-tenants.json'), '--user-data', file, '--prebuilds', prebuilds]);
      expect(add.status, add.stderr).toBe(0);
      const r = inVm('f-vm', [
        apply(file),
        'for i in 1 2 3 4 5 6 7 8 9 10; do [ -S /run/eve-tools.sock ] && break; sleep 0.2; done',
        'ls -l /run/eve-tools.sock',
        'cat /usr/local/bin/eve_tools_tpm2_listkeys',
        'eve_tools_tpm2_listkeys --timeout 5 || echo "listkeys exit $?"',
      ]);
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stderr).toMatch(/no systemd: socat bridge started now; start '\S*socat UNIX-LISTEN:\/run\/eve-tools\.sock,fork,mode=600,unlink-early VSOCK-CONNECT:2:8877' at boot/);
      expect(r.stderr).toContain(`installed ${TOOL_NAMES.length} tools in /usr/local/bin (socat bridge /run/eve-tools.sock -> vsock:2:8877)`);
      expect(r.stdout).toMatch(/^srw------- .*\/run\/eve-tools\.sock$/m);
      expect(r.stdout).toContain('EVE_TOOLS_SERVICE=${EVE_TOOLS_SERVICE:-unix:/run/eve-tools.sock}; export EVE_TOOLS_SERVICE');
      expect(r.stdout).toContain('listkeys exit 4');
      expect(r.stderr).toMatch(/eve_tools_tpm2_listkeys: .*unix:\/run\/eve-tools\.sock/);
    });
  });
});
