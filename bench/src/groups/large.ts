/**
 * Group 5 — large messages: sign 1 GiB (generated on the fly, streamed) with a restricted
 * RSA AK through the service, against the TPM's own ceiling — a loop of raw, pre-marshalled
 * TPM2_SequenceUpdate commands (1024 bytes each, the most TPM2B_MAX_BUFFER carries) on the
 * same swtpm — and against the library's streamed signMessage on the same swtpm.
 *
 * 1. Memory: on a fresh service process, a 16 MiB streamed sign, then the 1 GiB one while its
 *    resident memory is sampled; the peak (VmHWM) after each shows whether memory grows with
 *    the message.
 * 2. Rates: rounds of service | raw loop | library (128 MiB each, rotating order). swtpm serves
 *    one connection at a time, so the service is started for its turn and stopped after it.
 *    A single 1 GiB request cannot be interleaved with anything, and this machine's speed
 *    drifts by tens of percent over a minute, so the ratios come from the rounds.
 */
import { readFileSync } from 'node:fs';
import {
  HashSequenceStart,
  SequenceComplete,
  SequenceUpdate,
  TPM_ALG,
  TPM_RH,
  parseBlobs,
  signMessage,
  withLoadedKey,
} from '../../../src/tpm/index.js';
import { marshalCommand } from '../../../src/tpm/entries/wire.js';
import { mib, type Ctx, type Group } from '../context.js';
import { memStatus, sampleMemory, serviceKeyBlobs, startService, startTwinSwtpms, type Swtpm } from '../env.js';
import { MiB, generate, messageStream } from '../message.js';
import { interleave, median, ratio } from '../stats.js';

interface Run {
  bytes: number;
  seconds: number;
  /** CPU time (user + system, µs) per 1 KiB of message: of the path's own process, and of swtpm. */
  cpuUsPerKiB?: { own: number; swtpm: number };
}

/** A process's CPU time so far (user + system), ms; clock ticks of 10 ms (Linux's USER_HZ 100). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

function perKiB(ms: number, bytes: number): number {
  return (ms * 1000) / (bytes / 1024);
}


/** The TPM's hashing ceiling: raw SequenceUpdate frames, one at a time, as fast as it answers. */
async function rawLoop(sw: Swtpm, bytes: number): Promise<Run> {
  const { tpm, transport } = sw.open();
  try {
    const seq = await tpm.run(HashSequenceStart, { auth: new Uint8Array(0), hashAlg: TPM_ALG.SHA256 });
    const frame = marshalCommand(SequenceUpdate, { sequenceHandle: seq.sequenceHandle, buffer: new Uint8Array(1024).fill(0x5a) });
    const n = Math.ceil(bytes / 1024);
    const [c0, s0] = [process.cpuUsage(), cpuMs(sw.pid())];
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const r = await transport.send(frame);
      if (r.length !== 19 || r[9] !== 0) throw new Error('SequenceUpdate failed');
    }
    const seconds = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    const cpuUsPerKiB = { own: perKiB((c.user + c.system) / 1000, n * 1024), swtpm: perKiB(cpuMs(sw.pid()) - s0, n * 1024) };
    await tpm.run(SequenceComplete, { sequenceHandle: seq.sequenceHandle, buffer: new Uint8Array(0), hierarchy: TPM_RH.OWNER });
    return { bytes: n * 1024, seconds, cpuUsPerKiB };
  } finally {
    await transport.close();
  }
}

