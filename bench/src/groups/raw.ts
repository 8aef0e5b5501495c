/**
 * Group 7 — the raw channel's cost (issue 15 item 4: firewall + virtualization add ≤ 50 µs
 * per command at p50). The same command through the raw channel (RawClient over the
 * service's unix socket: upgrade once, then frames; firewall, resource-manager
 * virtualization, the TPM queue) and by the library directly, on the same swtpm, interleaved:
 *
 *   GetRandom   32 bytes: no handles, nothing to virtualize (the channel's floor)
 *   Sign        ECC P-256 primary of the caller's own (NULL ticket): the app's object stays
 *               loaded between its commands (a hot Sign is one Sign on the chip)
 *
 * swtpm serves one connection at a time, so both paths reach it through the benchmark's
 * command multiplexer (one hop each, alike on both sides); it also records which TPM commands
 * one raw Sign costs. A third path, the library through a node process that only pipes bytes
 * to the multiplexer ("relay"), splits the added time into the extra process hop (relay −
 * library) and the service's own work (raw − relay). A fourth ("swap") is the library sending
 * ContextLoad, Sign, FlushContext itself: what swapping the object per command would cost the
 * TPM. Last, the firewall and the virtualization alone: the service's RawSpace and TPM queue in
 * this process against the library directly (no process hop).
 */
import { join } from 'node:path';
import pino from 'pino';
import { RawClient } from '../../../src/service/client/raw-client.js';
import { NULL_HASHCHECK, SwtpmSocketTransport, TPM_RH, Tpm, signDigest, type NamedHandle, type TpmRunner, type Transport } from '../../../src/tpm/index.js';
import * as C from '../../../src/tpm/commands.js';
import { akEccTemplate } from '../../../src/tpm/keys/templates.js';
import { COMMANDS } from '../../../src/tpm/entries/wire.js';
import { ms, type Ctx, type Group } from '../context.js';
import { startService, startTwinSwtpms } from '../env.js';
import { onCleanup, spawnTracked, tempDir, waitUntil } from '../lifecycle.js';
import { TpmMux } from '../mux.js';
import { RawApps } from '../../../src/service/raw/apps.js';
import { RawSpace } from '../../../src/service/raw/space.js';
import { TpmQueue } from '../../../src/service/tpm/queue.js';
import { interleave, summarize, timeMs, type Summary } from '../stats.js';

type Op = 'GetRandom' | 'Sign';
type Path = 'raw' | 'direct' | 'relay' | 'swap';
const PATHS: Path[] = ['raw', 'direct', 'relay', 'swap'];

/** A byte pipe from a unix socket to another: the cost of one more node process on the way. */
const RELAY = `const net = require('node:net');
const [listen, up] = process.argv.slice(-2);
net.createServer((d) => {
  const u = net.connect(up);
  const end = () => { d.destroy(); u.destroy(); };
  d.pipe(u).pipe(d);
  d.on('error', end).on('close', end);
  u.on('error', end).on('close', end);
}).listen(listen, () => console.log('ready'));`;

const DIGEST = new Uint8Array(32).fill(0x61);
/** A signing key that is not restricted: it signs any digest with a NULL ticket. */
const SIGNING = { ...akEccTemplate(), objectAttributes: akEccTemplate().objectAttributes - 0x10000 };

/** The library's Transport over one raw-channel connection. */
function rawTransport(c: RawClient, address: string): Transport {
  return {
    description: `raw:${address}`,
    send: (frame) => c.transact(frame),
    close: () => {
      c.close();
      return Promise.resolve();
    },
  };
}

async function createSigner(tpm: TpmRunner): Promise<NamedHandle> {
  const p = await tpm.run(C.CreatePrimary, {
    primaryHandle: TPM_RH.OWNER,
    inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) },
    inPublic: SIGNING as never,
    outsideInfo: new Uint8Array(0),
    creationPCR: [],
  });
  return { handle: p.objectHandle, name: p.name };
}

function ops(tpm: TpmRunner, key: NamedHandle): Record<Op, () => Promise<unknown>> {
  return {
    GetRandom: () => tpm.run(C.GetRandom, { bytesRequested: 32 }),
    Sign: () => signDigest(tpm, key, DIGEST, { ...NULL_HASHCHECK }),
  };
}

/** The key swapped in for each Sign from a saved context, as the raw channel's virtualization does. */
async function swapOps(tpm: TpmRunner, key: NamedHandle): Promise<Record<Op, () => Promise<unknown>>> {
  const { context } = await tpm.run(C.ContextSave, { saveHandle: key.handle });
  return {
    GetRandom: () => tpm.run(C.GetRandom, { bytesRequested: 32 }),
    Sign: async () => {
      const { loadedHandle } = await tpm.run(C.ContextLoad, { context });
      try {
        return await signDigest(tpm, { handle: loadedHandle, name: key.name }, DIGEST, { ...NULL_HASHCHECK });
      } finally {
        await tpm.run(C.FlushContext, { flushHandle: loadedHandle });
      }
    },
  };
}

