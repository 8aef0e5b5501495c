/**
 * Service addresses, one spelling for the server's `--listen` and the client's `address`:
 * `unix:PATH`, `tcp:HOST:PORT` (IPv6 in brackets), `vsock:PORT` (listen) / `vsock:CID:PORT`
 * (connect). The server also takes sockets it inherits: `fd:N` (one descriptor) and `systemd`
 * (every socket passed by systemd socket activation, LISTEN_FDS). No dependencies: the client
 * is bundled into the container tools.
 */

export type Address =
  | { kind: 'unix'; path: string }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'vsock'; cid: number | undefined; port: number };

/** What the server may listen on: an address, or sockets it inherited. */
export type ListenAddress = Address | { kind: 'fd'; fd: number } | { kind: 'systemd' };

export const DEFAULT_VSOCK_PORT = 8877;
/** The host's CID as seen from a guest (VMADDR_CID_HOST). */
export const VSOCK_CID_HOST = 2;

function port(s: string, spec: string, allowZero: boolean): number {
  if (!/^(?:0|[1-9][0-9]{0,9})$/.test(s)) throw new TypeError(`bad port in ${spec}`);
  const n = Number(s);
  if (n > 65535 && !spec.startsWith('vsock:')) throw new TypeError(`port out of range in ${spec}`);
  if (n > 0xffffffff || (n === 0 && !allowZero)) throw new TypeError(`port out of range in ${spec}`);
  return n;
}

function cid(s: string, spec: string): number {
  if (!/^(?:0|[1-9][0-9]{0,9})$/.test(s) || Number(s) > 0xffffffff) throw new TypeError(`bad CID in ${spec}`);
  return Number(s);
}

/**
 * Parses an address. `listen`: `vsock:PORT` (or `vsock` alone: port 8877), port 0 allowed
 * for tcp (an ephemeral port), and the inherited `fd:N` / `systemd`; otherwise `vsock:CID:PORT`.
 */
export function parseAddress(spec: string, mode: 'connect'): Address;
export function parseAddress(spec: string, mode: 'listen'): ListenAddress;
export function parseAddress(spec: string, mode: 'listen' | 'connect'): ListenAddress {
  if (typeof spec !== 'string') throw new TypeError('address must be a string');
  if (mode === 'listen' && spec === 'systemd') return { kind: 'systemd' };
  if (mode === 'listen' && spec.startsWith('fd:')) {
    // 0-2 are stdio; a descriptor number is small (the kernel's limit is far below 2^31).
    const s = spec.slice(3);
    if (!/^[1-9][0-9]{0,8}$/.test(s) || Number(s) < 3) throw new TypeError(`bad descriptor in ${spec}: expected fd:N with N ≥ 3`);
    return { kind: 'fd', fd: Number(s) };
  }
  if (spec.startsWith('unix:')) {
    const path = spec.slice(5);
    if (path === '' || path.includes('\0')) throw new TypeError(`bad unix socket path in ${spec}`);
    return { kind: 'unix', path };
  }
  if (spec.startsWith('tcp:')) {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):([0-9]+)$/.exec(spec.slice(4));
    if (!m) throw new TypeError(`bad tcp address ${spec}: expected tcp:HOST:PORT`);
    return { kind: 'tcp', host: (m[1] ?? m[2])!, port: port(m[3]!, spec, mode === 'listen') };
  }
  if (spec === 'vsock' && mode === 'listen') return { kind: 'vsock', cid: undefined, port: DEFAULT_VSOCK_PORT };
  if (spec.startsWith('vsock:')) {
    const parts = spec.slice(6).split(':');
    if (mode === 'listen' && parts.length === 1) return { kind: 'vsock', cid: undefined, port: port(parts[0]!, spec, false) };
    if (mode === 'connect' && parts.length === 2) return { kind: 'vsock', cid: cid(parts[0]!, spec), port: port(parts[1]!, spec, false) };
    throw new TypeError(`bad vsock address ${spec}: expected ${mode === 'listen' ? 'vsock:PORT' : 'vsock:CID:PORT'}`);
  }
  if (mode === 'listen') throw new TypeError(`unknown address ${spec}: use unix:PATH, tcp:HOST:PORT, vsock:PORT, fd:N or systemd`);
  throw new TypeError(`unknown address ${spec}: use unix:PATH, tcp:HOST:PORT or vsock:CID:PORT`);
}

export function formatAddress(a: ListenAddress): string {
  if (a.kind === 'fd') return `fd:${a.fd}`;
  if (a.kind === 'systemd') return 'systemd';
  if (a.kind === 'unix') return `unix:${a.path}`;
  if (a.kind === 'tcp') return `tcp:${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
  return a.cid === undefined ? `vsock:${a.port}` : `vsock:${a.cid}:${a.port}`;
}
