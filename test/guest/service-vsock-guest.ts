/**
 * Runs INSIDE the qemu guest (bundled to one .cjs by service-vsock.test.ts): the real
 * eve-tpm-service executable on /dev/tpmrm0 behind a vsock listener, used over the kernel's
 * vsock loopback (CID 1) by ServiceClient, by the bundled container tools, and by a raw vsock
 * client that stops reading. Every connection goes to CID 1 (VMADDR_CID_LOCAL) only.
 *
 * The folder it runs in (the 9p share) holds eve-tpm-service.cjs, the eve_tools_tpm2_*.cjs
 * tools, this script and prebuilds/linux-x64-glibc/vsock.node. Service state and the tenants
 * file live in the guest's /tmp.
 *
 * Peer CIDs. The service learns a caller's CID from accept(). Over the loopback transport every
 * peer is CID 1, which no tenant may be bound to (0-2 are reserved), so what is real here is:
 * the CID accept() reports is 1 and reaches the audit and request logs; tenants bound to CIDs
 * 5 and 77 are refused from CID 1 even with their own secrets; the secret-only tenant app-c
 * does all the work. Granting by CID match is covered by the unit tests of the identity rules
 * (a process cannot choose its CID, and no knob lets one pretend to).
 *
 * Prints `RESULT <name> PASS|FAIL <detail>` per check and `SUMMARY <n> passed, <m> failed`;
 * progress and the service's log go to stderr.
 */
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { ServiceClient, ServiceError, type KeyInfo } from '../../src/service/client/client.js';
import { connectVsock } from '../../src/service/vsock/index.js';
import { result, log, sleep, assert, check, finish, t0 } from './report.js';
import { runNode, startServiceProcess, type Run } from './guest-service.js';

const CID = 1; // loopback only: never CID 2 or anything else
const PORT = 8877;
const ADDRESS = `vsock:${CID}:${PORT}`;
const MiB = 1024 * 1024;
const HERE = process.cwd();
const SERVICE_BIN = join(HERE, 'eve-tpm-service.cjs');
const WORK = mkdtempSync('/tmp/svc-vsock-');
const TENANTS = join(WORK, 'tenants.json');
const STATE = join(WORK, 'state');
/** The CIDs app-a's and app-b's VMs would have: never this guest's loopback peer. */
const A_CID = 5;
const B_CID = 77;

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');



async function timed<T>(p: Promise<T>): Promise<[T, number]> {
  const s = Date.now();
  const v = await p;
  return [v, Date.now() - s];
}

// ---- child processes ----------------------------------------------------------------------

/** The container tools, run as an application would: address and secret from the environment. */
function runTool(name: string, args: string[], secret: string): Promise<Run> {
  return runNode(join(HERE, `${name}.cjs`), args, {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    EVE_TOOLS_SERVICE: ADDRESS,
    EVE_TOOLS_SECRET: secret,
    EVE_TOOLS_CONFIG: 'none', // never the guest's /etc
  });
}

// ---- the service and its log ----------------------------------------------------------------

interface LogLine {
  level?: number;
  event?: string;
  msg?: string;
  requestId?: string;
  tenant?: string | null;
  op?: string | null;
  handle?: string | null;
  decision?: string;
  reason?: string;
  outcome?: string;
  status?: number;
  listener?: string;
  cid?: number;
  address?: string;
}

/** The service's JSON log lines, its other output, its stderr as it came (saved to SERVICE_LOG_FILE at the end). */
let serviceLog: LogLine[] = [];
let serviceNoise: string[] = [];
let rawLog: string[] = [];
const SERVICE_LOG_FILE = join(HERE, 'service-log.jsonl');
let service: ChildProcess | undefined;
let serviceExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;

function startService(): void {
  const args = ['serve', '--tpm', '/dev/tpmrm0', '--listen', `vsock:${PORT}`, '--tenants', TENANTS, '--state-dir', STATE, '--log-level', 'info'];
  log(`starting: node eve-tpm-service.cjs ${args.join(' ')}`);
  ({ child: service, log: serviceLog, noise: serviceNoise, raw: rawLog, exit: serviceExit } = startServiceProcess<LogLine>(SERVICE_BIN, args));
}