/**
 * The firewall and the virtualization alone, in this process: the service's own RawSpace (an
 * app connection's resource-manager context) and TPM queue over a connection of their own to
 * the multiplexer — what a raw command costs in the service, without the hop to it.
 */
function inProcessFirewall(muxPath: string): { tpm: Tpm; close(): Promise<void> } {
  const chipTransport = new SwtpmSocketTransport({ path: muxPath });
  const chip = new Tpm(chipTransport);
  const queue = new TpmQueue(chip, { capacity: 64, perTenant: 16 });
  const app = new RawApps().app('bench-in-process');
  const space = new RawSpace(app.state, { chip, transport: chipTransport, transients: queue.transients, log: pino({ level: 'silent' }), raw: app }, { tenant: 'bench' });
  const transport: Transport = {
    description: 'firewall in process',
    send: (frame) => queue.submit('bench', 'raw', (job) => space.command(job, frame)) as Promise<Uint8Array>,
    close: async () => {
      await space.close().catch(() => undefined);
      await chipTransport.close();
    },
  };
  return { tpm: new Tpm(transport), close: () => transport.close() };
}

const nameOf = (code: number): string => COMMANDS.get(code)?.name ?? `0x${code.toString(16)}`;
const us = (msValue: number): number => msValue * 1000;
/** µs with its sign: +120, -6. */
const signed = (v: number): string => `${v >= 0 ? '+' : ''}${v.toFixed(0)}`;

