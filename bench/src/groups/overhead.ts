/**
 * Group 1 — the service's cost next to the TPM's: latency of an operation through the
 * service (HTTP over a unix socket, the real ServiceClient, a fresh connection per request as
 * the tools make) divided by the same operation done by the library directly on a twin swtpm
 * (same seeds, same persisted EK, the same key blobs), measured interleaved.
 *
 *   sign         32-byte message, RSA AK: TPM2_Hash for the ticket, load the AK under the EK
 *                (policy session), TPM2_Sign, flush — as the service does it (blobs key store)
 *   create-AK    RSA AK under the EK (tpm2_createak's recipe), blobs kept
 *   read-public  the key's public part as PEM (direct: TPM2_ReadPublic of a persistent copy)
 *
 * The service keeps a hot key loaded (its object cache: Hash + Sign), so sign is measured
 * three ways side by side: the service, the library loading the key for every sign, and the
 * library keeping it loaded ("sign, hot": the same two commands as the service) — the
 * library with and without an object cache. A last row runs the service with
 * `--object-cache 0` against the library loading each time (the same nine commands).
 *
 * Before timing, the TPM commands each path issues are recorded (service through a
 * recording multiplexer, direct through the executor's observer): the ratio is only
 * "the service's overhead" if both paths ask the TPM for the same work. For the hot sign the
 * commands of stock `tpm2_sign` on a persistent key are recorded too, through the same
 * multiplexer (tpm2-tss's swtpm TCTI).
 */
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import {
  SwtpmSocketTransport,
  TPM_ALG,
  Tpm,
  createAk,
  flush,
  formatSignature,
  loadKey,
  maxInputBuffer,
  persistKey,
  publicToPem,
  readPublic,
  signDigest,
  tpmHash,
  withLoadedKey,
  type KeyBlobs,
  type NamedHandle,
} from '../../../src/tpm/index.js';
import { COMMANDS } from '../../../src/tpm/entries/wire.js';
import { ms, x, type Ctx, type Group } from '../context.js';
import { serviceKeyBlobs, startService, startTwinSwtpms, type Service } from '../env.js';
import { onCleanup, tempDir } from '../lifecycle.js';
import { TpmMux } from '../mux.js';
import { interleave, ratio, summarize, timeMs, type Summary } from '../stats.js';
import { runProcess } from './tools.js';

const MESSAGE = new Uint8Array(32).fill(0x61);
const READ_PUBLIC_HANDLE = 0x81010000;
/** tpm2_sign's key on the service's swtpm: outside the service's key pool (0x81010000…). */
const TPM2_SIGN_HANDLE = 0x81000100;

type CoreOp = 'sign' | 'create-AK' | 'read-public';
type Op = CoreOp | 'sign, hot' | 'sign, keep-alive' | 'HTTP floor (health)' | 'sign, no object cache';

/** TPM command names of one operation on each side (`same`: the same list). */
export interface Calibration {
  service: string[];
  direct: string[];
  same: boolean;
  /** "sign, hot": the library with the key kept loaded (the timed direct path of that row). */
  library?: string[];
}

interface Paths {
  service(): Promise<unknown>;
  direct(): Promise<unknown>;
}

const nameOf = (code: number): string => COMMANDS.get(code)?.name ?? `0x${code.toString(16)}`;

/** The direct path of each operation, on the twin TPM. */
function directOps(tpm: Tpm, blobs: KeyBlobs): Record<CoreOp, () => Promise<unknown>> {
  return {
    // What KeyManager.sign does for a small message with a blobs-store key.
    sign: async () => {
      const h = await tpmHash(tpm, MESSAGE, TPM_ALG.SHA256);
      const sig = await withLoadedKey(tpm, blobs, (k) => signDigest(tpm, k, h.digest, h.validation));
      return formatSignature(sig, 'plain');
    },
    'create-AK': () => createAk(tpm, 'rsa'),
    'read-public': async () => publicToPem((await readPublic(tpm, READ_PUBLIC_HANDLE)).publicArea),
  };
}

/** The library keeping the key loaded (what an object cache gives): Hash + Sign. */
function hotSign(tpm: Tpm, key: NamedHandle): () => Promise<unknown> {
  return async () => {
    const h = await tpmHash(tpm, MESSAGE, TPM_ALG.SHA256);
    return formatSignature(await signDigest(tpm, key, h.digest, h.validation), 'plain');
  };
}

