/**
 * Runs INSIDE the qemu guest (bundled to one .cjs by attest-vsock.test.ts): the app ↔ cloud
 * attestation flow of docs/ATTESTATION.md with every real part — eve-tpm-service on the
 * kernel's /dev/tpmrm0 with a vsock listener, the container tools as an application runs them
 * (over the vsock loopback, CID 1), and eve-tpm-verify as the application's cloud would.
 * The library on its own /dev/tpmrm0 connection is the independent reader of the PCRs.
 *
 * Every peer on the loopback is CID 1, which no tenant may be bound to, so the tenant is
 * secret-identified and its app identity is its id alone ("app-q").
 *
 * Prints `RESULT <name> PASS|FAIL <detail>` per check and `SUMMARY <n> passed, <m> failed`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ServiceClient } from '../../src/service/client/client.js';
import { Tpm, openTransport, pcrRead, readPcrsOut, writePcrsOut, verifyQuote, decode, TPM2B_PUBLIC, TPMT_SIGNATURE } from '../../src/tpm/index.js';
import { result, log, sleep, assert, check, finish } from './report.js';
import { runNode, startServiceProcess, type Run, type ServiceProcess } from './guest-service.js';

const CID = 1; // loopback only: never CID 2 or anything else
const PORT = 8878;
const ADDRESS = `vsock:${CID}:${PORT}`;
const HERE = process.cwd();
const SERVICE_BIN = join(HERE, 'eve-tpm-service.cjs');
const VERIFY_BIN = join(HERE, 'eve-tpm-verify.cjs');
const WORK = mkdtempSync('/tmp/attest-vsock-');
const TENANTS = join(WORK, 'tenants.json');
const STATE = join(WORK, 'state');
const APP = 'app-q';
const f = (name: string): string => join(WORK, name);

let secret = '';
/** A container tool, run as the application would: address and secret from the environment. */
const tool = (name: string, args: string[]): Promise<Run> =>
  runNode(join(HERE, `eve_tools_tpm2_${name}.cjs`), args, {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    EVE_TOOLS_SERVICE: ADDRESS,
    EVE_TOOLS_SECRET: secret,
    EVE_TOOLS_CONFIG: 'none', // never the guest's /etc
  });
/** The cloud's verifier: no service, no TPM. */
const verifier = (args: string[]): Promise<Run> => runNode(VERIFY_BIN, args, { PATH: process.env.PATH, HOME: process.env.HOME });
const ok = (r: Run, what: string): void => assert(r.code === 0, `${what}: exit ${String(r.code)}: ${r.stderr.trim()} ${r.stdout.trim()}`);

// ---- the service and its log ----------------------------------------------------------------

interface LogLine {
  level?: number;
  event?: string;
}
let service: ServiceProcess<LogLine> | undefined;
const serviceLog = (): LogLine[] => service?.log ?? [];

function startService(): void {
  const args = ['serve', '--tpm', '/dev/tpmrm0', '--listen', `vsock:${PORT}`, '--tenants', TENANTS, '--state-dir', STATE, '--log-level', 'info'];
  service = startServiceProcess<LogLine>(SERVICE_BIN, args);
}

/** Quoted and read: sha256 PCRs 0–3 and 7 (pcrs.out lists them in this order). */
const SELECTION = 'sha256:0,1,2,3,7';

