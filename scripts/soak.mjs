#!/usr/bin/env node
// `npm run soak -- --minutes N [--signs 100000] [--tenants 8] [--concurrency 16] [--key-store blobs|tpm]
//                  [--no-build] [--json FILE]`
//
// A long run of the real service under sign traffic with the client misbehaviour a device
// sees, to find what only shows over time: memory that grows, TPM objects or sessions left
// behind, errors that appear under sustained load. Not part of CI or `npm test`.
//
//  1. builds dist/ (`npm run build`) when it is missing or older than src/ (--no-build: use it as it is);
//  2. starts swtpm (RSA EK persisted at EVE's handle 0x81000001, as on a device) and the built
//     service dist/bin/eve-tpm-service.cjs on a unix socket, with N tenants, one key each
//     (RSA and ECC alternately);
//  3. C workers sign until --signs signatures or --minutes pass: ~80 % inline signs, ~5 %
//     streamed signs run to the end, ~10 % streamed signs aborted mid-stream, ~5 % client
//     disconnects mid-request (half while sending the body, half while waiting for the answer);
//     every 50th signature is verified against the key's public key;
//  4. samples the service's VmRSS (/proc/PID/status) and open fds every 10 s after a warm-up;
//  5. stops the service (SIGTERM, must exit 0), then asks swtpm itself for transient objects
//     (0x80xxxxxx) and sessions (0x02/0x03xxxxxx) left behind, and persistent objects in the pool;
//  6. prints a summary; exit status 1 when anything beyond the induced failures went wrong
//     (unexpected errors, leftovers, a failed verification, a non-zero service exit, RSS at
//     the end more than twice the warm-up's).
import { spawn, spawnSync } from 'node:child_process';
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { createConnection } from 'node:net';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'dist', 'bin', 'eve-tpm-service.cjs');
const LIB = join(ROOT, 'dist', 'tpm', 'index.js');
const EVE_EK = 0x81000001;
const POOL = [0x81010000, 0x8101ffff];
const VERIFY_EVERY = 50;
const SAMPLE_MS = 10_000;

const say = (s) => process.stderr.write(`[soak] ${s}\n`);

// ---------------------------------------------------------------------------------------------
// options

const { values: opt } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    signs: { type: 'string', default: '100000' },
    tenants: { type: 'string', default: '8' },
    concurrency: { type: 'string', default: '16' },
    'key-store': { type: 'string', default: 'blobs' },
    'no-build': { type: 'boolean', default: false },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (opt.help) {
  process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n') + '\n');
  process.exit(0);
}
const num = (name, min) => {
  const v = Number(opt[name]);
  if (!Number.isFinite(v) || v < min) {
    say(`--${name} must be a number >= ${min}, got ${JSON.stringify(opt[name])}`);
    process.exit(2);
  }
  return v;
};
const MINUTES = num('minutes', 0.1);
const MAX_SIGNS = Math.floor(num('signs', 1));
const TENANTS = Math.floor(num('tenants', 1));
const CONCURRENCY = Math.floor(num('concurrency', 1));
const KEY_STORE = opt['key-store'];
if (KEY_STORE !== 'blobs' && KEY_STORE !== 'tpm') {
  say(`--key-store must be blobs or tpm, got ${JSON.stringify(KEY_STORE)}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// everything started here dies with us

const children = new Set();
let workDir;
const pdeath = (() => {
  const r = spawnSync('setpriv', ['--help'], { encoding: 'utf8' });
  return r.status === 0 && /--pdeathsig/.test(`${r.stdout}${r.stderr}`);
})();
function track(cmd, args, opts) {
  const [file, argv] = pdeath ? ['setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, opts);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(sig === 'SIGINT' ? 130 : 143));

const exitOf = (child) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve({ code: child.exitCode, signal: child.signalCode })
    : new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));

async function until(what, probe, child, ms = 30_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`${what} exited before it was ready`);
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} not ready after ${ms} ms`);
}

// ---------------------------------------------------------------------------------------------
// build

