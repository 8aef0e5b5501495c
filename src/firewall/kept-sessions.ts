/**
 * Sessions an app saved itself (TPM2_ContextSave of its session) outlive the connection, as
 * tpm2-abrmd keeps a closed client's saved sessions: each tpm2-tools run is a connection, and a
 * chain such as tpm2_startauthsession → tpm2_policysecret → tpm2_activatecredential -P
 * session:s.ctx passes the session from run to run in its saved context. Only the same app can
 * load it again (ContextLoad takes only contexts the app saved, rules.ts). A saved session still
 * takes one of the chip's session slots (64 on most TPMs, EVE's too), so at most
 * `limits.sessions` per app and MAX_KEPT in all are kept; the oldest go first. One unused for
 * `limits.keptSessionIdleMs` (by the app's clock) is expired: the service flushes it, and the
 * app's later ContextLoad of it gets the chip's answer for a session that no longer exists.
 * Each change is told to one listener (the service records the handles in its state dir, so
 * that the next start flushes what a stopped service left kept: src/service/raw/kept-file.ts).
 */
import type { AppState, Connection } from './app.js';

/** Kept sessions of all apps together. */
export const MAX_KEPT = 16;

/** The kept sessions, oldest first. */
const kept: Array<{ readonly app: AppState; readonly handle: number; readonly since: number }> = [];

/** Told the kept handles after each change. */
let listener: ((handles: number[]) => void) | undefined;
const changed = (): void => listener?.(kept.map((k) => k.handle));

/** Sets (or removes) the one listener to changes of the kept sessions. */
export function onKeptChange(fn: ((handles: number[]) => void) | undefined): void {
  listener = fn;
}

/** Every kept session, removed here for the caller to flush (a service starting: what this process kept before). */
export function takeAllKept(): number[] {
  const out = kept.splice(0).map((k) => k.handle);
  if (out.length > 0) changed();
  return out;
}

/** How long until `k` is idle too long (≤ 0: it is). */
const leftOf = (k: (typeof kept)[number]): number => k.since + k.app.limits.keptSessionIdleMs - k.app.now();

/** Keeps `saved` (sessions the closing connection's app saved itself); returns the sessions to flush now (any app's). */
export function keepSessions(conn: Connection, saved: readonly number[]): number[] {
  let added = false;
  for (const handle of saved) {
    if (kept.some((k) => k.app === conn.app && k.handle === handle)) continue;
    kept.push({ app: conn.app, handle, since: conn.app.now() });
    added = true;
  }
  const out: number[] = [];
  const drop = (i: number): void => void out.push(kept.splice(i, 1)[0]!.handle);
  while (kept.filter((k) => k.app === conn.app).length > conn.app.limits.sessions) drop(kept.findIndex((k) => k.app === conn.app));
  while (kept.length > MAX_KEPT) drop(0);
  if (added || out.length > 0) changed();
  return out;
}

/** A connection loaded a kept session again: it is that connection's now (flushed when it closes). */
export function claimSessions(conn: Connection): void {
  const before = kept.length;
  for (let i = kept.length - 1; i >= 0; i--) if (kept[i]!.app === conn.app && conn.sessions.has(kept[i]!.handle)) kept.splice(i, 1);
  if (kept.length !== before) changed();
}

/** The kept sessions of app `record` (its tenant purged), removed here for the caller to flush. */
export function releaseSessions(record: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < kept.length; ) {
    if (kept[i]!.app.app === record) out.push(kept.splice(i, 1)[0]!.handle);
    else i++;
  }
  if (out.length > 0) changed();
  return out;
}

/** The kept sessions unused for their app's idle limit, removed here for the caller to flush. */
export function expireSessions(): number[] {
  const out: number[] = [];
  for (let i = 0; i < kept.length; ) {
    if (leftOf(kept[i]!) <= 0) out.push(kept.splice(i, 1)[0]!.handle);
    else i++;
  }
  if (out.length > 0) changed();
  return out;
}

/** Milliseconds until the next kept session expires; undefined when none is kept. */
export function nextExpiry(): number | undefined {
  return kept.length === 0 ? undefined : Math.max(0, Math.min(...kept.map(leftOf)));
}
