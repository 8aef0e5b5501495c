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
 * Before timing, the TPM commands each path issues are recorded (service through a
 * recording multiplexer, direct through the executor's observer): the ratio is only
 * "the service's overhead" if both paths ask the TPM for the same work.
 */
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import {
  TPM_ALG,
  Tpm,
  createAk,
  formatSignature,
  maxInputBuffer,
  persistKey,
  publicToPem,
  readPublic,
  signDigest,
  tpmHash,
  withLoadedKey,
  type KeyBlobs,
} from '../../../src/tpm/index.js';
import { COMMANDS } from '../../../src/tpm/entries/wire.js';
import { ms, x, type Ctx, type Group } from '../context.js';
import { serviceKeyBlobs, startService, startTwinSwtpms, type Service } from '../env.js';
import { onCleanup, tempDir } from '../lifecycle.js';
import { TpmMux } from '../mux.js';
import { interleave, ratio, summarize, timeMs, type Summary } from '../stats.js';

const MESSAGE = new Uint8Array(32).fill(0x61);
const READ_PUBLIC_HANDLE = 0x81010000;

type CoreOp = 'sign' | 'create-AK' | 'read-public';
type Op = CoreOp | 'sign, keep-alive' | 'HTTP floor (health)';

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

/** Direct counterparts of the diagnostic rows. */
function directDiagnostics(ops: Record<CoreOp, () => Promise<unknown>>): Record<Op, () => Promise<unknown>> {
  return { ...ops, 'sign, keep-alive': ops.sign, 'HTTP floor (health)': async () => undefined };
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
  return {
    'sign, keep-alive': () => keepAliveCall(svc, agent, 'POST', `/v1/keys/${handle}/sign`, signBody),
    'HTTP floor (health)': () => client.health(),
    sign: () => client.sign(handle, { message: MESSAGE, hashAlg: 'sha256' }),
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
      ? { sign: 6, 'create-AK': 2, 'read-public': 6, 'sign, keep-alive': 6, 'HTTP floor (health)': 6 }
      : { sign: 200, 'create-AK': 16, 'read-public': 300, 'sign, keep-alive': 200, 'HTTP floor (health)': 300 };
    const warm = ctx.smoke ? 1 : 5;
    const [swS, swD] = await startTwinSwtpms(2);

    // The service starts behind a recording multiplexer (to learn which TPM commands it
    // sends), and is restarted directly on its swtpm for the timed part.
    const dir = await tempDir('bench-mux-');
    const mux = new TpmMux(swS!.sockPath, join(dir, 'mux.sock'));
    await mux.listen();
    const svc = await startService(ctx, { tpm: `swtpm:unix:${mux.path}`, tenants: 1 });
    const client = svc.client(0);
    const key = await client.createKey({ type: 'rsa' });
    const blobs = serviceKeyBlobs(svc, key.handle);

    const { tpm: direct } = swD!.open();
    const observed: number[] = [];
    const observer = new Tpm(direct.transport, { onExchange: (e) => observed.push(new DataView(e.request.buffer, e.request.byteOffset).getUint32(6)) });
    await persistKey(direct, blobs, READ_PUBLIC_HANDLE);

    const toDelete: string[] = [];
    const dOps = directDiagnostics(directOps(direct, blobs));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    onCleanup(() => agent.destroy());
    const sOps = serviceOps(svc, key.handle, toDelete, agent);
    const calibration: Record<string, { service: string[]; direct: string[]; same: boolean }> = {};
    const ops: CoreOp[] = ['sign', 'create-AK', 'read-public'];
    const diagnostics: Op[] = ['sign, keep-alive', 'HTTP floor (health)'];
    for (const op of ops) {
      await sOps[op]();
      await dOps[op]();
      mux.record = [];
      await sOps[op]();
      const service = mux.record.map(nameOf);
      mux.record = undefined;
      await maxInputBuffer(observer); // asked once per Tpm, then cached: steady state only
      observed.length = 0;
      await directOps(observer, blobs)[op]();
      const directCmds = observed.map(nameOf);
      calibration[op] = { service, direct: directCmds, same: service.join() === directCmds.join() };
    }
    for (const h of toDelete.splice(0)) await client.deleteKey(h);
    await svc.stop();
    await mux.close(); // releases the swtpm's one connection
    await svc.restart(swS!.spec);

    const results: Record<string, { service: Summary; direct: Summary; p50: number; p99: number }> = {};
    const rows: (string | number)[][] = [];
    for (const op of [...ops, ...diagnostics]) {
      ctx.log(`overhead: ${op} × ${reps[op]} per path`);
      const paths: Paths = { service: sOps[op], direct: dOps[op] };
      for (let i = 0; i < warm; i++) {
        await paths.service();
        await paths.direct();
      }
      const samples = await interleave(['service', 'direct'] as const, reps[op], async (which) => {
        const t = await timeMs(paths[which]);
        if (op === 'create-AK' && which === 'service') await client.deleteKey(toDelete.pop()!);
        return t;
      });
      const s = summarize(samples.service);
      const d = summarize(samples.direct);
      const r = { service: s, direct: d, p50: ratio(s.p50, d.p50), p99: ratio(s.p99, d.p99) };
      results[op] = r;
      const c = calibration[op];
      const cmds = c ? `${c.service.length} / ${c.direct.length}${c.same ? '' : ' (differ)'}` : op.startsWith('sign') ? 'as sign' : '0 / -';
      if (op === 'HTTP floor (health)') rows.push([op, reps[op], ms(s.p50), '-', '-', ms(s.p99), '-', '-', cmds]);
      else rows.push([op, reps[op], ms(s.p50), ms(d.p50), x(r.p50), ms(s.p99), ms(d.p99), x(r.p99), cmds]);
    }
    await svc.stop();

    const notes = [
      'Ratios: service ÷ direct library, same operation, twin swtpms (same seeds, EK persisted at 0x81000001 as on EVE), interleaved; 1.000× = nothing added. The client keeps its unix-socket connection between requests (a tool makes two: key check, then sign).',
      'Limit: the TPM. swtpm answers in well under a millisecond per command, so every fixed cost of the service shows; on a real TPM (tens to hundreds of ms per signature) the same absolute overhead is a far smaller ratio.',
    ];
    const sign = results.sign!;
    const ka = results['sign, keep-alive']!;
    const added = sign.service.p50 - sign.direct.p50;
    const addedKa = ka.service.p50 - ka.direct.p50;
    const proj = (t: number): string => x((t + added) / t);
    notes.push(
      `Sign adds ${ms(added)} ms at p50 (${ms(addedKa)} ms on a kept-alive connection; an HTTP round trip alone, GET /v1/health on a new connection, takes ${ms(results['HTTP floor (health)']!.service.p50)} ms). On a TPM that takes 50 / 200 ms for the same commands that would be ${proj(50)} / ${proj(200)}.`,
    );
    for (const op of ops) {
      const c = calibration[op]!;
      if (!c.same) notes.push(`${op}: the service sends ${c.service.join(', ') || 'no TPM command'}; the direct path ${c.direct.join(', ') || 'none'}.`);
    }
    return {
      tables: [
        {
          columns: ['operation', 'n', 'svc p50 ms', 'lib p50 ms', 'p50 ratio', 'svc p99 ms', 'lib p99 ms', 'p99 ratio', 'TPM cmds svc/lib'],
          rows,
        },
      ],
      notes,
      data: { reps, calibration, results },
    };
  },
};
