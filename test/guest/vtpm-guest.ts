/**
 * Runs INSIDE the qemu guest (bundled by vtpm-proxy.test.ts): eve-tpm-vtpmd makes a TPM device
 * with the kernel's vTPM proxy (tpm_vtpm_proxy.ko, insmod'ed from the shared folder) and passes
 * its commands through to the guest's raw chip /dev/tpm0; then the library's device transport
 * and stock tpm2-tools (the default device TCTI) use the new /dev/tpmrmN as any program would.
 * (Not /dev/tpmrm0: two kernel resource managers stacked break on sessions, see docs/FIREWALL.md.)
 * Last, the daemon sends the commands to eve-tpm-service's raw channel (vsock loopback, CID 1) and
 * stock tpm2-tools use that device; then tpm2-tools go through eve_tools_tpm2_tcti (cmd TCTI) to the
 * same service. Then the `tenant add --raw-tpm device` user-data the host made is applied as cloud-init
 * would (apply-user-data.mjs): its setup starts the daemon, and stock tpm2-tools with no TCTI
 * setting (tpm2-tss's default: /dev/tpmrm0, then /dev/tpm0) use that device, shown at those paths
 * in a private mount namespace since the guest's own chip holds them. Last, the chip (/dev/tpm0) is
 * checked to hold nothing of the app's.
 *
 * Prints `RESULT <name> PASS|FAIL <detail>` per check and `SUMMARY <n> passed, <m> failed`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreatePrimary,
  GetCapability,
  GetRandom,
  TPM_ALG,
  TPM_CAP,
  TPM_RH,
  Tpm,
  akEccTemplate,
  createAk,
  flush,
  objectAttrs,
  openTransport,
  signMessage,
  verifyMessageSignature,
  withLoadedKey,
  type EccPublic,
} from '../../src/tpm/index.js';
import { assert, check, finish, log } from './report.js';

const DIR = process.cwd();
const DAEMON = join(DIR, 'eve-tpm-vtpmd.cjs');
/** tpm2-tools and their libraries, copied from the shared folder into tmpfs. */
const TOOLS = mkdtempSync('/tmp/tpm2-tools-');

interface Done {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Done> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** The running daemon: its output so far, and its end. */
interface Daemon {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  ended: Promise<Done>;
}

function startDaemon(args: string[]): Daemon {
  return startDaemonEnv(args, process.env);
}

function startDaemonEnv(args: string[], env: NodeJS.ProcessEnv): Daemon {
  const child = spawn(process.execPath, [DAEMON, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const d: Daemon = { child, stdout: '', stderr: '', ended: undefined as unknown as Promise<Done> };
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (d.stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (d.stderr += s));
  d.ended = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout: d.stdout, stderr: d.stderr })));
  return d;
}

/** Resolves with the ready line's device numbers, or rejects when the daemon ends first. */
function untilReady(d: Daemon): Promise<{ tpm: string; rm: string }> {
  return new Promise((resolve, reject) => {
    const look = (): boolean => {
      const m = /ready (\/dev\/tpm\d+) (\/dev\/tpmrm\d+)/.exec(d.stdout);
      if (m) resolve({ tpm: m[1]!, rm: m[2]! });
      return m !== null;
    };
    if (look()) return;
    d.child.stdout!.on('data', () => look());
    void d.ended.then((r) => reject(new Error(`the daemon ended (${String(r.code ?? r.signal)}) before ready: ${r.stderr.trim()}`)));
  });
}

const codesOf = (trace: string): string[] => [...trace.matchAll(/^eve-tpm-vtpmd: trace (0x[0-9a-f]{8}) \d+ bytes -> (0x[0-9a-f]{8})/gm)].map((m) => `${m[1]}=${m[2]}`);

