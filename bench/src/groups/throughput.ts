/**
 * Group 2 — throughput and fairness: signs per second through the service with 1, 4, 16 and
 * 64 concurrent clients spread over up to 8 tenants (each with its own RSA AK), divided by
 * the serial rate of the library signing directly on a twin swtpm; fairness is the ratio of
 * the most to the least completions per tenant (tenants carry equal load). The library signs
 * two ways: loading the key for every sign (as the service did before its object cache) and
 * keeping it loaded (Hash + Sign, what the service's cache does for a hot key). Each level's
 * service window and the two library windows are run back to back, in rotating order.
 */
import { TPM_ALG, flush, formatSignature, loadKey, signDigest, tpmHash, withLoadedKey } from '../../../src/tpm/index.js';
import { ServiceError } from '../../../src/service/client/client.js';
import { mib, ms, perSec, x, type Ctx, type Group } from '../context.js';
import { sampleMemory, serviceKeyBlobs, startService, startTwinSwtpms } from '../env.js';
import { ratio, summarize } from '../stats.js';

const MESSAGE = new Uint8Array(32).fill(0x62);
const TENANTS = 8;

interface Window {
  seconds: number;
  completed: number;
  rate: number;
}

export const throughputGroup: Group = {
  id: 2,
  title: 'Throughput and fairness: concurrent signs through the service ÷ serial library signs',
  async run(ctx: Ctx) {
    const levels = [1, 4, 16, 64];
    const windowMs = ctx.smoke ? 400 : 4000;
    const [swS, swD] = await startTwinSwtpms(2);
    const svc = await startService(ctx, { tpm: swS!.spec, tenants: TENANTS });
    const keys: string[] = [];
    for (let t = 0; t < TENANTS; t++) keys.push((await svc.client(t).createKey({ type: 'rsa' })).handle);
    const blobs = serviceKeyBlobs(svc, keys[0]!);
    const { tpm } = swD!.open();
    const directSign = async (): Promise<void> => {
      const h = await tpmHash(tpm, MESSAGE, TPM_ALG.SHA256);
      const sig = await withLoadedKey(tpm, blobs, (k) => signDigest(tpm, k, h.digest, h.validation));
      formatSignature(sig, 'plain');
    };
    const hotKey = await loadKey(tpm, blobs);
    const hotSign = async (): Promise<void> => {
      const h = await tpmHash(tpm, MESSAGE, TPM_ALG.SHA256);
      formatSignature(await signDigest(tpm, hotKey, h.digest, h.validation), 'plain');
    };
    const clients = Array.from({ length: TENANTS }, (_, t) => svc.client(t, 120_000));
    // warm both paths
    for (let i = 0; i < (ctx.smoke ? 1 : 5); i++) {
      await directSign();
      await hotSign();
      await clients[0]!.sign(keys[0]!, { message: MESSAGE });
    }

    const serial = async (sign: () => Promise<void>): Promise<Window> => {
      let completed = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < windowMs) {
        await sign();
        completed++;
      }
      const seconds = (performance.now() - t0) / 1000;
      return { seconds, completed, rate: completed / seconds };
    };

    const concurrent = async (n: number) => {
      const tenantsUsed = Math.min(n, TENANTS);
      const perTenant = new Array<number>(tenantsUsed).fill(0);
      const latencies: number[] = [];
      const rejected: Record<string, number> = {};
      let failures = 0;
      const end = performance.now() + windowMs;
      const t0 = performance.now();
      const mem = sampleMemory(svc.pid(), 250);
      await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const t = i % tenantsUsed;
          while (performance.now() < end) {
            const s0 = performance.now();
            try {
              await clients[t]!.sign(keys[t]!, { message: MESSAGE });
              latencies.push(performance.now() - s0);
              perTenant[t]!++;
            } catch (e) {
              if (e instanceof ServiceError && (e.status === 429 || e.status === 503)) {
                rejected[e.code] = (rejected[e.code] ?? 0) + 1;
                await new Promise((r) => setTimeout(r, 10));
              } else if (++failures > 20) throw e;
            }
          }
        }),
      );
      const seconds = (performance.now() - t0) / 1000; // includes the requests in flight at the end
      const memory = mem.stop();
      const completed = perTenant.reduce((a, b) => a + b, 0);
      return {
        window: { seconds, completed, rate: completed / seconds } satisfies Window,
        perTenant,
        fairness: tenantsUsed > 1 ? ratio(Math.max(...perTenant), Math.min(...perTenant)) : Number.NaN,
        latency: summarize(latencies),
        rejected,
        failures,
        peakRssKiB: memory.peakRssKiB,
      };
    };

    const rows: (string | number)[][] = [];
    const data: Record<string, unknown> = { windowMs, tenants: TENANTS };
    const serialWindows: Window[] = [];
    const hotWindows: Window[] = [];
    for (const [i, n] of levels.entries()) {
      ctx.log(`throughput: ${n} client(s), ${windowMs} ms windows`);
      let s!: Window;
      let h!: Window;
      let c!: Awaited<ReturnType<typeof concurrent>>;
      const steps = [
        async () => void (s = await serial(directSign)),
        async () => void (h = await serial(hotSign)),
        async () => void (c = await concurrent(n)),
      ];
      for (let k = 0; k < steps.length; k++) await steps[(i + k) % steps.length]!();
      serialWindows.push(s);
      hotWindows.push(h);
      const r = ratio(c.window.rate, s.rate);
      const rHot = ratio(c.window.rate, h.rate);
      const rej = Object.values(c.rejected).reduce((a, b) => a + b, 0);
      rows.push([
        n,
        Math.min(n, TENANTS),
        c.window.rate.toFixed(1),
        s.rate.toFixed(1),
        x(r),
        h.rate.toFixed(1),
        x(rHot),
        Number.isFinite(c.fairness) ? x(c.fairness, 2) : '-',
        ms(c.latency.p50),
        ms(c.latency.p99),
        rej,
        mib(c.peakRssKiB * 1024),
      ]);
      data[`clients${n}`] = { service: c, serial: s, ratio: r, serialHot: h, ratioHot: rHot };
    }
    await svc.stop();
    await flush(tpm, hotKey);
    const busyCodes = new Set(levels.flatMap((n) => Object.keys((data[`clients${n}`] as { service: { rejected: Record<string, number> } }).service.rejected)));
    const extra: string[] = [];
    if (busyCodes.size > 0) {
      extra.push(
        `Busy answers (${[...busyCodes].join(', ')}) came at the highest level: every connection had a request in flight or had not sent one yet (--max-connections, default 256; idle connections make room). A one-shot tool would fail with such an answer.`,
      );
    }
    return {
      tables: [
        {
          columns: ['clients', 'tenants', 'svc signs/s', 'lib serial/s', 'ratio', 'lib hot/s', '÷ hot', 'fairness max/min', 'p50 ms', 'p99 ms', 'busy', 'svc RSS MiB'],
          rows,
        },
      ],
      notes: [
        `Ratio: service signs/s with N clients ÷ the library's serial signs/s on a twin swtpm (${perSec(summarize(serialWindows.map((w) => w.rate)).p50)}/s median, loading the key for every sign: 9 TPM commands); "÷ hot" the same against the library keeping the key loaded (${perSec(summarize(hotWindows.map((w) => w.rate)).p50)}/s median, Hash + Sign, what the service's object cache does for a hot key), windows of ${windowMs} ms; 1.000× = the TPM is kept as busy through the service as by a tight library loop. Clients are spread round-robin over up to ${TENANTS} tenants; fairness = most ÷ fewest signs completed per tenant (1.00× = perfectly fair). "busy" = 429/503 answers (retried after 10 ms).`,
        `The service's object cache keeps keys loaded or context-saved; with ${TENANTS} tenants' keys and the few object slots a TPM guarantees (swtpm: TPM_PT_HR_TRANSIENT_MIN), a sign of a key that was saved out brings it back with ContextLoad first (and may save another out): "÷ hot" then compares somewhat more TPM work with less.`,
        'Limit: the TPM runs one command at a time, so concurrency cannot raise the rate above the serial TPM rate; it can only show the queue keeping the TPM busy and fair. On 2 cores the client load (up to 64 HTTP clients in the benchmark process) competes with the service and swtpm for CPU.',
        ...extra,
      ],
      data,
    };
  },
};
