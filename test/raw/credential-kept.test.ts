/**
 * Sessions an app saved itself outlive its connection (kept-sessions.ts), so that tpm2-tools
 * session chains work across runs: per app at most limits.sessions, in all at most MAX_KEPT,
 * the oldest flushed first; a session loaded again is that connection's.
 */
import { describe, expect, it } from 'vitest';
import { AppState, Connection } from '../../src/firewall/app.js';
import { MAX_KEPT, claimSessions, keepSessions, releaseSessions } from '../../src/firewall/kept-sessions.js';

const range = (i: number) => ({ first: 0x01000000 + i * 0x100, last: 0x010000ff + i * 0x100 });

describe('kept sessions', () => {
  it('keeps up to limits.sessions per app, oldest flushed first; a claimed session is no longer kept', () => {
    const app = new AppState('kept-a', range(0));
    const c1 = new Connection(app);
    expect(keepSessions(c1, [0x03000001, 0x03000002, 0x03000003])).toEqual([]);
    expect(keepSessions(new Connection(app), [0x03000004, 0x03000005, 0x03000006])).toEqual([0x03000001, 0x03000002]);
    // Another connection of the app loads 0x03000003 again: it is that connection's (flushed when it closes).
    const c2 = new Connection(app);
    c2.sessions.add(0x03000003);
    claimSessions(c2);
    expect(keepSessions(new Connection(app), [0x03000007])).toEqual([]);
    expect(keepSessions(new Connection(app), [0x03000008])).toEqual([0x03000004]);
    // Another app claims nothing of this one's.
    const other = new Connection(new AppState('kept-b', range(1)));
    other.sessions.add(0x03000005);
    claimSessions(other);
    expect(keepSessions(new Connection(app), [0x03000009])).toEqual([0x03000005]);
    // Loaded again, all of them: nothing of the app is kept.
    const done = new Connection(app);
    for (const h of [0x03000006, 0x03000007, 0x03000008, 0x03000009]) done.sessions.add(h);
    claimSessions(done);
  });

  it(`keeps at most ${MAX_KEPT} in all: the oldest, whichever app's, go first`, () => {
    const apps = Array.from({ length: 6 }, (_, i) => new AppState(`kept-${i + 10}`, range(i + 10)));
    const flushed: number[] = [];
    apps.forEach((app, i) => flushed.push(...keepSessions(new Connection(app), [0, 1, 2, 3].map((n) => 0x02000000 + i * 16 + n))));
    expect(flushed).toEqual([0x02000000, 0x02000001, 0x02000002, 0x02000003, 0x02000010, 0x02000011, 0x02000012, 0x02000013]);
  });

  it('a purged app’s kept sessions are handed back to be flushed, no other app’s', () => {
    const app = new AppState('kept-purged', range(30));
    const other = new AppState('kept-other', range(31));
    keepSessions(new Connection(other), [0x03000100]);
    keepSessions(new Connection(app), [0x03000101, 0x03000102]);
    expect(releaseSessions('kept-purged')).toEqual([0x03000101, 0x03000102]);
    expect(releaseSessions('kept-purged')).toEqual([]);
    expect(releaseSessions('kept-other')).toEqual([0x03000100]);
  });
});