async function main(): Promise<void> {
  let daemon: Daemon | undefined;
  let rm = '';
  let tpmNode = '';

  await check('no-vtpmx', async () => {
    assert(!existsSync('/dev/vtpmx'), '/dev/vtpmx exists before the module is loaded');
    const r = await run(process.execPath, [DAEMON, '--tpm', '/dev/tpm0']);
    assert(r.code === 3, `exit ${String(r.code)}: ${r.stderr}`);
    assert(/no \/dev\/vtpmx: .*modprobe tpm_vtpm_proxy/.test(r.stderr), r.stderr);
    return `exit 3: ${r.stderr.trim()}`;
  });

  await check('insmod', async () => {
    const r = await run('insmod', [join(DIR, 'tpm_vtpm_proxy.ko')]);
    assert(r.code === 0, `insmod: exit ${String(r.code)} ${r.stderr}`);
    assert(existsSync('/dev/vtpmx'), 'no /dev/vtpmx after insmod');
    return 'tpm_vtpm_proxy loaded, /dev/vtpmx present';
  });

  await check('no-channel', async () => {
    const r = await run(process.execPath, [DAEMON, '--tpm', '/dev/no-such-tpm']);
    assert(r.code === 4 && /no TPM device at \/dev\/no-such-tpm/.test(r.stderr), `exit ${String(r.code)}: ${r.stderr}`);
    // No service listens on this port: refused before any device is made.
    const env = { ...process.env, EVE_TOOLS_CONFIG: 'none', EVE_TOOLS_SECRET: 'x' };
    const s = await run(process.execPath, [DAEMON, '--service', 'vsock:1:9'], env);
    assert(s.code === 4 && /cannot reach the TPM service at vsock:1:9/.test(s.stderr), `--service: exit ${String(s.code)}: ${s.stderr}`);
    assert(!existsSync('/dev/tpm1'), 'a device was made although the channel was unreachable');
    const u = await run(process.execPath, [DAEMON, '--tpm', '/dev/tpm0', '--service', 'vsock:1:9']);
    assert(u.code === 2 && /exclude each other/.test(u.stderr), `--tpm with --service: exit ${String(u.code)}: ${u.stderr}`);
    return `exit 4: ${r.stderr.trim()}; ${s.stderr.trim()}; --tpm with --service exit 2`;
  });

  await check('device-up', async () => {
    daemon = startDaemon(['--tpm', '/dev/tpm0', '--trace']);
    ({ tpm: tpmNode, rm } = await untilReady(daemon));
    assert(existsSync(tpmNode) && existsSync(rm), `${tpmNode} or ${rm} missing`);
    // Every command the kernel sent while registering the chip, with the answer it got.
    return `${tpmNode} + ${rm}; the kernel sent: ${codesOf(daemon.stderr).join(' ')}`;
  });

  await check('library-getrandom', async () => {
    assert(rm, 'no device');
    const transport = openTransport(rm);
    const tpm = new Tpm(transport);
    try {
      const a = await tpm.run(GetRandom, { bytesRequested: 32 });
      const b = await tpm.run(GetRandom, { bytesRequested: 32 });
      assert(a.randomBytes.length === 32 && b.randomBytes.length === 32, `lengths ${a.randomBytes.length}, ${b.randomBytes.length}`);
      assert(!Buffer.from(a.randomBytes).equals(Buffer.from(b.randomBytes)), 'the same bytes twice');
      return `2 × 32 random bytes through ${rm}`;
    } finally {
      await transport.close();
    }
  });

  await check('library-createprimary-sign', async () => {
    assert(rm, 'no device');
    const mark = daemon!.stderr.length;
    try {
      return await createPrimarySign();
    } catch (e) {
      await new Promise((r) => setTimeout(r, 300)); // the daemon's last trace lines
      // What the chip answered on the way: the kernel's resource manager hides its own errors.
      throw new Error(`${(e as Error).message}; commands: ${codesOf(daemon!.stderr.slice(mark)).join(' ')}`);
    }
  });

  async function createPrimarySign(): Promise<string> {
    const transport = openTransport(rm);
    const tpm = new Tpm(transport);
    try {
      await createPrimarySignOn(tpm);
      // A policy session (EK's PolicySecret) and Create/Load through both resource managers.
      const msg = new TextEncoder().encode('signed through the vTPM proxy');
      const ak = await createAk(tpm, 'ecc');
      assert(ak.publicArea.type === TPM_ALG.ECC, `AK type ${ak.publicArea.type}`);
      const sig2 = await withLoadedKey(tpm, ak, (h) => signMessage(tpm, h, msg));
      assert(verifyMessageSignature(ak.publicArea, msg, sig2), 'AK signature does not verify');
      return `CreatePrimary(owner, ECC signing) + Sign verified; createAk(ecc) + Sign verified`;
    } finally {
      await transport.close();
    }
  }

  await check('tpm2-tools', async () => {
    assert(rm, 'no device');
    assert(existsSync(join(DIR, 'bin/tpm2')), 'tpm2-tools were not copied into the guest folder');
    // Into tmpfs once: every run loads ~35 libraries, and 9p reads are slow under TCG.
    // The cmd TCTI's helper too (with the vsock addon it finds beside itself): one node start per tool run.
    const cp = await run('cp', ['-r', join(DIR, 'bin'), join(DIR, 'lib'), join(DIR, 'eve_tools_tpm2_tcti.cjs'), join(DIR, 'prebuilds'), TOOLS]);
    assert(cp.code === 0, `cp: ${cp.stderr}`);
    const tpm2 = join(TOOLS, 'bin/tpm2');
    const env = { ...process.env, LD_LIBRARY_PATH: join(TOOLS, 'lib'), TPM2TOOLS_TCTI: `device:${rm}` };
    const t = async (...args: string[]): Promise<string> => {
      const r = await run(tpm2, args, env);
      assert(r.code === 0, `tpm2 ${args.join(' ')}: exit ${String(r.code)} ${r.stderr.trim()}`);
      return r.stdout;
    };
    const rnd = await t('getrandom', '--hex', '16');
    assert(/^[0-9a-f]{32}$/.test(rnd.trim()), `getrandom printed ${rnd}`);
    const w = (f: string): string => join('/tmp', f);
    await t('createprimary', '-C', 'o', '-G', 'ecc', '-c', w('p.ctx'));
    await t('create', '-C', w('p.ctx'), '-G', 'ecc', '-u', w('k.pub'), '-r', w('k.priv'));
    await t('load', '-C', w('p.ctx'), '-u', w('k.pub'), '-r', w('k.priv'), '-c', w('k.ctx'));
    await run('sh', ['-c', `echo 'tpm2-tools through the vTPM proxy' > ${w('msg')}`]);
    await t('sign', '-c', w('k.ctx'), '-g', 'sha256', '-o', w('sig'), w('msg'));
    await t('verifysignature', '-c', w('k.ctx'), '-g', 'sha256', '-s', w('sig'), '-m', w('msg'));
    return `TPM2TOOLS_TCTI=device:${rm}: getrandom ${rnd.trim()}; createprimary → create → load → sign → verifysignature`;
  });

  await check('sigterm', async () => {
    assert(daemon, 'no daemon');
    daemon.child.kill('SIGTERM');
    const r = await daemon.ended;
    assert(r.code === 0, `exit ${String(r.code ?? r.signal)}: ${r.stderr.split('\n').slice(-3).join(' ')}`);
    assert(!existsSync(rm) && !existsSync(tpmNode), `${rm} still there after the daemon stopped`);
    return `exit 0; ${tpmNode} and ${rm} gone`;
  });

  await firewallChecks();

  if (daemon && daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
  log('done');
  finish();
}

/** CreatePrimary (owner; by default an ECC AK template) + Sign, verified in software; the primary is flushed. */
async function createPrimarySignOn(tpm: Tpm, template: EccPublic = akEccTemplate()): Promise<void> {
  const p = await tpm.run(CreatePrimary, {
    primaryHandle: TPM_RH.OWNER,
    inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) },
    inPublic: template,
    outsideInfo: new Uint8Array(0),
    creationPCR: [],
  });
  const msg = new TextEncoder().encode('signed through the vTPM proxy');
  try {
    const sig = await signMessage(tpm, p.objectHandle, msg);
    assert(verifyMessageSignature(p.outPublic, msg, sig), 'signature does not verify');
    assert(!verifyMessageSignature(p.outPublic, new TextEncoder().encode('other'), sig), 'verifies another message');
  } finally {
    await flush(tpm, p.objectHandle);
  }
}

