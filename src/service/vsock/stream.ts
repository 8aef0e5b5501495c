/**
 * Turning a connected vsock descriptor into a real `net.Socket`.
 *
 * The addon only makes and accepts sockets; reads and writes are libuv's: the descriptor is
 * handed to libuv as a stream (a `Pipe` handle from
 * Node's own `pipe_wrap` binding: `uv_pipe_open` accepts any stream fd, sets O_NONBLOCK and
 * polls it with epoll; it does not care about the address family). Reads and writes are then
 * non-blocking, writes complete only as the kernel takes the bytes (real back-pressure for
 * node:http), and destroy() closes the fd exactly once. Node's own `net.Server` builds its
 * sockets from handles the same way.
 *
 * Limit: `process.binding('pipe_wrap')` is an internal (documentation-deprecated, DEP0111)
 * API. It exists in Node 18 and 20; should a later Node drop it, `vsockStreamsAvailable()` fails with
 * a clear VsockUnavailableError rather than anything degrading silently.
 */
import { Socket } from 'node:net';
import { VsockUnavailableError } from './addon.js';

/** The identity of the far end of a vsock connection. */
export interface VsockPeer {
  cid: number;
  port: number;
}

interface PipeHandle {
  open(fd: number): unknown;
  close(cb?: () => void): void;
}

interface PipeWrap {
  Pipe: new (type: number) => PipeHandle;
  constants: { SOCKET: number };
}

let pipeWrap: PipeWrap | undefined;

/** Checks (once) that this Node can drive an arbitrary stream fd through libuv. */
export function vsockStreamsAvailable(): PipeWrap {
  if (pipeWrap) return pipeWrap;
  let b: Partial<PipeWrap> | undefined;
  try {
    const binding = (process as unknown as { binding?: (name: string) => unknown }).binding;
    b = binding?.call(process, 'pipe_wrap') as Partial<PipeWrap> | undefined;
  } catch {
    b = undefined;
  }
  if (typeof b?.Pipe !== 'function' || typeof b.constants?.SOCKET !== 'number') {
    throw new VsockUnavailableError(
      `vsock is not available: Node.js ${process.version} does not offer process.binding('pipe_wrap'), which the vsock adapter uses for non-blocking I/O`,
    );
  }
  pipeWrap = b as PipeWrap;
  return pipeWrap;
}

/**
 * Gives `fd` to libuv. Afterwards the handle owns it (closing the handle closes the fd).
 * Throws if libuv refuses it; then the fd is still the caller's to close.
 */
export function adoptFd(fd: number): PipeHandle {
  const { Pipe, constants } = vsockStreamsAvailable();
  const handle = new Pipe(constants.SOCKET);
  const rc = handle.open(fd); // throws in some Node versions, returns a negative errno in others
  if (typeof rc === 'number' && rc < 0) {
    handle.close();
    throw new Error(`cannot poll vsock descriptor ${fd}: libuv error ${rc}`);
  }
  return handle;
}

export type AdoptedHandle = PipeHandle;

/**
 * A `net.Socket` over an adopted handle, dressed as a vsock socket: `remoteAddress` is
 * `vsock:<cid>`, `remotePort` the peer's port, `remoteFamily` 'vsock', plus `vsockPeer`.
 * setNoDelay/setKeepAlive are no-ops (a Pipe handle has neither); setTimeout, ref/unref,
 * end (shutdown SHUT_WR), destroy (close) behave as on any socket.
 */
export function socketFromHandle(handle: PipeHandle, peer: VsockPeer): Socket {
  const sock = new Socket({ handle, readable: true, writable: true } as unknown as ConstructorParameters<typeof Socket>[0]);
  const frozen = Object.freeze({ cid: peer.cid, port: peer.port });
  Object.defineProperties(sock, {
    remoteAddress: { value: `vsock:${peer.cid}`, enumerable: true },
    remotePort: { value: peer.port, enumerable: true },
    remoteFamily: { value: 'vsock', enumerable: true },
    vsockPeer: { value: frozen, enumerable: true },
  });
  return sock;
}
