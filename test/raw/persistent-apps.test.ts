/**
 * The apps' kept state (src/service/raw/apps.ts): two apps whose NV home slots collide keep
 * their ranges across a restart whatever order they connect in; a damaged state file is
 * skipped with a log line; persistent records come back; purging frees the slot and the file.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RawApps, homeSlot } from '../../src/service/raw/apps.js';
import { primaryRecipe } from '../../src/service/raw/persistents.js';
import { ekTemplate } from '../../src/tpm/index.js';

/** Two records whose home slots are the same (a birthday search over 0x4000 slots). */
function colliding(): [string, string] {
  const seen = new Map<number, string>();
  for (let i = 0; ; i++) {
    const r = `legacy:app-${i}`;
    const s = homeSlot(r);
    const other = seen.get(s);
    if (other) return [other, r];
    seen.set(s, r);
  }
}

describe('raw apps: kept NV placement and persistent records', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'raw-apps-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('colliding apps keep their ranges across a restart, in either connect order', async () => {
    const [a, b] = colliding();
    const first = await RawApps.load(dir);
    const rb = first.app(b);
    const ra = first.app(a);
    await Promise.all([ra.saved(), rb.saved()]);
    const rangeB = rb.state.nvRange;
    const rangeA = ra.state.nvRange;
    expect(rangeA.first).toBe(rangeB.first + 0x100); // b came first and took the home slot
    const again = await RawApps.load(dir);
    expect(again.of(a).nvRange).toEqual(rangeA); // a first this time: still its own range
    expect(again.of(b).nvRange).toEqual(rangeB);
    // Without the kept state, a would have taken b's range: the isolation bug this prevents.
    expect(new RawApps().of(a).nvRange).toEqual(rangeB);
    // A third app probing past both.
    const third = (await RawApps.load(dir)).app(`${a}-x`);
    await third.saved();
    expect([rangeA.first, rangeB.first]).not.toContain(third.state.nvRange.first);
  });

  it('persistent records come back after a restart; evict removes them', async () => {
    const apps = await RawApps.load(dir);
    const app = apps.app('legacy:alice');
    const recipe = primaryRecipe(0x40000001, { userAuth: new Uint8Array(0), data: new Uint8Array(0) } as never, ekTemplate('ecc'));
    await app.persist({ handle: 0x81000100, name: '000b' + '11'.repeat(32), recipe });
    await app.persist({ handle: 0x81000101, name: '000b' + '22'.repeat(32), recipe: { kind: 'load', parent: recipe, inPrivate: 'abcd', inPublic: recipe.inPublic } });
    const back = (await RawApps.load(dir)).app('legacy:alice');
    expect([...back.state.persistents.keys()].sort()).toEqual([0x81000100, 0x81000101]);
    expect(back.record(0x81000101)?.recipe).toEqual({ kind: 'load', parent: recipe, inPrivate: 'abcd', inPublic: recipe.inPublic });
    await back.evict(0x81000100);
    expect([...(await RawApps.load(dir)).app('legacy:alice').state.persistents.keys()]).toEqual([0x81000101]);
  });

  it('a damaged state file is skipped and logged; forget removes an app’s file', async () => {
    const apps = await RawApps.load(dir);
    await apps.app('legacy:bob').saved();
    await writeFile(join(dir, 'junk.json'), '{not json');
    const lines: unknown[] = [];
    const log = { error: (o: unknown) => lines.push(o) } as never;
    const again = await RawApps.load(dir, log);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ event: 'raw-state-bad' });
    const bob = again.of('legacy:bob').nvRange;
    expect(bob).toEqual(apps.of('legacy:bob').nvRange);
    await again.forget('legacy:bob');
    expect((await readdir(dir)).filter((f) => f !== 'junk.json')).toEqual([]);
  });
});