// ---- the same device, its commands through the service's raw channel (the firewall) ----------

const SERVICE_BIN = join(DIR, 'eve-tpm-service.cjs');
const PORT = 8877;

/** Handles on the guest's chip itself (/dev/tpm0, no resource manager): transient, sessions, persistent. */
async function chipHandles(): Promise<string> {
  const transport = openTransport('/dev/tpm0');
  const tpm = new Tpm(transport);
  try {
    const out: string[] = [];
    for (const first of [0x80000000, 0x02000000, 0x03000000, 0x81000000]) {
      const r = await tpm.run(GetCapability, { capability: TPM_CAP.HANDLES as never, property: first, propertyCount: 64 });
      const list = r.capabilityData.capability === TPM_CAP.HANDLES ? (r.capabilityData.data as number[]) : [];
      out.push(`${first.toString(16)}:[${list.map((h) => h.toString(16)).join(',')}]`);
    }
    return out.join(' ');
  } finally {
    await transport.close();
  }
}

/** Runs `tpm2 TOOL …` from the tmpfs copy with `tcti`; resolves with stdout, rejects with the tool's stderr. */
function tools(tcti: string, extra: NodeJS.ProcessEnv = {}) {
  const env = { ...process.env, ...extra, LD_LIBRARY_PATH: join(TOOLS, 'lib'), TPM2TOOLS_TCTI: tcti };
  return async (...args: string[]): Promise<string> => {
    const r = await run(join(TOOLS, 'bin/tpm2'), args, env);
    assert(r.code === 0, `tpm2 ${args.join(' ')}: exit ${String(r.code)} ${r.stderr.trim()}`);
    return r.stdout;
  };
}

