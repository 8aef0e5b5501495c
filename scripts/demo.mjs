#!/usr/bin/env node
// The one-command demo (`npm run demo`): builds if needed, starts a software TPM and the TPM
// service with a demo tenant, runs the original proposal's three commands exactly as written
// (then the same with an ECC key), verifies the signatures with openssl, shows that EVE's own
// keys are off limits, and cleans up everything it started — also on Ctrl-C or failure.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist', 'bin');
const TOOLS = ['eve_tools_tpm2_genaik', 'eve_tools_tpm2_pubgetaik', 'eve_tools_tpm2_sign', 'eve_tools_tpm2_listkeys', 'eve_tools_tpm2_evictaik'];
const SERVICE = join(DIST, 'eve-tpm-service.cjs');
const TENANT = 'demo-app';

const tty = process.stdout.isTTY === true && !process.env.NO_COLOR;
const paint = (code) => (s) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = paint('1');
const dim = paint('2');
const green = paint('32');
const red = paint('31');
const cyan = paint('36');
const OK = green('✓');
const BAD = red('✗');

class DemoError extends Error {}

// ---------------------------------------------------------------------------------------------
// what we started, so that it can all be undone

const children = new Set();
let workDir;
let cleaning;
/** The service's recent log, shown when a step fails. */
let serviceLog = () => '';
/** Set once SIGINT/SIGTERM arrived: from then on a failing step is the interruption's echo. */
let interrupted;

async function stopChild(child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(timer);
}

/** Stops what we started (newest first: the service before the TPM) and removes the temp dir. Idempotent. */
function cleanup() {
  cleaning ??= (async () => {
    for (const c of [...children].reverse()) await stopChild(c).catch(() => {});
    children.clear();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  })();
  return cleaning;
}