/** The library's own streamed sign (TPM hash sequence + Sign) with the same key, loaded from its blobs. */
async function librarySign(sw: Swtpm, blobs: { public: Uint8Array; private: Uint8Array }, bytes: number): Promise<Run> {
  const { tpm, transport } = sw.open();
  try {
    const t0 = performance.now();
    // The key's public area is known from its blobs: no ReadPublic, as the service does not read it either.
    const { publicArea } = parseBlobs(blobs);
    await withLoadedKey(tpm, blobs, (h) => signMessage(tpm, h, generate(bytes), { publicArea }));
    return { bytes, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await transport.close();
  }
}

export const largeGroup: Group = {
  id: 5,
  title: 'Large messages: streamed sign through the service vs raw SequenceUpdate loop (same swtpm)',
  async run(ctx: Ctx) {
    const big = ctx.smoke ? 16 * MiB : 1024 * MiB;
    const small = ctx.smoke ? 1 * MiB : 16 * MiB;
    const rounds = ctx.smoke ? 2 : 4;
    const slice = ctx.smoke ? 2 * MiB : 128 * MiB;
    const [sw] = await startTwinSwtpms(1);
    const svc = await startService(ctx, { tpm: sw!.spec, tenants: 1 });
    const client = svc.client(0);
    const key = await client.createKey({ type: 'rsa' });
    const blobs = serviceKeyBlobs(svc, key.handle);
    const serviceSign = async (bytes: number): Promise<Run> => {
      const [c0, s0] = [cpuMs(svc.pid()), cpuMs(sw!.pid())];
      const t0 = performance.now();
      const sig = await client.sign(key.handle, { message: messageStream(bytes), length: bytes });
      const seconds = (performance.now() - t0) / 1000;
      if (sig.messageLength !== bytes) throw new Error(`service hashed ${sig.messageLength} bytes, sent ${bytes}`);
      return { bytes, seconds, cpuUsPerKiB: { own: perKiB(cpuMs(svc.pid()) - c0, bytes), swtpm: perKiB(cpuMs(sw!.pid()) - s0, bytes) } };
    };

    // 1. Memory: a small streamed sign, then the big one, on a fresh service process.
    await svc.restart();
    const pid = svc.pid();
    const idle = memStatus(pid);
    const smallRun = await serviceSign(small);
    const afterSmall = memStatus(pid);
    ctx.log(`large: service, ${mib(big)} MiB in one streamed request`);
    const sampler = sampleMemory(pid, 200);
    const bigRun = await serviceSign(big);
    const mem = sampler.stop();
    await svc.stop();

    // 2. Rates, side by side: rounds of service | raw loop | library on the same swtpm (the
    //    service is stopped while the others run: swtpm serves one connection at a time).
    ctx.log(`large: ${rounds} rounds of service, raw loop and library, ${mib(slice)} MiB each`);
    const runs: Record<'service' | 'raw' | 'library', Run[]> = { service: [], raw: [], library: [] };
    await interleave(['service', 'raw', 'library'] as const, rounds, async (which) => {
      let r: Run;
      if (which === 'service') {
        await svc.restart();
        r = await serviceSign(slice);
        await svc.stop();
      } else if (which === 'raw') r = await rawLoop(sw!, slice);
      else r = await librarySign(sw!, blobs, slice);
      runs[which].push(r);
      return r;
    });
    const per = (rs: Run[]): number[] => rs.map((r) => r.bytes / r.seconds);
    const roundRatios = (a: Run[]): number[] => a.map((r, i) => ratio(r.bytes / r.seconds, runs.raw[i]!.bytes / runs.raw[i]!.seconds));
    const svcRatio = median(roundRatios(runs.service));
    const libRatio = median(roundRatios(runs.library));
    const rawMedian = median(per(runs.raw));
    const bigRate = bigRun.bytes / bigRun.seconds;

    const growthKiB = mem.hwmKiB - (afterSmall?.hwmKiB ?? Number.NaN);
    const samples = mem.samples.map((x) => x.rssKiB);
    const thirds = [0, 1, 2].map((i) => {
      const part = samples.slice(Math.floor((i * samples.length) / 3), Math.floor(((i + 1) * samples.length) / 3));
      return part.length ? Math.max(...part) : Number.NaN;
    });
    const mbps = (r: number): string => (r / 1e6).toFixed(2);
    const spread = (rs: Run[]): string => `${mbps(Math.min(...per(rs)))}–${mbps(Math.max(...per(rs)))}`;
    const cpu = (rs: Run[], k: 'own' | 'swtpm'): string => median(rs.map((r) => r.cpuUsPerKiB![k])).toFixed(1);
    return {
      tables: [
        {
          columns: ['path', 'MB/s (median)', 'range', '÷ raw loop (median of rounds)', 'what it does'],
          rows: [
            ['raw SequenceUpdate loop', mbps(rawMedian), spread(runs.raw), '1.000×', 'pre-marshalled 1 KiB commands, TPM + socket ceiling'],
            ['library signMessage', mbps(median(per(runs.library))), spread(runs.library), `${libRatio.toFixed(3)}×`, 'load key, hash sequence, Sign'],
            ['service, streamed request', mbps(median(per(runs.service))), spread(runs.service), `${svcRatio.toFixed(3)}×`, 'HTTP stream → queue → TPM → Sign'],
            [`service, one ${mib(big)} MiB request`, mbps(bigRate), '', '- (ran alone)', 'the memory run below'],
          ],
        },
        {
          columns: ['service memory', 'MiB'],
          rows: [
            ['RSS idle (after start)', mib((idle?.rssKiB ?? Number.NaN) * 1024)],
            [`peak (VmHWM) after a ${mib(small)} MiB sign`, mib((afterSmall?.hwmKiB ?? Number.NaN) * 1024)],
            [`peak (VmHWM) after the ${mib(big)} MiB sign`, mib(mem.hwmKiB * 1024)],
            ['growth of the peak with message size', mib(growthKiB * 1024)],
            ['max RSS in 1st / 2nd / 3rd third of the upload', thirds.map((k) => mib(k * 1024)).join(' / ')],
          ],
        },
        {
          columns: ['CPU per 1 KiB SequenceUpdate (µs, median of rounds)', 'sender process', 'swtpm'],
          rows: [
            ['raw SequenceUpdate loop (the benchmark process)', cpu(runs.raw, 'own'), cpu(runs.raw, 'swtpm')],
            ['service, streamed request (the service process)', cpu(runs.service, 'own'), cpu(runs.service, 'swtpm')],
          ],
        },
      ],
      notes: [
        `Ratios: each round runs the service (one streamed request), the raw loop and the library on ${mib(slice)} MiB each, in rotating order, on the same swtpm; the ratio is the median over ${rounds} rounds of (path ÷ raw loop of the same round). 1.000× = nothing added over the TPM's own hashing rate.`,
        `The single ${mib(big)} MiB request ran before the rounds, at another moment of this shared machine: its rate is shown, not divided by a raw loop that did not run beside it.`,
        'Limit: the TPM — TPM2B_MAX_BUFFER caps each SequenceUpdate at 1024 bytes, so 1 GiB is 1,048,576 TPM commands; swtpm does one in tens of µs, a real TPM is far slower, so per-command costs of ours weigh far less there.',
        'Memory: a flat peak (growth ≈ 0, flat thirds) means the message is streamed, not held. The peak above idle is V8 heap headroom for the body pieces in flight, not the message.',
        'CPU per command: user + system time of the process that sends the SequenceUpdates (and of swtpm) over the round, ÷ KiB hashed. CPU time is less disturbed by other work on the machine than wall time: the service\'s figure minus the raw loop\'s is what the service spends per command besides the transport (receiving the body included; the rate ratio also pays for the benchmark\'s client process sharing the cores).',
      ],
      data: {
        bigBytes: big,
        smallBytes: small,
        slice,
        rounds,
        runs,
        big: bigRun,
        small: smallRun,
        ratios: { service: svcRatio, library: libRatio, serviceRounds: roundRatios(runs.service), libraryRounds: roundRatios(runs.library) },
        memory: { idle, afterSmall, hwmAfterBigKiB: mem.hwmKiB, peakRssDuringKiB: mem.peakRssKiB, growthKiB, rssSamplesKiB: samples },
      },
    };
  },
};