/**
 * The device with its commands through eve-tpm-service's raw channel: the firewall answers the
 * kernel's SelfTest itself and passes the GetCapability and GetRandom of the registration, so the
 * device comes up; then GetRandom (library and tpm2_getrandom) and the app's own primary signing
 * (unrestricted: the firewall gives hashes NULL tickets, which a restricted key cannot sign with).
 * Then stock tpm2-tools through that device, and through eve_tools_tpm2_tcti (cmd TCTI) with no device.
 */
async function firewallChecks(): Promise<void> {
  const work = mkdtempSync('/tmp/vtpm-fw-');
  const tenants = join(work, 'tenants.json');
  let service: ChildProcess | undefined;
  let fw: Daemon | undefined;
  let serviceErr = '';
  let secret = '';
  let rmNode = '';
  const before = await chipHandles().catch((e: unknown) => `(not read: ${(e as Error).message})`);
  // Tenant app-d, whose --raw-tpm device user-data the host made, is served by the same service.
  if (existsSync(join(DIR, 'tenants.json'))) copyFileSync(join(DIR, 'tenants.json'), tenants);
  await check('firewall-path', async () => {
    const add = await run(process.execPath, [SERVICE_BIN, 'tenant', 'add', '--id', 'app-v', '--tenants', tenants, '--service-address', `vsock:1:${PORT}`]);
    assert(add.code === 0, `tenant add: ${add.stderr}`);
    secret = /Secret \(shown only now; only its hash is stored\):\n {2}(\S+)/.exec(add.stdout)?.[1] ?? '';
    assert(secret, `tenant add printed no secret: ${add.stdout}`);
    service = spawn(process.execPath, [SERVICE_BIN, 'serve', '--tpm', '/dev/tpmrm0', '--listen', `vsock:${PORT}`, '--tenants', tenants, '--state-dir', join(work, 'state'), '--log-level', 'warn'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    service.stderr!.setEncoding('utf8').on('data', (x: string) => (serviceErr += x));
    const env = { ...process.env, EVE_TOOLS_CONFIG: 'none', EVE_TOOLS_SECRET: secret };
    // The service takes a moment to listen: a refused connection (exit 4) is tried again.
    for (let i = 0; i < 100 && !rmNode; i++) {
      fw = startDaemonEnv(['--service', `vsock:1:${PORT}`, '--trace'], env);
      try {
        rmNode = (await untilReady(fw)).rm;
      } catch (e) {
        const r = await fw.ended;
        if (r.code !== 4 || !/cannot reach the TPM service/.test(r.stderr)) throw new Error(`${(e as Error).message}; service: ${serviceErr.slice(-500)}`);
        await new Promise((res) => setTimeout(res, 200));
      }
    }
    assert(rmNode, `the daemon never reached the service: ${fw?.stderr ?? ''}`);
    const kernel = codesOf(fw!.stderr).join(' ');
    const transport = openTransport(rmNode);
    const tpm = new Tpm(transport);
    try {
      const a = await tpm.run(GetRandom, { bytesRequested: 16 });
      assert(a.randomBytes.length === 16, `GetRandom gave ${a.randomBytes.length} bytes`);
      const unrestricted = { ...akEccTemplate(), objectAttributes: objectAttrs.of('fixedTPM', 'fixedParent', 'sensitiveDataOrigin', 'userWithAuth', 'sign') };
      await createPrimarySignOn(tpm, unrestricted);
    } finally {
      await transport.close();
    }
    const rnd = await tools(`device:${rmNode}`)('getrandom', '--hex', '8');
    assert(/^[0-9a-f]{16}$/.test(rnd.trim()), `tpm2 getrandom printed ${rnd}`);
    return `${rmNode} through the firewall: GetRandom (library, tpm2_getrandom), the app's primary (ECC, unrestricted) + Sign verified; the kernel sent: ${kernel}`;
  });

  await check('firewall-device-tools', async () => {
    assert(rmNode, 'no device through the firewall');
    const t = tools(`device:${rmNode}`);
    const w = (f: string): string => join(work, `dev-${f}`);
    await run('sh', ['-c', `echo 'stock tools through the firewall device' > ${w('msg')}`]);
    await t('createprimary', '-C', 'o', '-G', 'ecc', '-c', w('p.ctx'));
    await t('create', '-C', w('p.ctx'), '-G', 'ecc', '-u', w('k.pub'), '-r', w('k.priv'));
    await t('load', '-C', w('p.ctx'), '-u', w('k.pub'), '-r', w('k.priv'), '-c', w('k.ctx'));
    await t('sign', '-c', w('k.ctx'), '-g', 'sha256', '-o', w('sig'), w('msg'));
    await t('verifysignature', '-c', w('k.ctx'), '-g', 'sha256', '-s', w('sig'), '-m', w('msg'));
    // A wrong message must not verify: the check above is a real one.
    await run('sh', ['-c', `echo 'another message' > ${w('other')}`]);
    const bad = await run(join(TOOLS, 'bin/tpm2'), ['verifysignature', '-c', w('k.ctx'), '-g', 'sha256', '-s', w('sig'), '-m', w('other')], {
      ...process.env,
      LD_LIBRARY_PATH: join(TOOLS, 'lib'),
      TPM2TOOLS_TCTI: `device:${rmNode}`,
    });
    assert(bad.code !== 0, 'the signature verifies another message');
    return `TPM2TOOLS_TCTI=device:${rmNode} (daemon --service vsock:1:${PORT}): createprimary → create → load → sign → verifysignature; another message refused`;
  });

  // The daemon stops first: the device's connection closes and the firewall flushes what it held.
  fw?.child.kill('SIGTERM');
  if (fw) await fw.ended;

  await check('cmd-tcti-tools', async () => {
    assert(secret, 'no tenant');
    assert(existsSync(join(TOOLS, 'lib/libtss2-tcti-cmd.so.0')), 'libtss2-tcti-cmd.so.0 was not copied into the guest folder');
    const helper = join(TOOLS, 'eve_tools_tpm2_tcti.cjs');
    const t = tools(`cmd:${process.execPath} ${helper}`, { EVE_TOOLS_CONFIG: 'none', EVE_TOOLS_SERVICE: `vsock:1:${PORT}`, EVE_TOOLS_SECRET: secret });
    const w = (f: string): string => join(work, `cmd-${f}`);
    const rnd = await t('getrandom', '--hex', '16');
    assert(/^[0-9a-f]{32}$/.test(rnd.trim()), `getrandom printed ${rnd}`);
    await run('sh', ['-c', `echo 'stock tools through the cmd TCTI' > ${w('msg')}`]);
    const primary = await t('createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', w('p.ctx'));
    await t('create', '-C', w('p.ctx'), '-G', 'ecc', '-u', w('k.pub'), '-r', w('k.priv'));
    await t('load', '-C', w('p.ctx'), '-u', w('k.pub'), '-r', w('k.priv'), '-c', w('k.ctx'));
    await t('sign', '-c', w('k.ctx'), '-g', 'sha256', '-o', w('sig'), w('msg'));
    await t('verifysignature', '-c', w('k.ctx'), '-g', 'sha256', '-s', w('sig'), '-m', w('msg'));
    // The public key's x coordinate, as tpm2-tools print it (createprimary and readpublic alike).
    const xOf = (out: string): string | undefined => /^\s*x: ([0-9a-f]+)$/m.exec(out)?.[1];
    const x = xOf(primary);
    assert(x && /^[0-9a-f]{64}$/.test(x), `createprimary printed no x: ${primary}`);
    const ev = await t('evictcontrol', '-C', 'o', '-c', w('p.ctx'), '0x81000100');
    assert(/persistent-handle: 0x81000100/.test(ev) && /action: persisted/.test(ev), `evictcontrol printed ${ev}`);
    // A new process (a new connection) reads the same public key back from the app's handle.
    const again = xOf(await t('readpublic', '-c', '0x81000100'));
    assert(again === x, `0x81000100 has x ${again}, the primary had ${x}`);
    const pcr = await t('pcrread', 'sha256:0,1');
    assert(/sha256:\s+0 : 0x[0-9A-F]{64}/.test(pcr), `pcrread printed ${pcr}`);
    return `cmd:eve_tools_tpm2_tcti over vsock:1:${PORT}: getrandom; createprimary → create → load → sign → verifysignature; evictcontrol 0x81000100 + readpublic in a new process (same public key, x ${x.slice(0, 12)}…); pcrread`;
  });

  await deviceUserDataChecks(work);

  await check('nothing-left', async () => {
    const after = await chipHandles();
    assert(after === before, `the chip's handles were ${before}, now ${after}`);
    return `/dev/tpm0 handles (transient, loaded and saved sessions, persistent) as before: ${after}`;
  });
  service?.kill('SIGTERM');
}

main().catch((e: unknown) => {
  console.log(`RESULT main FAIL ${(e as Error).stack ?? String(e)}`);
  finish();
});

// ---- `tenant add --raw-tpm device`: the user-data's daemon and stock tools with no TCTI setting --

async function deviceUserDataChecks(work: string): Promise<void> {
  let dev: { tpm: string; rm: string } | undefined;
  await check('device-user-data', async () => {
    const json = join(DIR, 'device-user-data.json');
    assert(existsSync(json), 'the host made no device-user-data.json');
    const r = await run(process.execPath, [join(DIR, 'apply-user-data.mjs'), json]);
    log(r.stdout + r.stderr);
    assert(r.code === 0, `apply-user-data exit ${String(r.code)}: ${r.stdout}${r.stderr}`);
    const m = /eve-tools: TPM device (\/dev\/tpm\d+) \+ (\/dev\/tpmrm\d+) up \((.*)$/m.exec(r.stderr);
    assert(m, `setup reported no device: ${r.stderr}`);
    dev = { tpm: m[1]!, rm: m[2]! };
    // The guest has no systemd or OpenRC: started by hand, and the setup says so.
    assert(/neither systemd nor OpenRC found/.test(m[3]!), `setup said: ${m[3]}`);
    assert(existsSync(dev.rm) && existsSync(dev.tpm), `${dev.rm} missing after runcmd ended`);
    assert(readFileSync('/run/eve-tpm-vtpmd.ready', 'utf8') === `${dev.tpm} ${dev.rm}\n`, 'the ready file names another device');
    // The guest's chip holds /dev/tpmrm0, so the setup points tpm2-tss at the new device.
    const environment = readFileSync('/etc/environment', 'utf8');
    if (dev.rm !== '/dev/tpmrm0') assert(environment.includes(`TPM2TOOLS_TCTI="device:${dev.rm}"\n`), `/etc/environment: ${environment}`);
    return `${dev.tpm} + ${dev.rm} before runcmd ended; ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`;
  });

  await check('device-default-tcti', async () => {
    assert(dev, 'no device from the user-data');
    const tpm2 = join(TOOLS, 'bin/tpm2');
    const w = (f: string): string => join(work, `default-${f}`);
    // A private mount namespace where /dev/tpmrm0 and /dev/tpm0 are the new device: a VM whose only
    // TPM it is. No TPM2TOOLS_TCTI: tpm2-tss's default order reaches nothing else.
    const script = [
      'set -e',
      `mount --bind ${dev.rm} /dev/tpmrm0`,
      `mount --bind ${dev.tpm} /dev/tpm0`,
      `"${tpm2}" getrandom --hex 16; echo`,
      `"${tpm2}" createprimary -C o -G ecc -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign' -c ${w('p.ctx')} >/dev/null`,
      `echo 'stock tools, default TCTI, the user-data device' > ${w('msg')}`,
      `"${tpm2}" sign -c ${w('p.ctx')} -g sha256 -o ${w('sig')} ${w('msg')}`,
      `"${tpm2}" verifysignature -c ${w('p.ctx')} -g sha256 -s ${w('sig')} -m ${w('msg')}`,
      `echo other > ${w('other')}`,
      `if "${tpm2}" verifysignature -c ${w('p.ctx')} -g sha256 -s ${w('sig')} -m ${w('other')} 2>/dev/null; then echo 'verified another message'; exit 1; fi`,
      'echo signed-and-verified',
    ];
    const env: NodeJS.ProcessEnv = { ...process.env, LD_LIBRARY_PATH: join(TOOLS, 'lib') };
    delete env.TPM2TOOLS_TCTI;
    delete env.TPM2OPENSSL_TCTI;
    let result: Done;
    try {
      result = await run('unshare', ['-m', 'sh', '-c', script.join('\n')], env);
    } finally {
      await stopUserDataDaemon();
    }
    assert(result.code === 0, `exit ${String(result.code)}: ${result.stdout} ${result.stderr.trim()}`);
    const rnd = result.stdout.split('\n')[0]!.trim();
    assert(/^[0-9a-f]{32}$/.test(rnd) && result.stdout.includes('signed-and-verified'), `printed ${result.stdout}`);
    const logText = readFileSync('/var/log/eve-tpm-vtpmd.log', 'utf8');
    assert(/stopped by SIGTERM/.test(logText), `the daemon's log: ${logText}`);
    assert(!existsSync(dev.rm) && !existsSync('/run/eve-tpm-vtpmd.ready'), `${dev.rm} or the ready file left after SIGTERM`);
    return `no TPM2TOOLS_TCTI, ${dev.rm} as /dev/tpmrm0: getrandom ${rnd}; createprimary (ECC sign) → sign → verifysignature, another message refused; SIGTERM: ${logText.trim().split('\n').pop()}`;
  });
}

/** SIGTERM to the daemon the user-data's setup started (its pid file), and its end. */
async function stopUserDataDaemon(): Promise<void> {
  if (!existsSync('/run/eve-tpm-vtpmd.pid')) return;
  const pid = Number(readFileSync('/run/eve-tpm-vtpmd.pid', 'utf8').trim());
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return; // already gone
  }
  // Its last log line comes after the device and the ready file are gone (a zombie keeps /proc/PID).
  const said = (): boolean => /stopped by|exiting/.test(readFileSync('/var/log/eve-tpm-vtpmd.log', 'utf8'));
  for (let i = 0; i < 200 && !said(); i++) await new Promise((r) => setTimeout(r, 50));
}
