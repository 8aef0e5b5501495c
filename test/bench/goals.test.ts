// The benchmark's last table: issue 13's goals and issue 15's F4 judged from the groups' data (pure, no TPM).
import { describe, expect, it } from 'vitest';
import { evaluateGoals, goalsTable } from '../../bench/src/goals.js';

const svc = (p50: number) => ({ p50 });

function groups(over: { signHotP50?: number; hotCommands?: string[]; rawSignAddedUs?: number } = {}) {
  const level = (ratioHot: number, fairness: number) => ({ ratio: 1.5, ratioHot, service: { fairness } });
  return [
    {
      id: 1,
      data: {
        results: { 'sign, hot': { p50: over.signHotP50 ?? 1.05, service: svc(2.1), direct: svc(2) }, sign: { p50: 0.9 } },
        calibration: { 'sign, hot': { service: over.hotCommands ?? ['Hash', 'Sign'], direct: ['GetCapability', 'StartAuthSession', 'ReadPublic', 'ReadPublic', 'Hash', 'Sign', 'FlushContext'] } },
      },
    },
    { id: 2, data: { clients1: level(0.9, Number.NaN), clients4: level(1, 1.01), clients16: level(0.97, 1.02), clients64: level(0.96, 1.6) } },
    { id: 3, data: { results: { 'Sign command': { roundtrip: { ratio: 6 } }, 'ReadPublic response': { roundtrip: { ratio: 4 } } } } },
    { id: 4, data: { samples: { eve: svc(120), node_floor: svc(100), tpm2_sign: svc(30) } } },
    { id: 5, data: { bigBytes: 2 ** 30, ratios: { service: 0.96, library: 0.97 }, memory: { hwmAfterBigKiB: 60 * 1024 } } },
    { id: 6, data: { idle: { rssKiB: 50 * 1024 }, medians: { node: 39 * 1024 } } },
    { id: 7, data: { results: { GetRandom: { addedUs: 40, firewallUs: 20 }, Sign: { addedUs: over.rawSignAddedUs ?? 45, firewallUs: 30 } } } },
  ];
}

const byId = (gs: ReturnType<typeof evaluateGoals>) => Object.fromEntries(gs.map((g) => [g.id, g]));

describe('issue 13 and 15 goals', () => {
  it('judges every goal from the groups of a full run', () => {
    const g = byId(evaluateGoals(groups(), false));
    expect(Object.keys(g)).toEqual(['P1', 'P2', 'P3', 'P4', 'P5', 'P6', 'P7', 'F4']);
    expect(g.P1!.met).toBe(true);
    expect(g.P1!.values.addedMs).toBeCloseTo(0.1);
    expect(g.P2!.met).toBe(false); // 64 clients: fairness 1.6
    expect(g.P2!.values.worstFairness).toBe(1.6);
    expect(g.P3!.met).toBe(false);
    expect(g.P3!.after).toBe('4.00× (ReadPublic response) … 6.00×');
    expect(g.P4!.met).toBe(true);
    expect(g.P5!.met).toBe(true);
    expect(g.P6!.met).toBe(false);
    expect(g.P7!.met).toBe(true);
    expect(g.P7!.values).toEqual({ service: 2, tpm2Sign: 7 });
    expect(g.F4!.met).toBe(true);
    expect(g.F4!.after).toBe('GetRandom +40 µs, Sign +45 µs (firewall + virtualization in process: +20, +30 µs)');
    expect(g.F4!.source).toMatch(/issue 15/);
    expect(g.P1!.source).toMatch(/issue 13/);
    for (const goal of Object.values(g)) expect(goal.before.length).toBeGreaterThan(0);
  });

  it('does not judge what did not run, failed, or ran in smoke mode', () => {
    const partial = groups().filter((r) => r.id !== 4);
    const failed = partial.map((r) => (r.id === 6 ? { ...r, error: 'boom' } : r));
    const g = byId(evaluateGoals(failed, false));
    expect(g.P4!.met).toBeUndefined();
    expect(g.P4!.after).toMatch(/did not run/);
    expect(g.P6!.met).toBeUndefined();
    expect(g.P1!.met).toBe(true);
    expect(evaluateGoals(groups(), true).every((r) => r.met === undefined)).toBe(true);
  });

  it('counts the commands the service sent, and says when a figure is missing', () => {
    const g = byId(evaluateGoals(groups({ hotCommands: ['ContextLoad', 'Hash', 'Sign'] }), false));
    expect(g.P7!.met).toBe(false);
    const missing = groups();
    missing[0] = { id: 1, data: {} as never };
    const m = byId(evaluateGoals(missing, false));
    expect(m.P1!.met).toBeUndefined();
    expect(m.P1!.after).toMatch(/^incomplete/);
    expect(goalsTable(evaluateGoals(missing, false)).rows.map((r) => r.at(-1))).toEqual(['-', 'no', 'no', 'yes', 'yes', 'no', '-', 'yes']);
    // One command over 50 µs fails the raw channel's goal.
    expect(byId(evaluateGoals(groups({ rawSignAddedUs: 470 }), false)).F4!.met).toBe(false);
  });
});
