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
 */
import type { AppState, Connection } from './app.js';

/** Kept sessions of all apps together. */
export const MAX_KEPT = 16;

/** The kept sessions, oldest first. */
const kept: Array<{ readonly app: AppState; readonly handle: number; readonly since: number }> = [];

/** How long until `k` is idle too long (≤ 0: it is). */
const leftOf = (k: (typeof kept)[number]): number => k.since + k.app.limits.keptSessionIdleMs - k.app.now();

/** Keeps `saved` (sessions the closing connection's app saved itself); returns the sessions to flush now (any app's). */
export function keepSessions(conn: Connection, saved: readonly number[]): number[] {
  for (const handle of saved) if (!kept.some((k) => k.app === conn.app && k.handle === handle)) kept.push({ app: conn.app, handle, since: conn.app.now() });
  const out: number[] = [];
  const drop = (i: number): void => void out.push(kept.splice(i, 1)[0]!.handle);
  while (kept.filter((k) => k.app === conn.app).length > conn.app.limits.sessions) drop(kept.findIndex((k) => k.app === conn.app));
  while (kept.length > MAX_KEPT) drop(0);
  return out;
}

/** A connection loaded a kept session again: it is that connection's now (flushed when it closes). */
export function claimSessions(conn: Connection): void {
  for (let i = kept.length - 1; i >= 0; i--) if (kept[i]!.app === conn.app && conn.sessions.has(kept[i]!.handle)) kept.splice(i, 1);
}

/** The kept sessions of app `record` (its tenant purged), removed here for the caller to flush. */
export function releaseSessions(record: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < kept.length; ) {
    if (kept[i]!.app.app === record) out.push(kept.splice(i, 1)[0]!.handle);
    else i++;
  }
  return out;
}

/** The kept sessions unused for their app's idle limit, removed here for the caller to flush. */
export function expireSessions(): number[] {
  const out: number[] = [];
  for (let i = 0; i < kept.length; ) {
    if (leftOf(kept[i]!) <= 0) out.push(kept.splice(i, 1)[0]!.handle);
    else i++;
  }
  return out;
}

/** Milliseconds until the next kept session expires; undefined when none is kept. */
export function nextExpiry(): number | undefined {
  return kept.length === 0 ? undefined : Math.max(0, Math.min(...kept.map(leftOf)));
}