const requestLines = (): LogLine[] => serviceLog.filter((l) => l.event === 'request');
const auditLines = (): LogLine[] => serviceLog.filter((l) => l.event === 'audit');

/** Waits (up to `ms`) for the service's log to show what `pred` looks for. */
async function waitForLog(pred: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return true;
    await sleep(50);
  }
  return pred();
}

async function expect401(what: string, p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert(e instanceof ServiceError, `${what}: not an answer of the service: ${String(e)}`);
    assert(e.status === 401 && e.code === 'UNAUTHENTICATED', `${what}: got ${e.status} ${e.code} (${e.message}), expected 401 UNAUTHENTICATED`);
    return;
  }
  throw new Error(`${what}: accepted, expected 401`);
}

function verifies(key: KeyInfo, message: Uint8Array, signature: Uint8Array): boolean {
  // RSA keys: RSASSA-PKCS1-v1_5; ECC keys: DER ECDSA-Sig-Value (node's default dsaEncoding)
  return verify('sha256', message, createPublicKey(key.pem), signature);
}

// ---- raw HTTP over a vsock stream (for the peer that stops reading) -------------------------

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Splits a byte stream of HTTP/1.1 responses (each with Content-Length) into responses. */
function parseResponses(raw: Buffer): { responses: RawResponse[]; rest: number } {
  const responses: RawResponse[] = [];
  let off = 0;
  for (;;) {
    const end = raw.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const head = raw.subarray(off, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(head[0] ?? '');
    if (!m) throw new Error(`not an HTTP response at byte ${off}: ${JSON.stringify(head[0])}`);
    const headers: Record<string, string> = {};
    for (const h of head.slice(1)) {
      const i = h.indexOf(':');
      headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
    }
    const len = Number(headers['content-length'] ?? NaN);
    if (!Number.isInteger(len)) throw new Error(`response ${responses.length} has no Content-Length`);
    if (end + 4 + len > raw.length) break;
    responses.push({ status: Number(m[1]), headers, body: raw.subarray(end + 4, end + 4 + len) });
    off = end + 4 + len;
  }
  return { responses, rest: raw.length - off };
}

/** One GET padded with a header to exactly `size` bytes, so that N of them tile the stream evenly. */
function paddedGet(path: string, secret: string, size: number, close: boolean): string {
  const base = `GET ${path} HTTP/1.1\r\nHost: vsock\r\nAuthorization: Bearer ${secret}\r\n${close ? 'Connection: close\r\n' : ''}X-Pad: \r\n\r\n`;
  assert(base.length <= size, `request of ${base.length} bytes does not fit in ${size}`);
  return base.replace('X-Pad: ', `X-Pad: ${'p'.repeat(size - base.length)}`);
}

// ---- the checks ---------------------------------------------------------------------------------

async function main(): Promise<void> {
  const secrets: Record<string, string> = {};

  const tenantsOk = await check('tenant-add', async () => {
    const add = async (id: string, cid?: number): Promise<string> => {
      const r = await runNode(SERVICE_BIN, ['tenant', 'add', '--id', id, ...(cid === undefined ? [] : ['--cid', String(cid)]), '--tenants', TENANTS, '--service-address', ADDRESS]);
      assert(r.code === 0, `tenant add ${id}: exit ${String(r.code)}: ${r.stderr}`);
      const m = /Secret \(shown only now; only its hash is stored\):\n {2}(\S+)/.exec(r.stdout);
      assert(m, `tenant add ${id} printed no secret: ${r.stdout}`);
      return m[1]!;
    };
    secrets.a = await add('app-a', A_CID); // a VM: CID and secret
    secrets.b = await add('app-b', B_CID); // another VM
    secrets.c = await add('app-c'); // secret only, no CID
    // CID 1 (the loopback) cannot be a tenant's: the service's own rule, checked here
    const local = await runNode(SERVICE_BIN, ['tenant', 'add', '--id', 'app-local', '--cid', '1', '--tenants', TENANTS]);
    assert(local.code !== 0 && /cid must be an integer in \[3/.test(local.stderr), `tenant add --cid 1: exit ${String(local.code)} ${local.stderr}`);
    const file = readFileSync(TENANTS, 'utf8');
    for (const x of Object.values(secrets)) assert(!file.includes(x), 'a secret is stored in clear');
    const t = (JSON.parse(file) as { tenants: Array<{ id: string; cid?: number }> }).tenants;
    return `tenants ${t.map((x) => `${x.id}${x.cid === undefined ? '' : ` (cid ${x.cid})`}`).join(', ')} added with eve-tpm-service tenant add (hashes only); --cid 1 refused (exit ${String(local.code)})`;
  });
  if (!tenantsOk) return;

  // The working tenant: app-c, known by its secret alone (every loopback peer is CID 1).
  const a = new ServiceClient({ address: ADDRESS, secret: secrets.c, timeoutMs: 60_000 });
  const as = (secret: string | undefined): ServiceClient => new ServiceClient({ address: ADDRESS, ...(secret === undefined ? {} : { secret }), timeoutMs: 60_000 });

  const started = await check('service-start', async () => {
    startService();
    let exited: { code: number | null } | undefined;
    void serviceExit!.then((x) => (exited = x));
    const deadline = Date.now() + 60_000;
    let last = '';
    while (Date.now() < deadline) {
      if (exited) throw new Error(`the service exited with ${String(exited.code)}: ${serviceNoise.join(' ')} ${JSON.stringify(serviceLog.slice(-5))}`);
      if (serviceLog.some((l) => l.event === 'listening')) {
        try {
          const h = await new ServiceClient({ address: ADDRESS, timeoutMs: 5000 }).health();
          if (h.status === 'ok') {
            const listening = serviceLog.find((l) => l.event === 'listening');
            return `listening on ${String(listening?.address)} at ${Date.now() - t0} ms of script time; health ok`;
          }
          last = `health ${h.status}`;
        } catch (e) {
          last = (e as Error).message;
        }
      }
      await sleep(250);
    }
    throw new Error(`not healthy within 60 s: ${last}`);
  });
  if (!started) return;

  await check('health', async () => {
    const [h, ms] = await timed(as(undefined).health());
    assert(h.status === 'ok' && h.tpm.reachable && typeof h.version === 'string', `health ${JSON.stringify(h)}`);
    return `GET /v1/health without identity over vsock: ${JSON.stringify(h)} in ${ms} ms`;
  });

  /** Audit deny lines and request lines since `mark`, once `n` denies have been logged. */
  const deniesSince = async (mark: number, n: number): Promise<LogLine[]> => {
    await waitForLog(() => serviceLog.slice(mark).filter((l) => l.event === 'audit' && l.decision === 'deny').length >= n);
    return serviceLog.slice(mark).filter((l) => l.event === 'audit' && l.decision === 'deny');
  };
  const servedAs = async (mark: number, op: string): Promise<LogLine> => {
    await waitForLog(() => serviceLog.slice(mark).some((l) => l.event === 'request' && l.op === op && l.status === 200));
    const line = serviceLog.slice(mark).find((l) => l.event === 'request' && l.op === op && l.status === 200);
    assert(line, `no request log line for ${op}`);
    return line;
  };

  await check('identity-loopback-cid-1', async () => {
    // The genuine peer CID, 1: no tenant is bound to it, so only a tenant without CID can be
    // reached from here (by its secret); tenants bound to a CID are refused even with their secret.
    const mark = serviceLog.length;
    await expect401("app-a's secret from CID 1 (app-a is bound to CID 5)", as(secrets.a).listKeys());
    await expect401("app-b's secret from CID 1 (app-b is bound to CID 77)", as(secrets.b).listKeys());
    await expect401('no secret from CID 1', as(undefined).listKeys());
    await expect401('a made-up secret from CID 1', as(randomBytes(32).toString('base64url')).createKey({ type: 'rsa' }));
    const denies = await deniesSince(mark, 4);
    assert(denies.length === 4, `expected 4 audit deny lines, got ${denies.length}`);
    for (const d of denies) assert(d.reason === 'unauthenticated' && d.tenant === null && d.listener === 'vsock' && d.cid === 1, `audit line ${JSON.stringify(d)}`);
    const okMark = serviceLog.length;
    const keys = await as(secrets.c).listKeys();
    assert(keys.length === 0, 'app-c has keys');
    const line = await servedAs(okMark, 'list-keys');
    assert(line.tenant === 'app-c' && line.cid === 1 && line.listener === 'vsock', `request line ${JSON.stringify(line)}`);
    return `peer CID 1 as the kernel reports it: app-a's and app-b's genuine secrets, no secret, a wrong secret → 401 (4 audit denies, cid 1); app-c (no CID) by its secret → 200, logged {tenant:app-c, cid:1}`;
  });

  let rsa: KeyInfo | undefined;
  let ecc: KeyInfo | undefined;
  await check('create-keys', async () => {
    let rsaMs: number;
    let eccMs: number;
    [rsa, rsaMs] = await timed(a.createKey({ type: 'rsa' }));
    [ecc, eccMs] = await timed(a.createKey({ type: 'ecc' }));
    for (const [k, type, kt] of [
      [rsa, 'rsa', 'rsa'],
      [ecc, 'ecc', 'ec'],
    ] as const) {
      assert(/^0x81[0-9a-f]{6}$/.test(k.handle) && k.type === type && k.hashAlg === 'sha256', `key ${JSON.stringify({ ...k, pem: '…' })}`);
      assert(createPublicKey(k.pem).asymmetricKeyType === kt, `${type} PEM is a ${String(createPublicKey(k.pem).asymmetricKeyType)} key`);
    }
    assert(rsa.handle !== ecc.handle, 'same handle twice');
    const list = (await a.listKeys()).map((k) => k.handle).sort();
    assert(list.join() === [rsa.handle, ecc.handle].sort().join(), `list ${list.join()}`);
    const line = requestLines().find((l) => l.op === 'create-key' && l.handle === rsa!.handle);
    assert(line?.tenant === 'app-c' && line.cid === CID, `create logged as ${JSON.stringify(line)}`);
    return `rsa ${rsa.handle} in ${rsaMs} ms, ecc ${ecc.handle} in ${eccMs} ms; both listed; owner app-c (cid ${CID}, from accept)`;
  });
  if (!rsa || !ecc) return;
  const keyRsa = rsa;
  const keyEcc = ecc;

  await check('public-key', async () => {
    const pem = await a.getPublic(keyRsa.handle);
    assert(pem.pem === keyRsa.pem, 'PEM differs from the one given at creation');
    const der = await a.getPublic(keyEcc.handle, 'der');
    const want = createPublicKey(keyEcc.pem).export({ type: 'spki', format: 'der' });
    assert(der.data && Buffer.from(der.data).equals(want), 'DER differs from the PEM');
    return `GET public pem (rsa) and der (ecc) match the keys`;
  });

  await check('sign-small', async () => {
    const message = Buffer.from(`hello from app-a, ${randomBytes(8).toString('hex')}`);
    const out: string[] = [];
    for (const k of [keyRsa, keyEcc]) {
      const [s, ms] = await timed(a.sign(k.handle, { message }));
      assert(s.digest === sha256(message), `${k.type}: digest ${s.digest}`);
      assert(s.sigAlg === (k.type === 'rsa' ? 'rsassa' : 'ecdsa'), `${k.type}: sigAlg ${s.sigAlg}`);
      assert(verifies(k, message, s.signature), `${k.type}: the signature does not verify with node:crypto`);
      out.push(`${k.type} ${s.sigAlg} ${s.signature.length} B in ${ms} ms`);
    }
    return `${message.length}-byte message (inline JSON): ${out.join('; ')}; both verify with node:crypto`;
  });

  await check('sign-streamed-2MiB', async () => {
    const message = randomBytes(2 * MiB);
    let sent = 0;
    const [s, ms] = await timed(a.sign(keyRsa.handle, { message, onProgress: (n) => (sent = n) }));
    assert(s.messageLength === message.length, `messageLength ${s.messageLength}`);
    assert(s.digest === sha256(message), 'digest is not the message sha256');
    assert(verifies(keyRsa, message, s.signature), 'the signature does not verify with node:crypto');
    assert(sent === message.length, `progress reported ${sent} bytes`);
    const line = requestLines().find((l) => l.op === 'sign' && l.status === 200 && l.handle === keyRsa.handle && (l as { durationMs?: number }).durationMs! > 1000);
    return `2 MiB as application/octet-stream, rsa signature verifies, ${((message.length / MiB / ms) * 1000).toFixed(2)} MiB/s in ${ms} ms${line ? `; logged tenant ${String(line.tenant)} cid ${String(line.cid)}` : ''}`;
  });

  await check('tools-genaik-sign-pubgetaik', async () => {
    const gen = await runTool('eve_tools_tpm2_genaik', ['-g', '0x1'], secrets.c!);
    assert(gen.code === 0, `genaik exit ${String(gen.code)}: ${gen.stderr}`);
    const m = /^AIK Pair generated at persistent handle (0x[0-9a-f]{8})\n$/.exec(gen.stdout);
    assert(m, `genaik printed ${JSON.stringify(gen.stdout)}`);
    const handle = m[1]!;
    const pemFile = join(WORK, 'ak.pem');
    const pub = await runTool('eve_tools_tpm2_pubgetaik', ['-k', handle, '-f', pemFile], secrets.c!);
    assert(pub.code === 0 && pub.stdout === '', `pubgetaik exit ${String(pub.code)}: ${pub.stderr}${pub.stdout}`);
    const pem = readFileSync(pemFile, 'utf8');
    assert(pem.startsWith('-----BEGIN PUBLIC KEY-----') && createPublicKey(pem).asymmetricKeyType === 'rsa', `ak.pem: ${pem.slice(0, 60)}`);
    const msgFile = join(WORK, 'message.bin');
    const sigFile = join(WORK, 'sign.bin');
    const message = randomBytes(48 * 1024);
    writeFileSync(msgFile, message);
    const sig = await runTool('eve_tools_tpm2_sign', ['-k', handle, '-m', msgFile, '-g', '0x00B', '-s', sigFile], secrets.c!);
    assert(sig.code === 0 && sig.stdout === '', `sign exit ${String(sig.code)}: ${sig.stderr}${sig.stdout}`);
    const signature = readFileSync(sigFile);
    assert(verify('sha256', message, createPublicKey(pem), signature), 'the tool signature does not verify with node:crypto against ak.pem');
    const owner = requestLines().find((l) => l.op === 'create-key' && l.handle === handle);
    assert(owner?.tenant === 'app-c' && owner.cid === CID, `genaik logged as ${JSON.stringify(owner)}`);
    return (
      `genaik -g 0x1 → "${gen.stdout.trim()}" (${gen.ms} ms); pubgetaik -f ak.pem (${pub.ms} ms); ` +
      `sign -m 48 KiB -g 0x00B (${sig.ms} ms): ${signature.length}-byte signature verifies with node:crypto`
    );
  });

  await check('tool-refused', async () => {
    // app-b's genuine secret from CID 1 (app-b is bound to CID 77): the tool must fail with the auth exit code (3).
    const r = await runTool('eve_tools_tpm2_genaik', ['-g', '0x1'], secrets.b!);
    assert(r.code === 3, `exit ${String(r.code)} (expected 3): ${r.stderr}`);
    const line = r.stderr.trim();
    assert(line.split('\n').length === 1 && line.startsWith('eve_tools_tpm2_genaik: '), `stderr ${JSON.stringify(r.stderr)}`);
    return `genaik with app-b's secret from CID 1: exit 3, "${line}"`;
  });

  await check('stalled-peer', async () => {
    // A peer pipelines N key reads on one keep-alive connection and never reads the answers.
    // Each answer is ~0.9 KiB, so N of them are far more than the connection can hold
    // (vsock's 256 KiB receive buffer plus node's socket buffers): the service must stop
    // answering (and reading) that peer, without blocking its event loop, and keep serving
    // everyone else. Requests are padded to 256 bytes so the stream tiles into 64 KiB reads.
    const N = 900;
    const path = `/v1/keys/${keyRsa.handle}/public?format=pem`;
    const one = (await a.getPublic(keyRsa.handle)).pem!;
    // By op only: the request line of a synchronous endpoint carries no handle (see the report).
    const publicLines = (): LogLine[] => requestLines().filter((l) => l.op === 'get-public');
    const publicGrants = (): LogLine[] => auditLines().filter((l) => l.op === 'get-public' && l.handle === keyRsa.handle && l.decision === 'grant');
    await sleep(300);
    const answeredBefore = publicLines().length;
    const grantedBefore = publicGrants().length;

    const stuck: Duplex = await connectVsock(CID, PORT, { timeoutMs: 10_000 });
    stuck.pause(); // never read (node stops reading once its 16 KiB buffer is full)
    const requests = Array.from({ length: N }, (_, i) => paddedGet(path, secrets.c!, 256, i === N - 1)).join('');
    stuck.write(requests);

    // Wait until the service stops both answering and reading that peer: its request-log and
    // audit counts stay put for 2 s (under emulation it handles ~100 of these a second).
    let last = '';
    let stableSince = Date.now();
    const waitStart = Date.now();
    while (Date.now() - waitStart < 40_000) {
      const state = `${publicLines().length - answeredBefore}/${publicGrants().length - grantedBefore}`;
      if (process.env.DEBUG_STALL) log(`answered/read ${state}, log ${serviceLog.length}`);
      if (state !== last) {
        last = state;
        stableSince = Date.now();
      } else if (publicLines().length > answeredBefore && Date.now() - stableSince >= 2000) break;
      await sleep(100);
    }
    const answeredAtStall = publicLines().length - answeredBefore;
    const parsedAtStall = publicGrants().length - grantedBefore;
    assert(answeredAtStall > 0, 'the service answered none of the pipelined requests');
    assert(answeredAtStall < N, `all ${N} answers fit in the buffers: nothing stalled (make N larger)`);
    log(`stalled: ${answeredAtStall} answers written, ${parsedAtStall} requests read, of ${N}`);

    // Meanwhile: other clients, the same tenant, new connections.
    const health: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [h, ms] = await timed(new ServiceClient({ address: ADDRESS, timeoutMs: 30_000 }).health());
      assert(h.status === 'ok', `health ${h.status}`);
      health.push(ms);
    }
    const message = Buffer.from('signed while another peer is stalled');
    const [[sr, se, list], othersMs] = await timed(
      Promise.all([a.sign(keyRsa.handle, { message }), a.sign(keyEcc.handle, { message }), a.listKeys()]),
    );
    assert(verifies(keyRsa, message, sr.signature) && verifies(keyEcc, message, se.signature), 'a signature made during the stall does not verify');
    assert(list.some((k) => k.handle === keyRsa.handle), `list during the stall: ${JSON.stringify(list)}`);
    const [h2, h2ms] = await timed(new ServiceClient({ address: ADDRESS, timeoutMs: 30_000 }).health());
    assert(h2.status === 'ok', 'health after the signs');
    health.push(h2ms);

    // Ordering: everything above finished while the stalled peer still waits for its answers.
    const answeredAfterOthers = publicLines().length - answeredBefore;
    const parsedAfterOthers = publicGrants().length - grantedBefore;
    assert(answeredAfterOthers === answeredAtStall, `the stalled peer got more answers meanwhile (${answeredAtStall} -> ${answeredAfterOthers}) though it read nothing`);
    assert(parsedAfterOthers === parsedAtStall, `the service kept reading the stalled peer (${parsedAtStall} -> ${parsedAfterOthers})`);
    assert(Math.max(...health) < 5000, `health latencies ${health.join('/')} ms while a peer is stalled`);

    // Now read: every answer must arrive, whole and in order, then the service closes (the
    // last request said Connection: close).
    const resumeAt = Date.now();
    const parts: Buffer[] = [];
    const ended = new Promise<string>((resolve) => {
      stuck.on('data', (c: Buffer) => parts.push(c));
      stuck.once('end', () => resolve('EOF'));
      stuck.once('error', (e) => resolve(`error ${e.message}`));
      stuck.once('close', () => resolve('closed'));
    });
    stuck.resume();
    const how = await Promise.race([ended, sleep(60_000).then(() => 'no end within 60 s')]);
    const raw = Buffer.concat(parts);
    const { responses, rest } = parseResponses(raw);
    const statuses = new Map<number, number>();
    for (const r of responses) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    const summary = [...statuses].map(([s, n]) => `${n}×${s}`).join(', ');
    assert(how === 'EOF', `the stalled connection ended with ${how} after ${responses.length} responses (${summary})`);
    assert(rest === 0, `${rest} stray bytes after the last response`);
    // Normally all N arrive. Should a read have ended inside a request (the padding makes the
    // 64 KiB reads end on request boundaries), that half request sits in the parser and the
    // service's headers timeout (10 s) may answer it 408 and close: also correct, as long as
    // everything before it is whole and in order.
    const timedOut = responses.length < N && responses[responses.length - 1]?.status === 408;
    const answers = timedOut ? responses.slice(0, -1) : responses;
    assert(answers.every((r) => r.status === 200), `statuses ${summary}`);
    assert(timedOut ? answers.length >= answeredAtStall : answers.length === N, `got ${responses.length} responses (${summary}), expected ${N}×200`);
    for (const r of answers) {
      const j = JSON.parse(r.body.toString('utf8')) as { handle: string; pem: string };
      assert(j.handle === keyRsa.handle && j.pem === one, 'an answer on the stalled connection is not the key');
    }
    const ids = new Set(answers.map((r) => r.headers['x-request-id']));
    assert(ids.size === answers.length, 'request ids repeat');
    const bytes = raw.length;
    const ending = timedOut ? `${answers.length}×200 in order then the headers timeout's 408 for a half-read request` : `${N}×200 in order`;
    return (
      `${N} pipelined GET public (256 B each) on one connection that did not read: the service wrote ${answeredAtStall} answers ` +
      `(~${((answeredAtStall * (bytes / responses.length)) / 1024).toFixed(0)} KiB) and read ${parsedAtStall} requests, then stopped both; meanwhile ` +
      `health ${health.join('/')} ms, 2 signs (rsa, ecc) + list in ${othersMs} ms, all verified, stalled peer's count unchanged; ` +
      `after resuming: ${ending}, ${(bytes / 1024).toFixed(0)} KiB, then EOF (${Date.now() - resumeAt} ms)`
    );
  });

  await check('sigterm-exit-0', async () => {
    const child = service!;
    child.kill('SIGTERM');
    const exit = await Promise.race([serviceExit!, sleep(45_000).then(() => undefined)]);
    if (!exit) {
      child.kill('SIGKILL');
      throw new Error('the service did not exit within 45 s of SIGTERM');
    }
    assert(exit.code === 0 && exit.signal === null, `exit code ${String(exit.code)} signal ${String(exit.signal)}`);
    assert(serviceLog.some((l) => l.event === 'stopped'), 'no "stopped" log line');
    return `SIGTERM → drained, "eve-tpm-service stopped", exit 0`;
  });

  await check('service-log-clean', async () => {
    const bad = serviceLog.filter((l) => (l.level ?? 0) >= 50 || l.event === 'internal-error');
    const warns = serviceLog.filter((l) => l.level === 40);
    const refusedConns = warns.filter((l) => l.event === 'vsock' || l.event === 'connection-refused');
    assert(bad.length === 0, `error lines: ${JSON.stringify(bad.slice(0, 3))}`);
    assert(refusedConns.length === 0, `vsock connections refused or unidentified: ${JSON.stringify(refusedConns.slice(0, 3))}`);
    assert(serviceNoise.length === 0, `non-JSON output: ${serviceNoise.slice(0, 3).join(' | ')}`);
    const served = requestLines();
    const byTenant = new Map<string, number>();
    for (const l of served) byTenant.set(String(l.tenant), (byTenant.get(String(l.tenant)) ?? 0) + 1);
    assert(served.every((l) => l.listener === 'vsock' && l.cid === CID), 'a request line without listener vsock or with an unexpected cid');
    return `${serviceLog.length} JSON log lines, no errors, no refused vsock connections, ${warns.length} warnings; requests by tenant: ${[...byTenant].map(([t, n]) => `${t} ${n}`).join(', ')}`;
  });
}

main()
  .catch((e: unknown) => result('main', false, (e as Error).stack ?? String(e)))
  .finally(() => {
    if (service && service.exitCode === null && service.signalCode === null) service.kill('SIGKILL');
    try {
      writeFileSync(SERVICE_LOG_FILE, rawLog.join(''));
    } catch {
      // the share is read-only: only the RESULT lines then
    }
    finish();
  });
