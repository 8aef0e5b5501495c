/**
 * `eve-tpm-tools/transport`: every transport, and the pieces to write another — QueuedTransport
 * (one command in flight, deadlines, aborts, frame-size checks) and StreamTransport (any duplex
 * stream from a connector), with the framing limits they enforce. Pinned by
 * test/package/exports.test.ts.
 */
export {
  ChardevTransport,
  DEFAULT_DEVICE_PATH,
  DEFAULT_TIMEOUT_MS,
  DeviceTransport,
  MAX_FRAME_SIZE,
  QueuedTransport,
  StreamTransport,
  SwtpmSocketTransport,
  TPM_HEADER_SIZE,
  TpmTransportError,
  openTransport,
  type Connector,
  type DeviceTransportOptions,
  type SendOptions,
  type StreamTransportOptions,
  type SwtpmSocketOptions,
  type TpmTransportErrorCode,
  type Transport,
  type TransportOptions,
} from '../transport/index.js';
