/**
 * swtpm's TPM server socket (`swtpm socket --server type=unixio,path=...` or
 * `--server type=tcp,port=...`): raw TPM command/response bytes, no MSSIM framing. swtpm serves
 * one connection at a time; a second client waits in the listen backlog until the first closes.
 */
import { createConnection, isIPv4, isIPv6, type Socket } from 'node:net';
import type { TransportOptions } from './base.js';
import { StreamTransport, type Connector } from './stream.js';
import { TpmTransportError } from './types.js';

export type SwtpmSocketOptions = TransportOptions & ({ path: string } | { host?: string; port: number });

/** Only loopback: the TPM channel carries secrets in the clear and has no authentication. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIPv4(host)) return host.startsWith('127.');
  if (isIPv6(host)) {
    const h = host.toLowerCase();
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return m !== null && isIPv4(m[1]!) && m[1]!.startsWith('127.');
  }
  return false;
}

export class SwtpmSocketTransport extends StreamTransport {
  constructor(opts: SwtpmSocketOptions) {
    let target: { path: string } | { host: string; port: number };
    let description: string;
    if ('path' in opts && opts.path !== undefined) {
      if (typeof opts.path !== 'string' || opts.path === '') throw new TypeError('swtpm socket path must be a non-empty string');
      target = { path: opts.path };
      description = `swtpm:unix:${opts.path}`;
    } else {
      const { host = '127.0.0.1', port } = opts as { host?: string; port: number };
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`invalid swtpm port ${String(port)}`);
      if (!isLoopbackHost(host)) throw new RangeError(`swtpm host must be a loopback address, got ${host}`);
      target = { host, port };
      description = `swtpm:tcp:${isIPv6(host) ? `[${host}]` : host}:${port}`;
    }
    super(connect(target, description), { ...opts, description });
  }
}

function connect(target: { path: string } | { host: string; port: number }, description: string): Connector {
  return (signal) =>
    new Promise<Socket>((resolve, reject) => {
      const sock = createConnection(target);
      const cleanup = (): void => {
        sock.off('connect', onConnect);
        sock.off('error', onError);
        signal.removeEventListener('abort', onAbort);
      };
      const onConnect = (): void => {
        cleanup();
        if ('port' in target) sock.setNoDelay(true); // one small write per command: do not wait for Nagle
        resolve(sock);
      };
      const onError = (e: Error): void => {
        cleanup();
        sock.destroy();
        const code = (e as { code?: unknown }).code;
        reject(new TpmTransportError('IO', `cannot connect to ${description}: ${typeof code === 'string' ? code : e.message}`, { cause: e }));
      };
      const onAbort = (): void => {
        cleanup();
        sock.destroy();
        reject(signal.reason);
      };
      sock.once('connect', onConnect);
      sock.once('error', onError);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
}
