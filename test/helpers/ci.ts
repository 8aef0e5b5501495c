/**
 * Whether a suite may be skipped for a missing prerequisite (swtpm, socat, tpm2-tools, the
 * vsock addon): only outside CI. CI installs every prerequisite, so there a missing one must
 * make the suite run and fail loudly, never pass by skipping.
 */
export function skipUnlessCI(missing: boolean): boolean {
  return missing && !process.env.CI;
}
