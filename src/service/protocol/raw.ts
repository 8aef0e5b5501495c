/**
 * The raw channel's names (docs/API.md "Raw TPM channel"): `GET /v1/tpm` with
 * `Connection: Upgrade` and `Upgrade: tpm2-frames`, answered `101 Switching Protocols`; then
 * the connection carries TPM command frames, each followed by its response frame, one at a
 * time. A frame's own header gives its size, so no other framing is needed. No imports: the
 * container tools bundle it.
 */
export const RAW_PATH = '/v1/tpm';
export const RAW_PROTOCOL = 'tpm2-frames';