/** Direct counterparts of the other rows. */
function directDiagnostics(ops: Record<CoreOp, () => Promise<unknown>>, hot: () => Promise<unknown>): Record<Op, () => Promise<unknown>> {
  return { ...ops, 'sign, hot': hot, 'sign, keep-alive': hot, 'HTTP floor (health)': async () => undefined, 'sign, no object cache': ops.sign };
}

/**
 * The commands stock tpm2_sign sends for one sign (hash in the TPM for the ticket, then sign)
 * with a persistent copy of the key, recorded through the multiplexer.
 */
async function recordTpm2Sign(mux: TpmMux, blobs: KeyBlobs, dir: string): Promise<string[]> {
  const transport = new SwtpmSocketTransport({ path: mux.path });
  try {
    await persistKey(new Tpm(transport), blobs, TPM2_SIGN_HANDLE);
  } finally {
    await transport.close();
  }
  writeFileSync(join(dir, 'message'), MESSAGE);
  const argv = ['tpm2_sign', '-c', `0x${TPM2_SIGN_HANDLE.toString(16)}`, '-g', 'sha256', '-f', 'plain', '-o', 'sig', 'message'];
  const env = { ...process.env, TPM2TOOLS_TCTI: `swtpm:path=${mux.path}` };
  const run = async (): Promise<void> => {
    const r = await runProcess(argv, { env, cwd: dir });
    if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  };
  await run();
  mux.record = [];
  await run();
  const cmds = mux.record.map(nameOf);
  mux.record = undefined;
  return cmds;
}

/**
 * One request on a kept-alive connection (the ServiceClient opens a new connection per
 * request, as a one-shot tool does): shows what connection set-up costs.
 */
function keepAliveCall(svc: Service, agent: Agent, method: string, path: string, body?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { Authorization: `Bearer ${svc.secrets[0]}` };
    if (body !== undefined) Object.assign(headers, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) });
    const req = request({ socketPath: svc.sock, method, path, agent, headers }, (res) => {
      res.resume();
      res.once('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.once('error', reject);
    req.end(body);
  });
}

function serviceOps(svc: Service, handle: string, createdToDelete: string[], agent: Agent): Record<Op, () => Promise<unknown>> {
  const client = svc.client(0);
  const signBody = JSON.stringify({ message: Buffer.from(MESSAGE).toString('base64'), hashAlg: 'sha256' });
  const sign = (): Promise<unknown> => client.sign(handle, { message: MESSAGE, hashAlg: 'sha256' });
  return {
    'sign, keep-alive': () => keepAliveCall(svc, agent, 'POST', `/v1/keys/${handle}/sign`, signBody),
    'HTTP floor (health)': () => client.health(),
    sign,
    'sign, hot': sign,
    'sign, no object cache': sign,
    'create-AK': async () => {
      const k = await client.createKey({ type: 'rsa' });
      createdToDelete.push(k.handle);
      return k;
    },
    'read-public': () => client.getPublic(handle, 'pem'),
  };
}

