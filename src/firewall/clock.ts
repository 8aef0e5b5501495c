/**
 * The firewall's clock for limits over time (limits.ts, kept-sessions.ts): milliseconds on a
 * monotonic clock, so that a change of the wall clock (EVE sets it from NTP after boot) neither
 * refills nor drains an app's limits. Injected: tests pass a fake one and never sleep.
 */

/** Milliseconds, never going back (only differences count). */
export type Clock = () => number;

/** Node's global performance.now() (no import: the firewall imports nothing of node but crypto). */
export const monotonic: Clock = () => performance.now();
