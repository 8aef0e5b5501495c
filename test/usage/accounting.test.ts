/**
 * The TPM share's bookkeeping on the real TPM queue (jobs that send no command, so no TPM is
 * needed): waits and TPM time per tenant, a withdrawn job forgotten, refusals counted; and the
 * Prometheus text's label escaping.
 */
import { describe, expect, it } from 'vitest';
import type { TpmRunner } from '../../src/tpm/index.js';
import { TpmQueue } from '../../src/service/tpm/queue.js';
import { prometheusText } from '../../src/service/usage/prometheus.js';
import { TpmAccounting } from '../../src/service/usage/tpm-accounting.js';

/** The queue never calls its runner for jobs that send nothing. */
const noTpm = {} as TpmRunner;

describe('TPM accounting', () => {
  it('counts waits and TPM time per tenant; a withdrawn job is forgotten', async () => {
    const q = new TpmQueue(noTpm, { capacity: 8, perTenant: 4 });
    let clock = 100; // a clock of the test's: the figures are exact, whatever the machine's speed
    const acc = new TpmAccounting(() => clock);
    acc.watch(q);
    let release!: () => void;
    const first = q.submit('t1', 'hold', () => new Promise<void>((r) => (release = r)));
    const second = q.submit('t2', 'quick', async () => 'ok');
    const abort = new AbortController();
    const third = q.submit('t2', 'withdrawn', async () => 'never', { signal: abort.signal });
    abort.abort(new Error('gone'));
    await expect(third).rejects.toThrow('gone');
    clock = 107.5; // t1's job held the TPM 7.5 ms; t2's waited as long
    release();
    await first;
    expect(await second).toBe('ok');
    await q.idle();

    expect(acc.account('t1').waits).toEqual({ count: 1, totalMs: 0, maxMs: 0 });
    expect(acc.account('t2').waits).toEqual({ count: 1, totalMs: 7.5, maxMs: 7.5 });
    expect(acc.account('t1').tpmTimeMs).toBe(7.5);
    expect(acc.account('t2').tpmTimeMs).toBe(0);
    const pending = acc as unknown as { queuedAt: Map<number, number>; startedAt: Map<number, number> };
    expect(pending.queuedAt.size + pending.startedAt.size).toBe(0);
    expect(acc.tenants()).toEqual(['t1', 't2']);
    expect(acc.account('nobody')).toEqual({ requests: new Map(), tpmTimeMs: 0, waits: { count: 0, totalMs: 0, maxMs: 0 } });
  });

  it('counts answers by operation, refusals being 4xx and 5xx', () => {
    const acc = new TpmAccounting();
    for (const s of [200, 403, 503, 204]) acc.answered('a', 'sign', s);
    acc.answered('a', 'usage', 200);
    expect([...acc.account('a').requests]).toEqual([
      ['sign', { count: 4, refused: 2 }],
      ['usage', { count: 1, refused: 0 }],
    ]);
  });
});

describe('Prometheus text', () => {
  it('escapes label values and gives every family its HELP and TYPE', () => {
    const text = prometheusText({
      timestamp: 't',
      since: 't',
      tenants: [
        {
          tenant: 'a"b\\c\nd',
          timestamp: 't',
          cgroup: { available: false, configured: false, reason: 'x' },
          network: { available: false, configured: false, reason: 'x' },
          tpm: { since: 't', requests: [{ op: 'sign', count: 3, refused: 1 }], tpmTimeMs: 1500, keys: { held: 1, max: 8, left: 7 }, queueWaits: { count: 2, totalMs: 4, maxMs: 3 } },
        },
      ],
    });
    const lines = text.split('\n');
    expect(lines).toContain('eve_app_tpm_requests_total{tenant="a\\"b\\\\c\\nd",op="sign"} 3');
    expect(lines).toContain('eve_app_tpm_time_seconds_total{tenant="a\\"b\\\\c\\nd"} 1.5');
    expect(lines.filter((l) => l.startsWith('eve_app_cpu_seconds_total'))).toEqual([]); // not configured: no sample
    const families = lines.filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]);
    expect(lines.filter((l) => l.startsWith('# HELP ')).map((l) => l.split(' ')[2])).toEqual(families);
    expect(families).toHaveLength(19);
  });
});
