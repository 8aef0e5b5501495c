/** The tenants file's usage sources: what parseTenants takes and refuses, with the reason. */
import { describe, expect, it } from 'vitest';
import { parseTenants } from '../../src/service/tenants/tenants.js';

const file = (...extra: Array<Record<string, unknown>>) => ({ tenants: extra.map((e, i) => ({ id: `t${i}`, cid: 10 + i, ...e })) });

describe('tenant usage sources', () => {
  it('takes an absolute cgroup directory and a list of interface names', () => {
    const [t] = parseTenants(file({ cgroup: '/sys/fs/cgroup/eve-user-apps/app1', netifs: ['nbu1x1', 'vif3.0', 'eth0@if5'] }));
    expect(t).toMatchObject({ cgroup: '/sys/fs/cgroup/eve-user-apps/app1', netifs: ['nbu1x1', 'vif3.0', 'eth0@if5'] });
    expect(parseTenants(file({}))[0]).not.toHaveProperty('cgroup');
  });

  it('refuses a path that is relative, dotted or not normalized', () => {
    for (const cgroup of ['sys/fs/cgroup', '/sys/fs/cgroup/../x', '/sys/./fs', '/sys//fs', '/sys/fs/', '', '/', 5]) {
      expect(() => parseTenants(file({ cgroup })), JSON.stringify(cgroup)).toThrow(/tenants\[0\]\.cgroup must be an absolute directory path/);
    }
  });

  it('refuses interface names that are not names, twice the same, or too many', () => {
    for (const bad of ['a/b', '..', '.', 'x'.repeat(16), '', 'a b']) {
      expect(() => parseTenants(file({ netifs: [bad] })), bad).toThrow(/tenants\[0\]\.netifs\[0\] must be an interface name/);
    }
    expect(() => parseTenants(file({ netifs: ['a', 'a'] }))).toThrow('tenants[0].netifs names an interface twice');
    expect(() => parseTenants(file({ netifs: 'eth0' }))).toThrow(/must be a list/);
    expect(() => parseTenants(file({ netifs: Array.from({ length: 65 }, (_, i) => `if${i}`) }))).toThrow(/at most 64/);
  });

  it('gives each cgroup and interface to one tenant at most', () => {
    expect(() => parseTenants(file({ cgroup: '/c/a' }, { cgroup: '/c/a' }))).toThrow('tenants[1]: cgroup /c/a already belongs to tenant t0');
    expect(() => parseTenants(file({ netifs: ['v1'] }, { netifs: ['v2', 'v1'] }))).toThrow('tenants[1]: interface v1 already belongs to tenant t0');
  });
});