export const rawGroup: Group = {
  id: 7,
  title: 'Raw channel overhead: a TPM command through the raw channel − the library directly (same swtpm)',
  async run(ctx: Ctx) {
    const reps: Record<Op, number> = ctx.smoke ? { GetRandom: 10, Sign: 6 } : { GetRandom: 2000, Sign: 1000 };
    const warm = ctx.smoke ? 2 : 50;
    const [sw] = await startTwinSwtpms(1);
    const dir = await tempDir('bench-raw-');
    const mux = new TpmMux(sw!.sockPath, join(dir, 'mux.sock'), sw!.inst.ctrlPath);
    await mux.listen();
    const svc = await startService(ctx, { tpm: `swtpm:unix:${mux.path}`, tenants: 1 });

    const raw = await RawClient.open(svc.address, svc.secrets[0]);
    const rawTpm = new Tpm(rawTransport(raw, svc.address));
    onCleanup(() => rawTpm.transport.close());
    const directTransport = new SwtpmSocketTransport({ path: mux.path });
    const direct = new Tpm(directTransport);
    onCleanup(() => directTransport.close());

    const relayPath = join(dir, 'relay.sock');
    const relayProc = spawnTracked(process.execPath, ['-e', RELAY, relayPath, mux.path]);
    onCleanup(() => relayProc.stop());
    await waitUntil('relay', () => Promise.resolve(relayProc.output().includes('ready')), relayProc);
    const relayTransport = new SwtpmSocketTransport({ path: relayPath });
    const relay = new Tpm(relayTransport);
    onCleanup(() => relayTransport.close());

    const rawKey = await createSigner(rawTpm);
    const directKey = await createSigner(direct);
    // The relay ends at the multiplexer's one swtpm connection too: the library's key handle holds there.
    const run: Record<Path, Record<Op, () => Promise<unknown>>> = {
      raw: ops(rawTpm, rawKey),
      direct: ops(direct, directKey),
      relay: ops(relay, directKey),
      swap: await swapOps(direct, directKey),
    };

    // What one command costs the TPM on each path (the raw path's virtualization shows here).
    const calibration: Record<string, Record<Path, string[]> & { firewall?: string[] }> = {};
    for (const op of ['GetRandom', 'Sign'] as Op[]) {
      calibration[op] = { raw: [], direct: [], relay: [], swap: [] };
      for (const p of PATHS) {
        await run[p][op]();
        mux.record = [];
        await run[p][op]();
        calibration[op][p] = mux.record.map(nameOf);
        mux.record = undefined;
      }
    }

    type Figures = { addedUs: number; pairedAddedUs: number; hopUs: number; serviceUs: number; swapUs: number; firewall?: Summary; firewallUs?: number; pairedFirewallUs?: number };
    const results: Record<string, Record<Path, Summary> & Figures> = {};
    for (const op of ['GetRandom', 'Sign'] as Op[]) {
      ctx.log(`group 7: ${op} × ${reps[op]}, raw channel and library interleaved`);
      for (let i = 0; i < warm; i++) for (const p of PATHS) await run[p][op]();
      const samples = await interleave(PATHS, reps[op], (p) => timeMs(run[p][op]));
      const [rawS, dirS, relS, swapS] = [summarize(samples.raw), summarize(samples.direct), summarize(samples.relay), summarize(samples.swap)];
      // The median of each round's difference: drift of the machine cancels within a round.
      const paired = summarize(samples.raw.map((v, i) => v - samples.direct[i]!));
      results[op] = {
        raw: rawS,
        direct: dirS,
        relay: relS,
        swap: swapS,
        addedUs: us(rawS.p50 - dirS.p50),
        pairedAddedUs: us(paired.p50),
        hopUs: us(relS.p50 - dirS.p50),
        serviceUs: us(rawS.p50 - relS.p50),
        swapUs: us(swapS.p50 - dirS.p50),
      };
    }

    await rawTpm.run(C.FlushContext, { flushHandle: rawKey.handle });
    await direct.run(C.FlushContext, { flushHandle: directKey.handle });

    // The service's share alone (firewall, virtualization, queue), in this process: the same
    // commands through a RawSpace against the library directly, interleaved (no hop to a service).
    const fw = inProcessFirewall(mux.path);
    onCleanup(() => fw.close());
    const fwKey = await createSigner(fw.tpm);
    const directKey2 = await createSigner(direct);
    const inProcess: Record<'firewall' | 'direct', Record<Op, () => Promise<unknown>>> = { firewall: ops(fw.tpm, fwKey), direct: ops(direct, directKey2) };
    for (const op of ['GetRandom', 'Sign'] as Op[]) {
      ctx.log(`group 7: ${op} × ${reps[op]}, firewall in process and library interleaved`);
      for (let i = 0; i < warm; i++) for (const p of ['firewall', 'direct'] as const) await inProcess[p][op]();
      mux.record = [];
      await inProcess.firewall[op]();
      calibration[op]!.firewall = mux.record.map(nameOf);
      mux.record = undefined;
      const samples = await interleave(['firewall', 'direct'] as const, reps[op], (p) => timeMs(inProcess[p][op]));
      const [fwS, dirS] = [summarize(samples.firewall), summarize(samples.direct)];
      results[op]!.firewall = fwS;
      results[op]!.firewallUs = us(fwS.p50 - dirS.p50);
      results[op]!.pairedFirewallUs = us(summarize(samples.firewall.map((v, i) => v - samples.direct[i]!)).p50);
    }
    await fw.tpm.run(C.FlushContext, { flushHandle: fwKey.handle });
    await direct.run(C.FlushContext, { flushHandle: directKey2.handle });
    await fw.close();

    const rows = (['GetRandom', 'Sign'] as Op[]).map((op) => {
      const r = results[op]!;
      return [
        op,
        ms(r.direct.p50),
        ms(r.raw.p50),
        signed(r.addedUs),
        signed(r.pairedAddedUs),
        `${r.hopUs.toFixed(0)} + ${r.serviceUs.toFixed(0)}`,
        signed(r.swapUs),
        `${signed(r.firewallUs ?? Number.NaN)} (${signed(r.pairedFirewallUs ?? Number.NaN)})`,
        ms(r.raw.p99),
        calibration[op]!.raw.join(', '),
      ];
    });
    return {
      tables: [{ columns: ['command', 'library p50 ms', 'raw p50 ms', 'added µs', 'added µs (paired)', 'hop + service µs', 'swap, library µs', 'firewall in process µs (paired)', 'raw p99 ms', 'TPM commands (raw)'], rows }],
      notes: [
        'added µs: raw p50 − library p50; paired: median over rounds of (raw − library) in the same round. Goal F4: ≤ 50 µs at p50.',
        'Both paths reach swtpm through the same multiplexer hop, so the difference is the unix-socket hop to the service, the firewall, the virtualization and the TPM queue.',
        'hop: relay p50 − library p50 (one more node process piping bytes); service: raw p50 − relay p50 (firewall, virtualization, queue, and the wake-ups of one more process on the way).',
        'firewall in process: the service\'s RawSpace and TPM queue run in the benchmark\'s own process over a connection of their own to the multiplexer, against the library directly (interleaved; p50 difference, paired in brackets): the firewall and the virtualization alone, without the hop to a service process.',
        'swap, library: the library itself sending ContextLoad + Sign + FlushContext − its plain Sign: the TPM work the virtualization adds, without the service.',
        `TPM commands per library command: ${(['GetRandom', 'Sign'] as Op[]).map((op) => `${op}: ${calibration[op]!.direct.join(', ')}`).join('; ')}.`,
      ],
      data: { reps, warm, calibration, results },
    };
  },
};
