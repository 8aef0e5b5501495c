/**
 * deploy/eve: what can be checked without a container engine or an Alpine mirror (neither
 * exists here; docs/EVE.md says so). make-pkg.sh assembles the linuxkit package directory;
 * every path the Dockerfile copies exists there; the build stage's own commands run on those
 * sources (tsup, and the Dockerfile's literal gcc line compiling the addon, checked with
 * readelf); the image's entrypoint start.sh then runs the service it built, with the state
 * root, TPM and listener pointed at a temp dir, swtpm and a unix socket.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceClient } from '../../src/service/client/client.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { waitHealthy, type ServiceProcess } from '../service/child.js';

const EVE = join(REPO_ROOT, 'deploy/eve');
const dockerfile = readFileSync(join(EVE, 'Dockerfile'), 'utf8');
/** Dockerfile instructions, continuation lines joined, comments dropped. */
const instructions = dockerfile
  .replace(/\\\n\s*/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));
/** Sources of COPY instructions that take files from the build context (not --from=). */
const contextSources = instructions
  .filter((l) => l.startsWith('COPY ') && !l.includes('--from='))
  .flatMap((l) => l.split(/\s+/).slice(1, -1));

const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));
function scratch(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  roots.push(d);
  return d;
}

describe('deploy/eve: files', () => {
  it('scripts parse (sh -n)', () => {
    for (const f of ['start.sh', 'eve-tpm-service', 'make-pkg.sh']) {
      const r = spawnSync('sh', ['-n', join(EVE, f)], { encoding: 'utf8' });
      expect(r.status, `${f}: ${r.stderr}`).toBe(0);
      expect(statSync(join(EVE, f)).mode & 0o111, `${f} executable`).not.toBe(0);
    }
  });

  it('build.yml names the image and binds only /persist and the TPM device', () => {
    const yml = readFileSync(join(EVE, 'build.yml'), 'utf8');
    expect(yml).toMatch(/^image: eve-tpm-service$/m);
    const binds = [...yml.matchAll(/^ {4}- (\/[^\s:]+:\/\S+)$/gm)].map((m) => m[1]);
    expect(binds).toEqual(['/persist:/persist', '/dev/tpmrm0:/dev/tpmrm0']);
  });

  it('the Dockerfile builds on Alpine, compiles the addon from native/vsock and starts start.sh', () => {
    expect(instructions.filter((l) => l.startsWith('FROM ')).length).toBe(2);
    expect(dockerfile).toMatch(/^ARG ALPINE=alpine:/m);
    expect(contextSources).toEqual(expect.arrayContaining(['native/vsock', 'src', 'deploy/eve/start.sh']));
    for (const s of contextSources) expect(existsSync(join(REPO_ROOT, s)), s).toBe(true);
    expect(instructions.at(-1)).toBe('ENTRYPOINT ["/opt/eve-tpm-service/start.sh"]');
  });

  it('make-pkg.sh refuses an existing destination', () => {
    const r = spawnSync(join(EVE, 'make-pkg.sh'), [scratch('pkg-')], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/already exists/);
  });
});

const haveGcc = spawnSync('gcc', ['--version']).status === 0 && spawnSync('readelf', ['--version']).status === 0;

describe.skipIf(skipUnlessCI(!haveGcc || !swtpmAvailable(), 'gcc/readelf or swtpm'))('deploy/eve: the package builds and starts', () => {
  let pkg: string;
  let opt: string;
  let swtpm: SwtpmInstance;
  let running: ChildProcess | undefined;

  beforeAll(async () => {
    pkg = join(scratch('eve-pkg-'), 'eve-tpm-service');
    execFileSync(join(EVE, 'make-pkg.sh'), [pkg], { encoding: 'utf8' });
    swtpm = await startSwtpm();
  }, 60_000);
  afterAll(async () => {
    if (running && running.exitCode === null && running.signalCode === null) running.kill('SIGKILL');
    await swtpm?.stop();
  });

  it('holds every path the Dockerfile copies, and no local addon build', () => {
    for (const f of ['build.yml', 'Dockerfile', ...contextSources]) expect(existsSync(join(pkg, f)), f).toBe(true);
    expect(existsSync(join(pkg, 'native/vsock/build'))).toBe(false);
  });

  it("runs the build stage's commands on those sources", () => {
    // npm ci is the one step that needs the registry: this checkout's node_modules stands in.
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(pkg, 'node_modules'));
    execFileSync(join(REPO_ROOT, 'node_modules/.bin/tsup'), [], { cwd: pkg, stdio: 'pipe', timeout: 180_000 });
    expect(existsSync(join(pkg, 'dist/bin/eve-tpm-service.cjs'))).toBe(true);

    // The Dockerfile's gcc line as written (here against this Node's headers and glibc).
    const gcc = instructions.find((l) => l.startsWith('RUN gcc '))!.slice(4).split(/\s+/);
    const nodeInclude = join(process.execPath, '../../include/node');
    const args = gcc.slice(1).map((a) => (a === '-I/usr/include/node' ? `-I${nodeInclude}` : a === '/src/vsock.node' ? join(pkg, 'vsock.node') : a));
    execFileSync('gcc', args, { cwd: pkg, stdio: 'pipe' });
    const syms = execFileSync('readelf', ['--dyn-syms', '-W', join(pkg, 'vsock.node')], { encoding: 'utf8' });
    expect(syms).toMatch(/FUNC +GLOBAL +DEFAULT +\d+ napi_register_module_v1$/m);
  }, 240_000);

  it('start.sh serves with state under its root, and the admin wrapper works', async () => {
    // The image's /opt/eve-tpm-service, as its COPY lines lay it out.
    opt = scratch('eve-opt-');
    copyFileSync(join(pkg, 'dist/bin/eve-tpm-service.cjs'), join(opt, 'eve-tpm-service.cjs'));
    copyFileSync(join(pkg, 'vsock.node'), join(opt, 'vsock.node'));
    for (const f of ['start.sh', 'eve-tpm-service']) copyFileSync(join(pkg, 'deploy/eve', f), join(opt, f));
    const root = join(scratch('eve-persist-'), 'eve-tpm-service');
    const sock = join(opt, 'svc.sock');
    const child = spawn(join(opt, 'start.sh'), ['--log-level', 'warn'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, EVE_TPM_SERVICE_ROOT: root, EVE_TPM_SERVICE_TPM: `swtpm:unix:${swtpm.sockPath}`, EVE_TPM_SERVICE_LISTEN: `unix:${sock}` },
    });
    running = child;
    let log = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (log += s));
    const p: ServiceProcess = { child, stderr: () => log, exited: new Promise((r) => child.once('exit', (code, signal) => r({ code, signal }))) };
    await waitHealthy(p, `unix:${sock}`, 30_000);
    expect(JSON.parse(readFileSync(join(root, 'tenants.json'), 'utf8'))).toEqual({ tenants: [] });
    expect(statSync(join(root, 'state')).mode & 0o777).toBe(0o700);
    // No tenant yet: a caller without a secret is refused.
    await expect(new ServiceClient({ address: `unix:${sock}` }).listKeys()).rejects.toMatchObject({ status: 401 });

    const list = spawnSync(join(opt, 'eve-tpm-service'), ['tenant', 'list', '--tenants', join(root, 'tenants.json'), '--state-dir', join(root, 'state'), '--json'], {
      encoding: 'utf8',
    });
    expect(list.status, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout)).toMatchObject({ tenants: [] });
    p.child.kill('SIGTERM');
    expect((await p.exited).code).toBe(0);
  }, 60_000);
});