function onSignal(sig) {
  if (interrupted) return;
  interrupted = sig;
  process.stdout.write(`\n${BAD} interrupted (${sig}); cleaning up…\n`);
  cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('exit', () => {
  // Last resort if something above threw past cleanup().
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function spawnTracked(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(child);
  let log = '';
  const keep = (b) => {
    log = (log + b.toString()).slice(-16_384);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.once('exit', () => children.delete(child));
  return { child, log: () => log.trim() };
}

// ---------------------------------------------------------------------------------------------
// steps

const say = (s = '') => process.stdout.write(`${s}\n`);

/** `▸ what… ✓` around an async task; on failure the ✗ and the reason. */
async function task(what, fn) {
  process.stdout.write(`${cyan('▸')} ${what}… `);
  const t0 = Date.now();
  try {
    const r = await fn();
    const ms = Date.now() - t0;
    say(`${OK}${ms > 1500 ? dim(` (${(ms / 1000).toFixed(1)} s)`) : ''}`);
    return r;
  } catch (e) {
    say(BAD);
    throw e;
  }
}

function which(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

function newestMtime(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = 0;
  for (const e of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, e)));
  return newest;
}

function buildIsStale() {
  const outputs = [...TOOLS.map((t) => join(DIST, `${t}.cjs`)), SERVICE];
  if (!outputs.every((p) => existsSync(p))) return 'not built yet';
  const built = Math.min(...outputs.map((p) => statSync(p).mtimeMs));
  const inputs = [join(ROOT, 'src'), join(ROOT, 'package.json'), join(ROOT, 'tsup.config.ts')];
  return inputs.some((p) => existsSync(p) && newestMtime(p) > built) ? 'sources changed since the last build' : undefined;
}

function waitFor(what, probe, child, log, timeoutMs = 20_000) {
  const t0 = Date.now();
  return new Promise((res, rej) => {
    const tick = async () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        return rej(new DemoError(`${what} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${log()}`));
      }
      if (await probe().catch(() => false)) return res();
      if (Date.now() - t0 > timeoutMs) return rej(new DemoError(`${what} not ready after ${timeoutMs / 1000} s:\n${log()}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

function connects(path) {
  return new Promise((res) => {
    import('node:net').then(({ createConnection }) => {
      const s = createConnection({ path });
      s.once('connect', () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
    });
  });
}

function healthy(socketPath) {
  return new Promise((res) => {
    const req = request({ socketPath, path: '/v1/health', method: 'GET', timeout: 2000 }, (r) => {
      r.resume();
      res(r.statusCode === 200);
    });
    req.once('error', () => res(false));
    req.once('timeout', () => req.destroy());
    req.end();
  });
}

/** Runs a command as a person would type it, showing it, its output, and ✓ or ✗. */
async function run(argv, { env, cwd, expectCode = 0, note } = {}) {
  say(`${bold('$')} ${bold(argv.join(' '))}`);
  // Asynchronous, so Ctrl-C is handled at once; output is shown as it comes.
  const r = await new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    child.stdout.on('data', (c) => {
      stdout += c;
      process.stdout.write(c);
    });
    child.stderr.on('data', (c) => process.stdout.write(c));
    child.once('error', (e) => reject(new DemoError(`cannot run ${argv[0]}: ${e.message}`)));
    child.once('close', (status, signal) => {
      children.delete(child);
      resolve({ status, signal, stdout });
    });
  });
  if (interrupted) await new Promise(() => {}); // the signal handler finishes the job
  if (r.status !== expectCode) {
    say(`${BAD} ${argv[0]} exited with ${r.status ?? r.signal}${expectCode ? `, expected ${expectCode}` : ''}`);
    throw new DemoError(`step failed: ${argv.join(' ')}`);
  }
  say(`${OK} ${note ?? (expectCode ? `exit ${expectCode}, as expected` : 'done')}`);
  say();
  return r;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  say(bold('eve-tpm-tools demo — TPM keys for an edge application, through the EVE TPM service'));
  say(dim('A software TPM (swtpm) stands in for the device\'s TPM; everything runs in a temp directory and is removed at the end.'));
  say();

  const major = Number(process.versions.node.split('.')[0]);
  if (major < 20) throw new DemoError(`Node.js 20 or later is needed, this is ${process.version}`);
  for (const [cmd, pkg] of [['swtpm', 'swtpm swtpm-tools'], ['openssl', 'openssl']]) {
    if (!which(cmd)) throw new DemoError(`${cmd} not found: install it first (Debian/Ubuntu: apt-get install ${pkg})`);
  }

  const stale = buildIsStale();
  if (stale) {
    await task(`building the tools and the service (${stale}): npx tsup`, async () => {
      const r = spawnSync('npx', ['tsup'], { cwd: ROOT, encoding: 'utf8' });
      if (r.status !== 0) throw new DemoError(`build failed:\n${r.stdout}${r.stderr}`);
    });
  } else {
    say(`${cyan('▸')} build is up to date ${OK}`);
  }

  // Short path: unix socket paths are limited to 107 bytes.
  workDir = mkdtempSync('/tmp/eve-demo-');
  const dir = workDir;
  const swtpmSock = join(dir, 'swtpm.sock');
  const serviceSock = join(dir, 'eve-tpm.sock');
  const tenants = join(dir, 'tenants.json');

  await task(`starting a software TPM with fresh state (${dir})`, async () => {
    const p = spawnTracked('swtpm', [
      'socket',
      '--tpm2',
      '--server',
      `type=unixio,path=${swtpmSock}`,
      '--ctrl',
      `type=unixio,path=${join(dir, 'swtpm.ctrl')}`,
      '--tpmstate',
      `dir=${dir}`,
      '--flags',
      'not-need-init,startup-clear',
    ]);
    await waitFor('swtpm', () => connects(swtpmSock), p.child, p.log);
  });

  const secret = await task(`registering the application "${TENANT}" with the service (tenant add)`, async () => {
    const r = spawnSync(process.execPath, [SERVICE, 'tenant', 'add', '--id', TENANT, '--tenants', tenants, '--service-address', `unix:${serviceSock}`], {
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new DemoError(`tenant add failed:\n${r.stdout}${r.stderr}`);
    const s = parseSecret(r.stdout);
    if (!s) throw new DemoError(`tenant add printed no secret:\n${r.stdout}`);
    return s;
  });

  // Provisioning as cloud-init does it: the secret in a config file only its owner can read.
  mkdirSync(join(dir, 'etc'));
  const config = join(dir, 'etc', 'config.json');
  writeFileSync(config, `${JSON.stringify({ secret }, null, 2)}\n`, { mode: 0o600 });
  chmodSync(config, 0o600);

  let service;
  await task(`starting the TPM service on unix:${serviceSock}`, async () => {
    service = spawnTracked(process.execPath, [
      SERVICE,
      'serve',
      '--tpm',
      `swtpm:unix:${swtpmSock}`,
      '--listen',
      `unix:${serviceSock}`,
      '--state-dir',
      join(dir, 'state'),
      '--tenants',
      tenants,
    ]);
    serviceLog = service.log;
    await waitFor('the TPM service', () => healthy(serviceSock), service.child, service.log);
  });
  say();

  // The tools under their installed names, as an application in a container runs them.
  const binDir = join(dir, 'bin');
  mkdirSync(binDir);
  for (const t of TOOLS) {
    writeFileSync(join(binDir, t), `#!/bin/sh\nexec "${process.execPath}" "${join(DIST, `${t}.cjs`)}" "$@"\n`, { mode: 0o755 });
  }
  const app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'message.txt'), 'Hello from an EVE edge container.\n');
  const env = {
    ...process.env,
    PATH: `${binDir}:${process.env.PATH ?? ''}`,
    EVE_TOOLS_SERVICE: `unix:${serviceSock}`,
    EVE_TOOLS_CONFIG: config,
  };
  delete env.EVE_TOOLS_SECRET;
  say(dim(`In the "container" (${app}): EVE_TOOLS_SERVICE=unix:${serviceSock}, secret in ${config}`));
  say();

  const handleOf = (out) => {
    const m = /^AIK Pair generated at persistent handle (0x[0-9a-f]{8})$/m.exec(out);
    if (!m) throw new DemoError(`genaik did not print the expected line, got: ${out.trim()}`);
    return m[1];
  };
  const verify = async (pem, sig, hash = 'sha256') => {
    const r = await run(['openssl', 'dgst', `-${hash}`, '-verify', pem, '-signature', sig, 'message.txt'], {
      env,
      cwd: app,
      note: 'the TPM-made signature verifies with plain openssl',
    });
    if (!/Verified OK/.test(r.stdout)) throw new DemoError('openssl did not print "Verified OK"');
  };

  say(bold('1. The original proposal, RSA:'));
  say();
  const rsa = handleOf((await run(['eve_tools_tpm2_genaik', '-g', '0x1'], { env, cwd: app, note: 'an RSA attestation key, owned by this app' })).stdout);
  await run(['eve_tools_tpm2_pubgetaik', '-k', rsa, '-f', 'ak.pem'], { env, cwd: app, note: 'public key written to ak.pem' });
  await run(['eve_tools_tpm2_sign', '-k', rsa, '-m', 'message.txt', '-g', '0x00B', '-s', 'sign.bin'], {
    env,
    cwd: app,
    note: 'message signed by the TPM, signature in sign.bin',
  });
  await verify('ak.pem', 'sign.bin');

  say(bold('2. The same with an ECC (NIST P-256) key:'));
  say();
  const ecc = handleOf((await run(['eve_tools_tpm2_genaik', '-g', '0x23'], { env, cwd: app, note: 'an ECC attestation key' })).stdout);
  if (ecc === '0x81010003') {
    say(dim('(0x81010001 and 0x81010002 were skipped: the TCG reserves them for Endorsement Keys.)'));
    say();
  }
  await run(['eve_tools_tpm2_pubgetaik', '-k', ecc, '-f', 'ak-ecc.pem'], { env, cwd: app, note: 'public key written to ak-ecc.pem' });
  await run(['eve_tools_tpm2_sign', '-k', ecc, '-m', 'message.txt', '-g', '0x00B', '-s', 'sign-ecc.bin'], {
    env,
    cwd: app,
    note: 'ECDSA signature in sign-ecc.bin',
  });
  await verify('ak-ecc.pem', 'sign-ecc.bin');

  say(bold("3. The app sees only its own keys; EVE's are off limits:"));
  say();
  await run(['eve_tools_tpm2_listkeys'], { env, cwd: app, note: 'only the two keys this app created' });
  await run(['eve_tools_tpm2_sign', '-k', '0x81000001', '-m', 'message.txt', '-s', 'eve.bin'], {
    env,
    cwd: app,
    expectCode: 3,
    note: "refused (exit 3): 0x81000001 is EVE's Endorsement Key, not the app's",
  });
  if (existsSync(join(app, 'eve.bin'))) throw new DemoError('a refused sign left an output file behind');

  if (service.child.exitCode !== null) throw new DemoError(`the service stopped during the demo:\n${service.log()}`);
  say(`${OK} ${bold('demo complete')}: keys created, signatures verified by openssl, foreign keys refused.`);
}

/** The secret from `tenant add` output: the line after `Secret (shown only now…):`. */
function parseSecret(out) {
  const lines = out.split('\n');
  const i = lines.findIndex((l) => /^Secret\b/.test(l));
  const s = i >= 0 ? lines[i + 1]?.trim() : undefined;
  return s && /^[A-Za-z0-9_\-+/=]{16,}$/.test(s) ? s : undefined;
}

main()
  .then(async () => {
    await cleanup();
    say(dim('cleaned up: TPM service and swtpm stopped, temp directory removed'));
  })
  .catch(async (e) => {
    if (interrupted) return; // onSignal reports and exits
    const msg = e instanceof DemoError ? e.message : e?.stack ?? String(e);
    say();
    say(`${BAD} ${red('demo failed')}: ${msg}`);
    const tail = serviceLog().split('\n').slice(-5).join('\n');
    if (tail) say(dim(`last lines of the TPM service's log:\n${tail}`));
    await cleanup();
    process.exit(1);
  });