export const overheadGroup: Group = {
  id: 1,
  title: 'Service overhead: latency through the service ÷ the library directly (twin swtpms)',
  async run(ctx: Ctx) {
    const reps: Record<Op, number> = ctx.smoke
      ? { sign: 6, 'sign, hot': 6, 'create-AK': 2, 'read-public': 6, 'sign, keep-alive': 6, 'HTTP floor (health)': 6, 'sign, no object cache': 6 }
      : { sign: 200, 'sign, hot': 200, 'create-AK': 16, 'read-public': 300, 'sign, keep-alive': 200, 'HTTP floor (health)': 300, 'sign, no object cache': 200 };
    const warm = ctx.smoke ? 1 : 5;
    const [swS, swD] = await startTwinSwtpms(2);

    // The service starts behind a recording multiplexer (to learn which TPM commands it
    // sends), and is restarted directly on its swtpm for the timed part.
    const dir = await tempDir('bench-mux-');
    const mux = new TpmMux(swS!.sockPath, join(dir, 'mux.sock'), swS!.inst.ctrlPath);
    await mux.listen();
    const svc = await startService(ctx, { tpm: `swtpm:unix:${mux.path}`, tenants: 1 });
    const client = svc.client(0);
    const key = await client.createKey({ type: 'rsa' });
    const blobs = serviceKeyBlobs(svc, key.handle);

    const { tpm: direct } = swD!.open();
    const observed: number[] = [];
    const observer = new Tpm(direct.transport, { onExchange: (e) => observed.push(new DataView(e.request.buffer, e.request.byteOffset).getUint32(6)) });
    await persistKey(direct, blobs, READ_PUBLIC_HANDLE);
    // The library's "object cache": the key loaded once and kept (flushed at the end).
    const hotKey = await loadKey(direct, blobs);

    const toDelete: string[] = [];
    const dOps = directDiagnostics(directOps(direct, blobs), hotSign(direct, hotKey));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    onCleanup(() => agent.destroy());
    const sOps = serviceOps(svc, key.handle, toDelete, agent);
    const calibration: Record<string, Calibration> = {};
    const ops: CoreOp[] = ['sign', 'create-AK', 'read-public'];
    const recordService = async (op: () => Promise<unknown>): Promise<string[]> => {
      await op(); // warm: the key is hot from here on
      mux.record = [];
      await op();
      const cmds = mux.record.map(nameOf);
      mux.record = undefined;
      return cmds;
    };
    const recordDirect = async (op: () => Promise<unknown>): Promise<string[]> => {
      await maxInputBuffer(observer); // asked once per Tpm, then cached: steady state only
      await op();
      observed.length = 0;
      await op();
      return observed.map(nameOf);
    };
    for (const op of ops) {
      const service = await recordService(sOps[op]);
      const directCmds = await recordDirect(directOps(observer, blobs)[op]);
      calibration[op] = { service, direct: directCmds, same: service.join() === directCmds.join() };
    }
    {
      const service = await recordService(sOps['sign, hot']);
      const library = await recordDirect(hotSign(observer, hotKey));
      const tpm2Sign = await recordTpm2Sign(mux, blobs, dir);
      calibration['sign, hot'] = { service, direct: tpm2Sign, same: service.join() === tpm2Sign.join(), library };
    }
    for (const h of toDelete.splice(0)) await client.deleteKey(h);
    // The same sign with the object cache off, recorded on the same multiplexer.
    await svc.restart(undefined, ['--object-cache', '0']);
    {
      const service = await recordService(sOps['sign, no object cache']);
      const directCmds = calibration.sign!.direct;
      calibration['sign, no object cache'] = { service, direct: directCmds, same: service.join() === directCmds.join() };
    }
    await svc.stop();
    await mux.close(); // releases the swtpm's one connection
    await svc.restart(swS!.spec, []);

    const results: Record<string, { service: Summary; direct: Summary; p50: number; p99: number }> = {};
    const rows: (string | number)[][] = [];
    const cmdsCell = (op: Op): string => {
      const c = calibration[op];
      if (op === 'sign, hot' && c) return `${c.service.length} / ${c.library!.length} (tpm2_sign ${c.direct.length})`;
      if (c) return `${c.service.length} / ${c.direct.length}${c.same ? '' : ' (differ)'}`;
      return op === 'sign, keep-alive' ? 'as sign, hot' : '0 / -';
    };
    const addRow = (op: Op, s: Summary, d: Summary | undefined): void => {
      if (!d) {
        rows.push([op, reps[op], ms(s.p50), '-', '-', ms(s.p99), '-', '-', cmdsCell(op)]);
        return;
      }
      const r = { service: s, direct: d, p50: ratio(s.p50, d.p50), p99: ratio(s.p99, d.p99) };
      results[op] = r;
      rows.push([op, reps[op], ms(s.p50), ms(d.p50), x(r.p50), ms(s.p99), ms(d.p99), x(r.p99), cmdsCell(op)]);
    };
    const warmUp = async (fns: (() => Promise<unknown>)[]): Promise<void> => {
      for (let i = 0; i < warm; i++) for (const f of fns) await f();
    };

    // sign: the service, the library loading the key each time, the library keeping it loaded.
    ctx.log(`overhead: sign × ${reps.sign} per path (service, library loading the key, library keeping it loaded)`);
    await warmUp([sOps.sign, dOps.sign, dOps['sign, hot']]);
    const signSamples = await interleave(['service', 'cold', 'hot'] as const, reps.sign, (which) =>
      timeMs(which === 'service' ? sOps.sign : which === 'cold' ? dOps.sign : dOps['sign, hot']),
    );
    const signSvc = summarize(signSamples.service);
    const libCold = summarize(signSamples.cold);
    const libHot = summarize(signSamples.hot);
    addRow('sign', signSvc, libCold);
    addRow('sign, hot', signSvc, libHot);

    for (const op of ['create-AK', 'read-public', 'sign, keep-alive', 'HTTP floor (health)'] as const) {
      ctx.log(`overhead: ${op} × ${reps[op]} per path`);
      await warmUp([sOps[op], dOps[op]]);
      const samples = await interleave(['service', 'direct'] as const, reps[op], async (which) => {
        const t = await timeMs(which === 'service' ? sOps[op] : dOps[op]);
        if (op === 'create-AK' && which === 'service') await client.deleteKey(toDelete.pop()!);
        return t;
      });
      addRow(op, summarize(samples.service), op === 'HTTP floor (health)' ? undefined : summarize(samples.direct));
      if (op === 'HTTP floor (health)') results[op] = { service: summarize(samples.service), direct: summarize([]), p50: Number.NaN, p99: Number.NaN };
    }

    // The service without its object cache, against the library loading the key each time.
    const noCache: Op = 'sign, no object cache';
    ctx.log(`overhead: ${noCache} × ${reps[noCache]} per path`);
    await svc.restart(undefined, ['--object-cache', '0']);
    await warmUp([sOps[noCache], dOps[noCache]]);
    const nc = await interleave(['service', 'direct'] as const, reps[noCache], (which) => timeMs(which === 'service' ? sOps[noCache] : dOps[noCache]));
    addRow(noCache, summarize(nc.service), summarize(nc.direct));
    await svc.stop();
    await flush(direct, hotKey);

    const libraryCache = {
      loadedEachTime: libCold,
      keptLoaded: libHot,
      /** p50 of the library loading the key for every sign ÷ keeping it loaded. */
      gainP50: ratio(libCold.p50, libHot.p50),
      commands: { loadedEachTime: calibration.sign!.direct, keptLoaded: calibration['sign, hot']!.library! },
      service: { cache: signSvc, noCache: results[noCache]!.service },
    };

    const notes = [
      'Ratios: service ÷ direct library, same operation, twin swtpms (same seeds, EK persisted at 0x81000001 as on EVE), interleaved; 1.000× = nothing added. The client keeps its unix-socket connection between requests (a tool makes one: sign).',
      'Limit: the TPM. swtpm answers in well under a millisecond per command, so every fixed cost of the service shows; on a real TPM (tens to hundreds of ms per signature) the same absolute overhead is a far smaller ratio.',
    ];
    const hot = results['sign, hot']!;
    const ka = results['sign, keep-alive']!;
    const added = hot.service.p50 - hot.direct.p50;
    const addedKa = ka.service.p50 - ka.direct.p50;
    const proj = (t: number): string => x((t + added) / t);
    notes.push(
      `"sign" and "sign, hot" are one interleaved run of three paths: the service (its object cache keeps the key loaded), the library loading the key for every sign, and the library keeping it loaded. With the same TPM commands on both sides ("sign, hot") the service adds ${ms(added)} ms at p50 (an HTTP round trip alone, GET /v1/health, takes ${ms(results['HTTP floor (health)']!.service.p50)} ms). On a TPM that takes 50 / 200 ms for those commands that would be ${proj(50)} / ${proj(200)}.`,
      `"sign, keep-alive" is a raw HTTP request on a kept-alive connection (no client library) against the library keeping the key loaded: it adds ${ms(addedKa)} ms at p50.`,
      `Object cache: the library keeping the key loaded signs ${x(libraryCache.gainP50, 2)} faster at p50 than loading it each time (${calibration['sign, hot']!.library!.length} TPM commands instead of ${calibration.sign!.direct.length}). The service without its cache ("sign, no object cache", restarted with --object-cache 0, a separate run) sends ${calibration[noCache]!.service.length} commands.`,
    );
    for (const op of [...ops, noCache]) {
      const c = calibration[op]!;
      if (!c.same) notes.push(`${op}: the service sends ${c.service.join(', ') || 'no TPM command'}; the direct path ${c.direct.join(', ') || 'none'}.`);
    }
    const h = calibration['sign, hot']!;
    notes.push(`sign, hot: the service sends ${h.service.join(', ')}; the library with the key loaded ${h.library!.join(', ')}; stock tpm2_sign on a persistent key (-c 0x${TPM2_SIGN_HANDLE.toString(16)} -g sha256 MSG) ${h.direct.join(', ')}.`);
    return {
      tables: [
        {
          columns: ['operation', 'n', 'svc p50 ms', 'lib p50 ms', 'p50 ratio', 'svc p99 ms', 'lib p99 ms', 'p99 ratio', 'TPM cmds svc/lib'],
          rows,
        },
      ],
      notes,
      data: { reps, calibration, results, libraryCache },
    };
  },
};