async function main(): Promise<void> {
  const started = await check('service-start', async () => {
    const add = await runNode(SERVICE_BIN, ['tenant', 'add', '--id', APP, '--tenants', TENANTS, '--service-address', ADDRESS]);
    assert(add.code === 0, `tenant add: exit ${String(add.code)}: ${add.stderr}`);
    const m = /Secret \(shown only now; only its hash is stored\):\n {2}(\S+)/.exec(add.stdout);
    assert(m, `tenant add printed no secret: ${add.stdout}`);
    secret = m[1]!;
    startService();
    const deadline = Date.now() + 60_000;
    let last = '';
    while (Date.now() < deadline) {
      if (service!.child.exitCode !== null) throw new Error(`the service exited with ${String(service!.child.exitCode)}: ${service!.noise.join(' ')}`);
      if (serviceLog().some((l) => l.event === 'listening')) {
        try {
          const h = await new ServiceClient({ address: ADDRESS, timeoutMs: 5000 }).health();
          if (h.status === 'ok') return `tenant ${APP} added; service listening on vsock:${PORT}, health ok`;
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

  let handle = '';
  let akName = '';
  const haveKey = await check('genaik', async () => {
    const gen = await tool('genaik', ['-g', '0x1']);
    ok(gen, 'genaik');
    const m = /persistent handle (0x[0-9a-f]{8})/.exec(gen.stdout);
    assert(m, `genaik printed ${JSON.stringify(gen.stdout)}`);
    handle = m[1]!;
    ok(await tool('pubgetaik', ['-k', handle, '-f', f('ak.pem')]), 'pubgetaik');
    const list = await tool('listkeys', ['--json']);
    ok(list, 'listkeys');
    const key = (JSON.parse(list.stdout) as { keys: Array<{ handle: string; name: string }> }).keys.find((k) => k.handle === handle);
    assert(key && /^000b[0-9a-f]{64}$/.test(key.name), `listkeys: ${list.stdout}`);
    akName = key.name;
    return `RSA AK at ${handle}, Name ${akName.slice(0, 16)}…, ak.pem written`;
  });
  if (!haveKey) return;

  // The library on its own connection to the kernel's resource manager: the independent reader.
  const tpm = new Tpm(openTransport('/dev/tpmrm0'));
  try {
    await check('pcrread-matches-tpmrm0', async () => {
      const r = await tool('pcrread', [SELECTION, '-o', f('pcrs-read.out')]);
      ok(r, 'pcrread');
      const mine = readPcrsOut(readFileSync(f('pcrs-read.out')));
      const lib = await pcrRead(tpm, SELECTION);
      assert(mine.values.length === 5 && lib.values.length === 5, `values ${mine.values.length}/${lib.values.length}`);
      mine.values.forEach((v, i) => assert(Buffer.from(v).equals(Buffer.from(lib.values[i]!)), `PCR value ${i} differs from the library's read`));
      for (const v of lib.values) assert(r.stdout.toUpperCase().includes(Buffer.from(v).toString('hex').toUpperCase()), 'a value is missing from the text output');
      assert(/sha256:/.test(r.stdout), `text output ${r.stdout.slice(0, 80)}`);
      return `eve_tools_tpm2_pcrread ${SELECTION}: text and pcrs.out equal the library's PCR_Read on /dev/tpmrm0 (5 values)`;
    });

    const nonce = randomBytes(16).toString('hex');
    const quoteArgs = (n: string, prefix: string, extra: string[] = []): string[] => [
      '-k', handle, '-l', SELECTION, '-q', n, '-m', f(`${prefix}.msg`), '-s', f(`${prefix}.sig`), '-o', f(`${prefix}.pcrs`), '-g', 'sha256', ...extra,
    ];
    const verifyArgs = (prefix: string, n: string, extra: string[] = []): string[] => [
      'quote', '--pem', f('ak.pem'), '-m', f(`${prefix}.msg`), '-s', f(`${prefix}.sig`), '-q', n, '-f', f(`${prefix}.pcrs`), ...extra,
    ];

    await check('quote-verified', async () => {
      ok(await tool('quote', quoteArgs(nonce, 'quote')), 'quote');
      const v = await verifier([...verifyArgs('quote', nonce), '--json']);
      ok(v, 'eve-tpm-verify quote');
      const report = JSON.parse(v.stdout) as { ok: boolean; checks: Array<{ name: string; ok: boolean }> };
      assert(report.ok && report.checks.length >= 5 && report.checks.every((c) => c.ok), `report ${v.stdout}`);
      // And the library's verifier, given the AK's public area from the service.
      const pub = await new ServiceClient({ address: ADDRESS, secret, timeoutMs: 30_000 }).getPublic(handle, 'tss');
      const akPublic = decode(TPM2B_PUBLIC, pub.data!);
      const pcrs = readPcrsOut(readFileSync(f('quote.pcrs')));
      const values: Record<number, Record<number, Uint8Array>> = { 0x000b: {} };
      [0, 1, 2, 3, 7].forEach((p, i) => (values[0x000b]![p] = pcrs.values[i]!));
      const lib = verifyQuote({
        akPublic,
        attestBytes: readFileSync(f('quote.msg')),
        signature: decode(TPMT_SIGNATURE, readFileSync(f('quote.sig'))),
        nonce: Buffer.from(nonce, 'hex'),
        pcrValues: values,
      });
      assert(lib.ok, `library verifyQuote: ${JSON.stringify(lib.checks)}`);
      return `eve_tools_tpm2_quote over vsock → eve-tpm-verify quote: ${report.checks.map((c) => c.name).join(', ')} all hold; the library's verifyQuote agrees`;
    });

    await check('quote-refused-wrong-nonce-and-pcrs', async () => {
      const wrongNonce = await verifier(verifyArgs('quote', randomBytes(16).toString('hex')));
      assert(wrongNonce.code === 1, `wrong nonce: exit ${String(wrongNonce.code)} ${wrongNonce.stdout}`);
      // One PCR value changed (pcrs.out pads unused digest slots: a value is changed through its reader).
      const pcrs = readPcrsOut(readFileSync(f('quote.pcrs')));
      pcrs.values[4]![0]! ^= 1;
      writeFileSync(f('tampered.pcrs'), writePcrsOut(pcrs.selection, pcrs.values));
      const tampered = await verifier(['quote', '--pem', f('ak.pem'), '-m', f('quote.msg'), '-s', f('quote.sig'), '-q', nonce, '-f', f('tampered.pcrs')]);
      assert(tampered.code === 1, `tampered PCR value: exit ${String(tampered.code)} ${tampered.stdout}`);
      const noNonce = await tool('quote', ['-k', handle, '-l', SELECTION, '-m', f('x.msg'), '-s', f('x.sig')]);
      assert(noNonce.code === 2 && !existsSync(f('x.msg')), `quote without a nonce: exit ${String(noNonce.code)}`);
      return 'another nonce (replay): exit 1; a changed PCR value: exit 1; a quote without a nonce: usage error, no file';
    });

    await check('quote-bound-to-app', async () => {
      const n = randomBytes(20).toString('hex');
      ok(await tool('quote', quoteArgs(n, 'bound', ['--bind'])), 'quote --bind');
      ok(await verifier(verifyArgs('bound', n, ['--app', APP])), `eve-tpm-verify quote --app ${APP}`);
      const other = await verifier(verifyArgs('bound', n, ['--app', 'app-other']));
      assert(other.code === 1, `--app app-other: exit ${String(other.code)}`);
      const unbound = await verifier(verifyArgs('bound', n));
      assert(unbound.code === 1, `without --app: exit ${String(unbound.code)}`);
      const expected = createHash('sha256').update(Buffer.concat([Buffer.from('EVE-APP\0'), Buffer.from(`${APP}\0`), Buffer.from(n, 'hex')])).digest('hex');
      return `quote --bind: verified with --app ${APP} (qualifying data ${expected.slice(0, 16)}…); --app app-other and no --app: exit 1`;
    });

    await check('credential-activation', async () => {
      ok(await tool('ekpub', ['-G', 'rsa', '-f', f('ek.pem')]), 'ekpub');
      const s = randomBytes(32);
      writeFileSync(f('secret.bin'), s);
      ok(await verifier(['makecredential', '--ek', f('ek.pem'), '--name', akName, '-s', f('secret.bin'), '-o', f('cred.blob')]), 'eve-tpm-verify makecredential');
      ok(await tool('activatecredential', ['-k', handle, '-i', f('cred.blob'), '-o', f('recovered.bin')]), 'activatecredential');
      assert(readFileSync(f('recovered.bin')).equals(s), 'the recovered secret differs');
      // A credential for another Name (another key, EVE's AIK…) does not activate with this AK.
      const otherName = '000b' + randomBytes(32).toString('hex');
      ok(await verifier(['makecredential', '--ek', f('ek.pem'), '--name', otherName, '-s', f('secret.bin'), '-o', f('other.blob')]), 'makecredential (other Name)');
      const refused = await tool('activatecredential', ['-k', handle, '-i', f('other.blob'), '-o', f('other.bin')]);
      assert(refused.code !== 0 && !existsSync(f('other.bin')), `credential for another Name: exit ${String(refused.code)}`);
      return `EK public (ekpub) → eve-tpm-verify makecredential for the AK's Name → activatecredential recovered the 32-byte secret; a credential for another Name refused (exit ${String(refused.code)}), no file`;
    });
  } finally {
    await tpm.transport.close();
  }

  await check('sigterm-exit-0', async () => {
    service!.child.kill('SIGTERM');
    const exit = await Promise.race([service!.exit, sleep(45_000).then(() => undefined)]);
    if (!exit) throw new Error('the service did not exit within 45 s of SIGTERM');
    assert(exit.code === 0 && exit.signal === null, `exit code ${String(exit.code)} signal ${String(exit.signal)}`);
    return 'SIGTERM → exit 0';
  });

  await check('service-log-clean', async () => {
    const bad = serviceLog().filter((l) => (l.level ?? 0) >= 50 || l.event === 'internal-error');
    assert(bad.length === 0, `error lines: ${JSON.stringify(bad.slice(0, 3))}`);
    assert(service!.noise.length === 0, `non-JSON output: ${service!.noise.slice(0, 3).join(' | ')}`);
    return `${serviceLog().length} JSON log lines, no errors`;
  });
}

main()
  .catch((e: unknown) => result('main', false, (e as Error).stack ?? String(e)))
  .finally(() => {
    if (service && service.child.exitCode === null && service.child.signalCode === null) service.child.kill('SIGKILL');
    try {
      writeFileSync(join(HERE, 'service-log.jsonl'), (service?.raw ?? []).join(''));
    } catch {
      // the share is read-only: only the RESULT lines then
    }
    log('done');
    finish();
  });
