/**
 * The tenants file watch (tenants/live-tenants.ts): its baseline is the file as loaded, so an
 * edit made right after the start — before the watch's first look — is picked up too, not
 * taken for the baseline and missed until the next edit or SIGHUP.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { LiveTenants, type PurgeTarget } from '../../src/service/tenants/live-tenants.js';
import { hashSecret } from '../../src/service/tenants/tenants.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const tenantsJson = (ids: string[]): string =>
  JSON.stringify({ tenants: ids.map((id, i) => ({ id, uid: String(i + 1).padStart(16, '0'), secretHash: hashSecret(`secret-of-${id}`), maxKeys: 4 })) });

describe('the tenants file watch', () => {
  it('picks up an edit made before its first look (the loaded file is the baseline)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'live-tenants-'));
    dirs.push(dir);
    const file = join(dir, 'tenants.json');
    writeFileSync(file, tenantsJson(['app-a']));
    const live = new LiveTenants({ singleTenant: false, tenants: file, defaultMaxKeys: 8, stateDir: dir }, pino({ level: 'silent' }));
    expect(live.directory.tenants.map((t) => t.id)).toEqual(['app-a']);
    live.start({} as PurgeTarget); // no purge requests in dir: the target is never used
    live.stopWatching(); // the test takes the watch's looks itself
    writeFileSync(file, tenantsJson(['app-a', 'app-b'])); // before the watch's first look
    await live.look(); // its first look: the baseline is the file as loaded, so this is a change
    expect(live.directory.tenants.map((t) => t.id)).toEqual(['app-a', 'app-b']);
  });
});