function newest(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let n = st.mtimeMs;
  for (const e of readdirSync(path)) n = Math.max(n, newest(join(path, e)));
  return n;
}
function ensureBuilt() {
  const stale = !existsSync(BIN) || !existsSync(LIB) ? 'dist/ is missing' : newest(join(ROOT, 'src')) > Math.min(statSync(BIN).mtimeMs, statSync(LIB).mtimeMs) ? 'src/ is newer than dist/' : undefined;
  if (!stale) return;
  if (opt['no-build']) {
    if (!existsSync(BIN) || !existsSync(LIB)) throw new Error(`${stale} and --no-build was given`);
    return say(`warning: ${stale}; running the existing build (--no-build)`);
  }
  say(`npm run build (${stale})`);
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm run build failed:\n${r.stdout}${r.stderr}`);
}

// ---------------------------------------------------------------------------------------------
// swtpm and the service

const canConnect = (path) =>
  new Promise((res) => {
    const s = createConnection({ path });
    s.once('connect', () => (s.destroy(), res(true)));
    s.once('error', () => res(false));
  });

async function startSwtpm(dir) {
  const sock = join(dir, 'swtpm.sock');
  const child = track(
    'swtpm',
    ['socket', '--tpm2', '--server', `type=unixio,path=${sock}`, '--ctrl', `type=unixio,path=${join(dir, 'swtpm.ctrl')}`, '--tpmstate', `dir=${dir}`, '--flags', 'not-need-init,startup-clear'],
    { stdio: ['ignore', 'ignore', openSync(join(dir, 'swtpm.log'), 'a')] },
  );
  await until('swtpm', () => canConnect(sock), child, 15_000);
  return { sock, child };
}

/** The EK persisted where EVE keeps it: every load finds it instead of re-deriving it. */
async function persistEk(lib, sock) {
  const tpm = new lib.Tpm(lib.openTransport(`swtpm:unix:${sock}`));
  try {
    const ek = await lib.createTransientEk(tpm, 'rsa');
    await lib.makePersistent(tpm, ek.handle, EVE_EK);
    await lib.flush(tpm, ek.handle);
  } finally {
    await tpm.transport.close();
  }
}

function addTenant(tenantsFile, id) {
  const r = spawnSync(process.execPath, [BIN, 'tenant', 'add', '--id', id, '--tenants', tenantsFile, '--max-keys', '2'], { encoding: 'utf8' });
  const m = /Secret[^\n]*:\s*\n\s*(\S+)/.exec(r.stdout ?? '');
  if (r.status !== 0 || !m) throw new Error(`eve-tpm-service tenant add failed (${r.status}): ${r.stderr}${r.stdout}`);
  return m[1];
}

function http(sock, method, path, { secret, body, type, agent } = {}) {
  return new Promise((res, rej) => {
    const headers = {};
    if (secret) headers.Authorization = `Bearer ${secret}`;
    if (body !== undefined) Object.assign(headers, { 'Content-Type': type ?? 'application/json', 'Content-Length': Buffer.byteLength(body) });
    const req = request({ socketPath: sock, method, path, headers, agent: agent ?? false }, (r) => {
      const parts = [];
      r.on('data', (c) => parts.push(c));
      r.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let json;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        res({ status: r.statusCode, json });
      });
      r.on('error', rej);
    });
    req.on('error', rej);
    req.end(body);
  });
}

async function vmRss(pid) {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}
const fdCount = async (pid) => (await readdir(`/proc/${pid}/fd`)).length;
const mib = (b) => `${(b / 1048576).toFixed(1)} MiB`;

// ---------------------------------------------------------------------------------------------
// traffic

const stats = {
  signs: 0,
  inline: 0,
  streamed: 0,
  verified: 0,
  badSignatures: 0,
  induced: { streamAborted: 0, disconnectSending: 0, disconnectWaiting: 0 },
  unexpected: {},
  latencies: [],
};
const unexpected = (what) => (stats.unexpected[what] = (stats.unexpected[what] ?? 0) + 1);

function checkSignature(key, msg, r) {
  if (r.status !== 200) {
    unexpected(`${r.status} ${r.json?.error?.code ?? '?'}`);
    if (Object.values(stats.unexpected).reduce((a, b) => a + b, 0) <= 5) say(`unexpected answer ${r.status}: ${JSON.stringify(r.json)}`);
    return;
  }
  stats.signs++;
  if (stats.signs % VERIFY_EVERY === 0) {
    const ok = verify('sha256', msg, key.pub, Buffer.from(r.json.signature, 'base64'));
    if (ok) stats.verified++;
    else stats.badSignatures++;
  }
}

/** A request abandoned on purpose: `pieces` written one by one, then after `waitMs` the socket is destroyed. */
function abandon(sock, path, secret, headers, pieces, waitMs) {
  return new Promise((res) => {
    const req = request({ socketPath: sock, method: 'POST', path, agent: false, headers: { Authorization: `Bearer ${secret}`, ...headers } });
    req.on('error', () => {});
    req.on('response', (r) => {
      r.resume();
      res(r.statusCode); // answered before we left (e.g. an early refusal): still induced
    });
    let i = 0;
    const next = () => {
      if (i < pieces.length) {
        req.write(pieces[i++], () => setImmediate(next));
        return;
      }
      setTimeout(() => {
        req.destroy();
        res(undefined);
      }, waitMs);
    };
    req.flushHeaders();
    next();
  });
}

async function worker(id, sock, keys, deadline) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const rand = () => Math.random();
  while (stats.signs < MAX_SIGNS && Date.now() < deadline) {
    const key = keys[(id + Math.floor(rand() * 2)) % keys.length];
    const path = `/v1/keys/${key.handle}/sign`;
    const dice = rand();
    try {
      if (dice < 0.8) {
        const msg = randomBytes(32 + Math.floor(rand() * 480));
        const t0 = performance.now();
        const r = await http(sock, 'POST', path, { secret: key.secret, body: JSON.stringify({ message: msg.toString('base64') }), agent });
        if (stats.latencies.length < 200_000) stats.latencies.push(performance.now() - t0);
        stats.inline++;
        checkSignature(key, msg, r);
      } else if (dice < 0.85) {
        const msg = randomBytes(8192 + Math.floor(rand() * 57344));
        const r = await http(sock, 'POST', `${path}?hashAlg=sha256`, { secret: key.secret, body: msg, type: 'application/octet-stream', agent });
        stats.streamed++;
        checkSignature(key, msg, r);
      } else if (dice < 0.95) {
        // Streamed sign aborted mid-stream: 64 KiB announced, 8–24 KiB sent, then gone.
        const pieces = Array.from({ length: 2 + Math.floor(rand() * 5) }, () => randomBytes(4096));
        await abandon(sock, `${path}?hashAlg=sha256`, key.secret, { 'Content-Type': 'application/octet-stream', 'Content-Length': 65536 }, pieces, Math.floor(rand() * 5));
        stats.induced.streamAborted++;
      } else {
        // Client disconnect mid-request: half the body sent, or the whole request and then gone before the answer.
        const body = Buffer.from(JSON.stringify({ message: randomBytes(200).toString('base64') }));
        const sending = rand() < 0.5;
        const pieces = sending ? [body.subarray(0, body.length >> 1)] : [body];
        await abandon(sock, path, key.secret, { 'Content-Type': 'application/json', 'Content-Length': body.length }, pieces, sending ? 0 : Math.floor(rand() * 4));
        if (sending) stats.induced.disconnectSending++;
        else stats.induced.disconnectWaiting++;
      }
    } catch (e) {
      unexpected(`network ${e.code ?? e.message}`);
    }
  }
  agent.destroy();
}

// ---------------------------------------------------------------------------------------------
// TPM leftovers, asked of swtpm itself once the service has stopped

async function handlesOfType(lib, tpm, type, lo, hi) {
  const out = new Set();
  let index = 0;
  for (let page = 0; page < 64; page++) {
    const r = await tpm.run(lib.GetCapability, { capability: lib.TPM_CAP.HANDLES, property: ((type << 24) | index) >>> 0, propertyCount: 254 });
    const hs = r.capabilityData.data;
    for (const h of hs) if (h >= lo && h <= hi) out.add(h);
    const tail = hs.at(-1);
    if (!r.moreData || tail === undefined) break;
    index = (tail & 0xffffff) + 1;
  }
  return [...out].sort((a, b) => a - b);
}

async function tpmLeftovers(lib, sock) {
  const tpm = new lib.Tpm(lib.openTransport(`swtpm:unix:${sock}`));
  try {
    const hex = (hs) => hs.map((h) => `0x${h.toString(16).padStart(8, '0')}`);
    // Asked for loaded (0x02) or saved (0x03) sessions, a TPM lists HMAC and policy sessions
    // under either prefix: both queries, both ranges.
    const sessions = new Set([...(await handlesOfType(lib, tpm, 0x02, 0x02000000, 0x03ffffff)), ...(await handlesOfType(lib, tpm, 0x03, 0x02000000, 0x03ffffff))]);
    return {
      transient: hex(await handlesOfType(lib, tpm, 0x80, 0x80000000, 0x80ffffff)),
      sessions: hex([...sessions].sort((a, b) => a - b)),
      persistentInPool: hex(await handlesOfType(lib, tpm, 0x81, POOL[0], POOL[1])),
    };
  } finally {
    await tpm.transport.close();
  }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  if (!existsSync('/proc/self/status')) throw new Error('the soak reads /proc/PID/status: Linux only');
  ensureBuilt();
  const lib = await import(pathToFileURL(LIB).href);
  workDir = mkdtempSync(join(process.env.SOAK_TMPDIR ?? '/tmp', 'soak-'));
  const tpmDir = join(workDir, 'tpm');
  const svcDir = join(workDir, 'svc');
  for (const d of [tpmDir, svcDir]) mkdirSync(d);

  const swtpm = await startSwtpm(tpmDir);
  await persistEk(lib, swtpm.sock);
  const tenantsFile = join(svcDir, 'tenants.json');
  const secrets = Array.from({ length: TENANTS }, (_, i) => addTenant(tenantsFile, `soak-${i}`));
  const sock = join(svcDir, 'svc.sock');
  const logFile = join(svcDir, 'service.log');
  const fd = openSync(logFile, 'a');
  const svc = track(
    process.execPath,
    [BIN, 'serve', '--tpm', `swtpm:unix:${swtpm.sock}`, '--listen', `unix:${sock}`, '--tenants', tenantsFile, '--state-dir', join(svcDir, 'state'), '--key-store', KEY_STORE, '--log-level', 'warn'],
    { stdio: ['ignore', fd, fd] },
  );
  closeSync(fd);
  const logTail = () => readFileSync(logFile, 'utf8').slice(-3000);
  try {
    await until('eve-tpm-service', async () => (await http(sock, 'GET', '/v1/health').catch(() => ({}))).json?.status === 'ok', svc);
  } catch (e) {
    throw new Error(`${e.message}\n${logTail()}`);
  }
  const pid = svc.pid;
  const idleRss = await vmRss(pid);

  const keys = [];
  for (let i = 0; i < TENANTS; i++) {
    const r = await http(sock, 'POST', '/v1/keys', { secret: secrets[i], body: JSON.stringify({ type: i % 2 ? 'ecc' : 'rsa' }) });
    if (r.status !== 201) throw new Error(`creating tenant ${i}'s key: ${r.status} ${JSON.stringify(r.json)}`);
    keys.push({ handle: r.json.handle, secret: secrets[i], pub: createPublicKey(r.json.pem) });
  }
  say(`${TENANTS} tenants (${KEY_STORE} key store), ${CONCURRENCY} workers, until ${MAX_SIGNS} signs or ${MINUTES} min; service pid ${pid}, log ${logFile}`);

  const started = Date.now();
  const deadline = started + MINUTES * 60_000;
  const warmUpMs = Math.min(20_000, (MINUTES * 60_000) / 5);
  const samples = [];
  let warm;
  const sample = async () => {
    const s = { t: Math.round((Date.now() - started) / 1000), rss: await vmRss(pid), fds: await fdCount(pid), signs: stats.signs };
    samples.push(s);
    say(`t=${s.t}s signs=${s.signs} rss=${mib(s.rss)} fds=${s.fds}`);
    return s;
  };
  const warmTimer = setTimeout(async () => {
    warm = await sample();
  }, warmUpMs);
  const sampler = setInterval(() => warm && void sample(), SAMPLE_MS);

  await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => worker(i, sock, keys, deadline)));
  clearTimeout(warmTimer);
  clearInterval(sampler);
  const elapsed = (Date.now() - started) / 1000;
  const end = await sample();
  warm ??= samples[0];

  const wasHealthy = (await http(sock, 'GET', '/v1/health')).json;
  svc.kill('SIGTERM');
  const exit = await exitOf(svc);
  const leftovers = await tpmLeftovers(lib, swtpm.sock);
  swtpm.child.kill('SIGTERM');
  await exitOf(swtpm.child);

  const logLines = readFileSync(logFile, 'utf8').split('\n').filter((l) => l.startsWith('{'));
  const byLevel = {};
  for (const l of logLines) {
    const j = JSON.parse(l);
    if (j.level >= 50) byLevel[j.event ?? j.msg] = (byLevel[j.event ?? j.msg] ?? 0) + 1;
  }
  const lat = stats.latencies.sort((a, b) => a - b);
  const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))].toFixed(1) : 'n/a');
  const maxRss = Math.max(...samples.map((s) => s.rss));
  const expectedPersistent = KEY_STORE === 'tpm' ? keys.map((k) => k.handle).sort() : [];
  const summary = {
    keyStore: KEY_STORE,
    tenants: TENANTS,
    concurrency: CONCURRENCY,
    seconds: Math.round(elapsed),
    signs: stats.signs,
    signsPerSecond: Number((stats.signs / elapsed).toFixed(1)),
    inline: stats.inline,
    streamedCompleted: stats.streamed,
    verified: stats.verified,
    badSignatures: stats.badSignatures,
    inlineLatencyMs: { p50: pct(50), p99: pct(99) },
    induced: stats.induced,
    unexpectedErrors: stats.unexpected,
    serviceErrorLogLines: byLevel,
    rss: { idle: mib(idleRss), warmUp: mib(warm.rss), end: mib(end.rss), max: mib(maxRss) },
    fds: { warmUp: warm.fds, end: end.fds },
    healthAtEnd: wasHealthy?.status,
    serviceExit: exit,
    leftovers,
    samples: samples.map((s) => ({ t: s.t, signs: s.signs, rssMiB: Number((s.rss / 1048576).toFixed(1)), fds: s.fds })),
  };
  const problems = [];
  if (Object.keys(stats.unexpected).length) problems.push('unexpected errors');
  if (stats.badSignatures) problems.push('signatures that do not verify');
  if (exit.code !== 0) problems.push(`service exit ${exit.code ?? exit.signal}`);
  if (leftovers.transient.length || leftovers.sessions.length) problems.push('TPM leftovers');
  if (JSON.stringify(leftovers.persistentInPool) !== JSON.stringify(expectedPersistent)) problems.push('persistent objects in the pool do not match the keys');
  if (end.rss > 2 * warm.rss) problems.push('RSS more than doubled after warm-up');
  summary.verdict = problems.length ? `FAIL: ${problems.join(', ')}` : 'ok';

  const { samples: _s, ...brief } = summary;
  process.stdout.write(JSON.stringify(brief, null, 2) + '\n');
  if (opt.json) writeFileSync(opt.json, JSON.stringify(summary, null, 2) + '\n');
  if (problems.length) {
    say(`service log tail:\n${logTail()}`);
    process.exitCode = 1;
  }
}

main().catch((e) => {
  say(e.stack ?? String(e));
  process.exitCode = 1;
});
