/**
 * `tenant add --user-data … --raw-tpm tcti`: the user-data makes tpm2-tss's cmd TCTI through
 * eve_tools_tpm2_tcti the default of stock TPM software (profile.d for login shells,
 * /etc/environment for the rest). Checked by `cloud-init schema` and applied as cloud-init
 * does (test/guest/apply-user-data.mjs) in a private mount namespace with Debian 12's Node 18:
 * then plain `tpm2_getrandom`, with no TCTI option, reaches the real service on swtpm.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipUnlessCI } from '../helpers/ci.js';
import { debianNode18, throwAwayRoot, type DebianNode } from '../helpers/debian-node18.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { bundleExecutables } from '../guest/harness.js';
import { killAll, spawnService, waitHealthy } from '../service/child.js';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const missing = ['cloud-init', 'python3', 'unshare', 'apt-get', 'dpkg', 'tpm2_getrandom'].filter((c) => !has(c));
if (!swtpmAvailable()) missing.push('swtpm');
if (!/libtss2-tcti-cmd\.so/.test(spawnSync('ldconfig', ['-p'], { encoding: 'utf8' }).stdout ?? '')) missing.push('libtss2-tcti-cmd0');

interface WriteFile {
  path: string;
  content: string;
  permissions?: string;
  append?: boolean;
}

/** YAML → JSON with PyYAML's safe_load, as cloud-init reads user-data. */
function yamlToJson(file: string): { write_files: WriteFile[]; runcmd: unknown[] } {
  const r = spawnSync('python3', ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`not YAML: ${r.stderr}`);
  return JSON.parse(r.stdout) as { write_files: WriteFile[]; runcmd: unknown[] };
}

const TCTI = 'cmd:/usr/local/bin/eve_tools_tpm2_tcti';

describe.skipIf(skipUnlessCI(missing.length > 0, missing.join(', ')))('tenant add --raw-tpm', () => {
  let dir: string;
  let service: string;
  let node18: DebianNode;
  let swtpm: SwtpmInstance;
  let socket: string;
  const tenants = (): string => join(dir, 'tenants.json');
  const admin = (args: string[]) => spawnSync(process.execPath, [service, 'tenant', 'add', '--tenants', tenants(), ...args], { encoding: 'utf8' });
  const tenantIds = (): string[] => (existsSync(tenants()) ? (JSON.parse(readFileSync(tenants(), 'utf8')) as { tenants: { id: string }[] }).tenants.map((t) => t.id) : []);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'raw-tpm-ud-'));
    const out = await bundleExecutables(join(dir, 'bin'), ['eve-tpm-service', 'eve-tools']);
    service = out['eve-tpm-service']!;
    node18 = debianNode18();
    swtpm = await startSwtpm();
    socket = join(dir, 'svc.sock');
  }, 300_000);
  afterAll(async () => {
    await killAll();
    await swtpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses an unknown mode and --raw-tpm without --user-data: one line, no tenant added', () => {
    for (const [args, msg] of [
      [['--id', 'x1', '--user-data', join(dir, 'x1.yaml'), '--prebuilds', join(dir, 'none'), '--raw-tpm', 'vtpm'], /--raw-tpm must be one of none, tcti, device, got 'vtpm'/],
      [['--id', 'x2', '--raw-tpm', 'tcti'], /--raw-tpm needs --user-data FILE/],
    ] as const) {
      const r = admin([...args]);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
    expect(tenantIds()).toEqual([]);
  });

  it('none (the default) writes no TCTI defaults; tcti writes them, schema-valid', () => {
    const plain = join(dir, 'plain.yaml');
    expect(admin(['--id', 'plain', '--user-data', plain, '--prebuilds', join(dir, 'none')]).status).toBe(0);
    expect(readFileSync(plain, 'utf8')).not.toMatch(/TCTI|profile\.d|\/etc\/environment/);
    const file = join(dir, 'raw.yaml');
    const r = admin(['--id', 'raw', '--user-data', file, '--prebuilds', join(dir, 'none'), '--raw-tpm', 'tcti', '--service-address', `unix:${socket}`]);
    expect(r.status, r.stderr).toBe(0);
    const ud = yamlToJson(file);
    const byPath = new Map(ud.write_files.map((f) => [f.path, f]));
    expect(byPath.get('/etc/profile.d/eve-tools-tpm2.sh')).toMatchObject({ permissions: '0644' });
    expect(byPath.get('/etc/profile.d/eve-tools-tpm2.sh')!.content).toContain(`export TPM2TOOLS_TCTI="${TCTI}"\nexport TPM2OPENSSL_TCTI="${TCTI}"\n`);
    expect(byPath.get('/etc/environment')).toEqual({ path: '/etc/environment', append: true, permissions: '0644', content: `TPM2TOOLS_TCTI="${TCTI}"\nTPM2OPENSSL_TCTI="${TCTI}"\n` });
    const schema = spawnSync('cloud-init', ['schema', '--config-file', file], { encoding: 'utf8' });
    expect(`${schema.stdout}${schema.stderr}`).toMatch(/Valid cloud-config/);
    expect(schema.status).toBe(0);
  });

  it('applied in a throw-away root: tpm2_getrandom with no TCTI option reaches the service', async () => {
    const svc = spawnService(service, ['serve', '--tpm', `swtpm:unix:${swtpm.sockPath}`, '--listen', `unix:${socket}`, '--state-dir', join(dir, 'state'), '--tenants', tenants()]);
    await waitHealthy(svc, `unix:${socket}`);
    const json = join(dir, 'raw.json');
    writeFileSync(json, JSON.stringify(yamlToJson(join(dir, 'raw.yaml'))));
    const work = join(dir, 'vm');
    mkdirSync(join(work, 'ovl'), { recursive: true });
    const script = [
      ...throwAwayRoot(node18, work),
      `node ${join(REPO_ROOT, 'test/guest/apply-user-data.mjs')} ${json}`,
      'grep TCTI /etc/environment',
      '. /etc/profile.d/eve-tools-tpm2.sh',
      'tpm2_getrandom --hex 8; echo',
    ];
    const r = spawnSync('unshare', ['-m', '-p', '-f', '--propagation', 'private', 'sh', '-c', script.join('\n')], { env: { LD_LIBRARY_PATH: node18.env.LD_LIBRARY_PATH, HOME: work }, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('write_files: /etc/profile.d/eve-tools-tpm2.sh');
    expect(r.stdout).toContain(`TPM2TOOLS_TCTI="${TCTI}"\nTPM2OPENSSL_TCTI="${TCTI}"\n`);
    expect(r.stderr).not.toMatch(/cmd TCTI is missing/);
    expect(r.stdout).toMatch(/^[0-9a-f]{16}$/m);
  }, 180_000);
});
