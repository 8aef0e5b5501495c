/**
 * swtpm's character-device mode on an inherited fd: `swtpm chardev --tpm2 --fd 3 ...` spawned
 * with `stdio: ['ignore', 'inherit', 'inherit', 'pipe']` gets one end of a socket pair as fd 3;
 * `child.stdio[3]` (a net.Socket) is the other. Raw TPM frames, one command at a time.
 */
import type { Duplex } from 'node:stream';
import { StreamTransport, type StreamTransportOptions } from './stream.js';

export { StreamTransport, type Connector, type StreamTransportOptions } from './stream.js';

export class ChardevTransport extends StreamTransport {
  /** Takes ownership of `stream`: close() destroys it (swtpm chardev then sees EOF and exits). */
  constructor(stream: Duplex, opts: StreamTransportOptions = {}) {
    super(stream, { ...opts, description: opts.description ?? 'swtpm:chardev' });
  }
}
