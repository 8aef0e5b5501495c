/**
 * ReadClock as the app sees it (attack 12; docs/FIREWALL.md "Clock privacy"). resetCount and
 * restartCount count the device's boots and resumes: the same numbers in every app would tell
 * the apps of one device that they are neighbours. The TPM itself hides them in attestations
 * signed by keys outside the endorsement and platform hierarchies by adding an offset fixed per
 * signing key (Part 3 §18.1), so a verifier sees them change, never their values. The firewall
 * does the same for ReadClock, with an offset fixed per app: the differences between two
 * readings stay true, the values differ from app to app. clock, time and safe pass (every
 * attestation carries clock as it is; see FIREWALL.md).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { ReadClock } from '../tpm/commands.js';
import { marshalResponse, type CommandOutput } from '../tpm/command.js';
import type { TPMS_TIME_INFO } from '../tpm/structures.js';

/**
 * The key of the offsets: the service's own, never an app's to know (an app that knew it could
 * take its offset away). Random per process until the service sets the one it keeps
 * (service/raw/clock-key.ts), so that restarts keep every app's offsets.
 */
let offsetKey: Uint8Array = randomBytes(32);

/** Sets the offsets' key (the service's kept one; tests). */
export function setClockKey(key: Uint8Array): void {
  offsetKey = new Uint8Array(key);
}

const TWO_32 = 0x100000000;

/** The app's offsets for resetCount and restartCount. */
export function clockOffsets(app: string): { reset: number; restart: number } {
  const mac = createHmac('sha256', offsetKey).update('EVE-APP-CLOCK\0').update(app).digest();
  return { reset: mac.readUInt32BE(0), restart: mac.readUInt32BE(4) };
}

/** The chip's time info with the app's counts (UINT32 arithmetic modulo 2^32, as the TPM's). */
export function appTimeInfo(app: string, t: TPMS_TIME_INFO): TPMS_TIME_INFO {
  const o = clockOffsets(app);
  const c = t.clockInfo;
  return { ...t, clockInfo: { ...c, resetCount: (c.resetCount + o.reset) % TWO_32, restartCount: (c.restartCount + o.restart) % TWO_32 } };
}

/** The ReadClock response for the app, from the chip's decoded one. */
export function appReadClock(app: string, out: CommandOutput<typeof ReadClock>): Uint8Array {
  return marshalResponse(ReadClock, { currentTime: appTimeInfo(app, out.currentTime) });
}
