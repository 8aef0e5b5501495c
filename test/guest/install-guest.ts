/**
 * Runs INSIDE the qemu guest (bundled to one .cjs by install.test.ts): the user-data that
 * `eve-tpm-service tenant add --user-data` wrote on the host is applied the way cloud-init would
 * (the guest has no cloud-init: apply-user-data.mjs does its write_files and runcmd, from the
 * user-data the host parsed to JSON with PyYAML), with no network. Then the real service runs on
 * /dev/tpmrm0 behind a vsock listener and the installed commands — by their names on PATH, with
 * the addon setup.sh picked — do genaik, pubgetaik and sign over vsock (loopback, CID 1); the
 * signature is checked with node:crypto (the guest has no openssl).
 *
 * The folder (the 9p share) holds eve-tpm-service.cjs, prebuilds/ for the service, the tenants
 * file, user-data.json and apply-user-data.mjs. Prints RESULT lines and a SUMMARY (report.ts).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assert, check, finish, log, sleep } from './report.js';
import { TOOL_NAMES, toolCommand } from '../../src/service/protocol/tools.js';

const HERE = process.cwd();
const WORK = mkdtempSync('/tmp/install-');
const env = (): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = { PATH: `/usr/local/bin:${process.env.PATH ?? '/usr/bin:/bin'}`, HOME: WORK };
  return e; // no EVE_TOOLS_*: the installed config and wrappers alone must do
};
interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}
/** An installed command, by its name on PATH (async: the service's output keeps flowing). */
const run = (cmd: string, args: string[]): Promise<Ran> =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: WORK, env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });

async function main(): Promise<void> {
  const applied = await check('apply-user-data', async () => {
    const r = spawnSync(process.execPath, [join(HERE, 'apply-user-data.mjs'), join(HERE, 'user-data.json')], { encoding: 'utf8' });
    log(r.stdout + r.stderr);
    assert(r.status === 0, `apply-user-data exit ${String(r.status)}: ${r.stdout}${r.stderr}`);
    assert(r.stderr.includes(`installed ${TOOL_NAMES.length} tools in /usr/local/bin (vsock addon linux-x64-glibc)`), `setup.sh said: ${r.stderr}`);
    const mode = statSync('/etc/eve-tools/config.json').mode & 0o777;
    assert(mode === 0o600, `config mode ${mode.toString(8)}`);
    for (const t of TOOL_NAMES) assert(existsSync(`/usr/local/bin/${toolCommand(t)}`), `no ${toolCommand(t)}`);
    return `write_files and runcmd applied; ${r.stderr.trim().split('\n').pop()}`;
  });
  if (!applied) finish();

  const args = ['serve', '--tpm', '/dev/tpmrm0', '--listen', 'vsock:8877', '--tenants', join(HERE, 'tenants.json'), '--state-dir', join(WORK, 'state'), '--log-level', 'warn'];
  const svc = spawn(process.execPath, [join(HERE, 'eve-tpm-service.cjs'), ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  const up = await check('service-start', async () => {
    for (let i = 0; ; i++) {
      const r = await run('eve_tools_tpm2_listkeys', ['--timeout', '5']);
      log(`listkeys: exit ${String(r.status)} ${r.stderr.trim()}`);
      if (r.status === 0) return `listkeys over vsock answered: ${JSON.stringify(r.stdout.trim())}`;
      if (svc.exitCode !== null) throw new Error(`service exited ${svc.exitCode}`);
      if (i === 30) throw new Error(`no answer: exit ${String(r.status)} ${r.stderr}`);
      await sleep(300);
    }
  });
  if (!up) finish();

  await check('genaik', async () => {
    const r = await run('eve_tools_tpm2_genaik', ['-g', '0x1']);
    assert(r.status === 0 && r.stderr === '', `exit ${String(r.status)}: ${r.stderr}`);
    assert(/0x81010000/.test(r.stdout), `stdout: ${r.stdout}`);
    return r.stdout.trim();
  });
  await check('pubgetaik', async () => {
    const r = await run('eve_tools_tpm2_pubgetaik', ['-k', '0x81010000', '-f', 'ak.pem']);
    assert(r.status === 0 && r.stdout === '' && r.stderr === '', `exit ${String(r.status)}: ${r.stdout}${r.stderr}`);
    return `ak.pem ${readFileSync(join(WORK, 'ak.pem'), 'utf8').split('\n')[0]}`;
  });
  await check('sign-verified', async () => {
    const message = Buffer.from('Hello from an application VM with no network.\n');
    writeFileSync(join(WORK, 'message.txt'), message);
    const r = await run('eve_tools_tpm2_sign', ['-k', '0x81010000', '-m', 'message.txt', '-g', '0x00B', '-s', 'sign.bin']);
    assert(r.status === 0 && r.stdout === '' && r.stderr === '', `exit ${String(r.status)}: ${r.stdout}${r.stderr}`);
    const sig = readFileSync(join(WORK, 'sign.bin'));
    const ok = verify('sha256', message, createPublicKey(readFileSync(join(WORK, 'ak.pem'))), sig);
    assert(ok, 'the signature does not verify with ak.pem');
    return `${sig.length}-byte RSA signature verifies with ak.pem (sha256)`;
  });
  svc.kill('SIGTERM');
  finish();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
