export {
  DEFAULT_TIMEOUT_MS,
  MAX_FRAME_SIZE,
  TPM_HEADER_SIZE,
  TpmTransportError,
  type SendOptions,
  type Transport,
  type TpmTransportErrorCode,
} from './types.js';
export { QueuedTransport, type TransportOptions } from './base.js';
export { ResponseFramer, checkCommand, frameSize } from './framing.js';
export { DEFAULT_DEVICE_PATH, DeviceTransport, type DeviceTransportOptions } from './device.js';
export { StreamTransport, type Connector, type StreamTransportOptions } from './stream.js';
export { SwtpmSocketTransport, isLoopbackHost, type SwtpmSocketOptions } from './swtpm-socket.js';
export { ChardevTransport } from './swtpm-chardev.js';

import type { TransportOptions } from './base.js';
import { DeviceTransport } from './device.js';
import { SwtpmSocketTransport } from './swtpm-socket.js';
import type { Transport } from './types.js';

/**
 * Opens (lazily: nothing is touched before the first command) a transport from a string:
 * - `/dev/tpmrm0`, any other path, or `device:PATH`: a TPM character device;
 * - `swtpm:unix:PATH`: swtpm's unix server socket;
 * - `swtpm:tcp:HOST:PORT` (HOST a loopback name/address, IPv6 in brackets): swtpm's TCP server.
 */
export function openTransport(spec: string, opts: TransportOptions = {}): Transport {
  if (typeof spec !== 'string' || spec.trim() === '') throw new TypeError('transport spec must be a non-empty string');
  if (spec.startsWith('device:')) return new DeviceTransport({ ...opts, path: nonEmpty(spec.slice(7), spec) });
  if (spec.startsWith('swtpm:unix:')) return new SwtpmSocketTransport({ ...opts, path: nonEmpty(spec.slice(11), spec) });
  if (spec.startsWith('swtpm:tcp:')) {
    const rest = spec.slice(10);
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(rest);
    if (!m) throw new TypeError(`bad transport spec ${spec}: expected swtpm:tcp:HOST:PORT`);
    return new SwtpmSocketTransport({ ...opts, host: (m[1] ?? m[2])!, port: Number(m[3]) });
  }
  // Anything else with a scheme prefix is a typo, not a relative path.
  if (/^[a-z][a-z0-9+.-]*:/i.test(spec)) {
    throw new TypeError(`unknown transport spec ${spec}: use a device path, swtpm:unix:PATH or swtpm:tcp:HOST:PORT`);
  }
  return new DeviceTransport({ ...opts, path: spec });
}

function nonEmpty(s: string, spec: string): string {
  if (s === '') throw new TypeError(`bad transport spec ${spec}: empty path`);
  return s;
}
