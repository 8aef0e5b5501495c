/**
 * The one place the tests decide whether they run under CI. `CI=false` or `CI=0` (as some
 * shells and tools set to opt out) means not CI.
 */
export function isCI(): boolean {
  const v = process.env.CI;
  return !!v && v !== 'false' && v !== '0';
}

/**
 * Whether a suite may be skipped for a missing prerequisite (swtpm, socat, tpm2-tools, openssl,
 * the vsock addon): only outside CI, and never silently. CI installs every prerequisite, so
 * there a missing one must make the suite run and fail loudly, never pass by skipping.
 */
export function skipUnlessCI(missing: boolean, what = 'a prerequisite (swtpm, socat, tpm2-tools, openssl or the vsock addon)'): boolean {
  const skip = missing && !isCI();
  if (skip) console.warn(`skipping a suite: ${what} is not installed here (under CI this fails instead)`);
  return skip;
}
