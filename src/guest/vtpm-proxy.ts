/**
 * A TPM 2.0 device made by the kernel's vTPM proxy (module tpm_vtpm_proxy, /dev/vtpmx): the
 * ioctl VTPM_PROXY_IOC_NEW_DEV creates /dev/tpmN + /dev/tpmrmN and returns a "proxy" fd. Each
 * read on that fd gives one whole command the kernel sends to the new chip, and one write gives
 * its response. The device disappears when the fd is closed.
 *
 * No read ever waits on the event loop: the kernel's read ignores O_NONBLOCK, so the fd is
 * watched with a libuv poll (the vsock addon's watch()) and read exactly once per readable
 * event. With one reader, a command is then waiting and read() returns at once; a write never
 * waits. The alternative, fs.read on the threadpool, would hold a pool thread for as long as
 * the device is idle.
 */
import { TPM_RC } from '../tpm/rc.js';
import { loadVsockAddon, type VsockAddon, type VsockWatch } from '../service/vsock/addon.js';

/** The control device of tpm_vtpm_proxy. */
export const VTPMX_PATH = '/dev/vtpmx';
/** The kernel's TPM_BUFSIZE: no command or response is larger. */
export const TPM_BUFSIZE = 4096;
/**
 * A command of the proxy protocol, not of the TPM: the kernel sends it to the proxy before its
 * first command (vtpm_proxy_request_locality); only the kernel may send it, and the proxy
 * answers it (swtpm does the same). Never forwarded.
 */
export const TPM2_CC_SET_LOCALITY = 0x20001000;

/** What the vTPM part of the addon exports (native/vsock/vsock.c). */
interface VtpmAddon extends VsockAddon {
  vtpmNewDev(control: string): { fd: number; tpmNum: number; major: number; minor: number };
  read(fd: number, bytes: Uint8Array): number | null;
  write(fd: number, bytes: Uint8Array): number;
}

/** Creating or serving the device failed; the message is one line that says what to do. */
export class VtpmProxyError extends Error {
  override readonly name = 'VtpmProxyError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const errnoOf = (e: unknown): string | undefined => {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
};

function loadAddon(): VtpmAddon {
  let a: Partial<VtpmAddon> & VsockAddon;
  try {
    a = loadVsockAddon();
  } catch (e) {
    throw new VtpmProxyError(`the native addon (vsock.node, which also carries the vTPM proxy ioctl) cannot be loaded: ${(e as Error).message}`, { cause: e });
  }
  if (typeof a.vtpmNewDev !== 'function' || typeof a.read !== 'function' || typeof a.write !== 'function') {
    throw new VtpmProxyError('the native addon found is older than this program: it has no vtpmNewDev (rebuild native/vsock or use the prebuilds/ shipped with it)');
  }
  return a as VtpmAddon;
}

/** Answers one command frame with one response frame. */
export type CommandHandler = (command: Uint8Array) => Promise<Uint8Array>;

export interface VtpmDeviceOptions {
  /** Default /dev/vtpmx. */
  control?: string;
  /** Told of a response the kernel no longer waits for, or a write it refused. */
  onDropped?: (why: string) => void;
}

/** The `code` field of a command frame (bytes 6..9). */
export function commandCode(frame: Uint8Array): number {
  return frame.length >= 10 ? new DataView(frame.buffer, frame.byteOffset, frame.length).getUint32(6) : -1;
}

/** A 10-byte response: TPM_ST_NO_SESSIONS, size 10, the code. */
export function responseCode(rc: number): Uint8Array {
  const out = new Uint8Array(10);
  const v = new DataView(out.buffer);
  v.setUint16(0, 0x8001);
  v.setUint32(2, 10);
  v.setUint32(6, rc);
  return out;
}

export class VtpmDevice {
  readonly tpmNum: number;
  /** /dev/tpmN: one user at a time, raw. */
  readonly devicePath: string;
  /** /dev/tpmrmN: the kernel's resource manager on the new chip; what applications open. */
  readonly rmPath: string;
  /** Settles when the kernel hangs up (registration failed, or close()). */
  readonly ended: Promise<void>;
  private readonly addon: VtpmAddon;
  private readonly fd: number;
  private watch: VsockWatch | undefined;
  private handler: CommandHandler | undefined;
  private readonly buf = new Uint8Array(TPM_BUFSIZE);
  /** Commands read; a response is written only for the newest (the kernel gave up on older ones). */
  private generation = 0;
  /** The chain of commands being answered, one at a time. */
  private tail: Promise<void> = Promise.resolve();
  private closed = false;
  private end!: () => void;
  private readonly onDropped: (why: string) => void;

  /** Creates the device pair. The kernel starts talking to it at once: call serve() right away. */
  constructor(opts: VtpmDeviceOptions = {}) {
    const control = opts.control ?? VTPMX_PATH;
    this.addon = loadAddon();
    let made: ReturnType<VtpmAddon['vtpmNewDev']>;
    try {
      made = this.addon.vtpmNewDev(control);
    } catch (e) {
      throw createError(control, e);
    }
    this.fd = made.fd;
    this.tpmNum = made.tpmNum;
    this.devicePath = `/dev/tpm${made.tpmNum}`;
    this.rmPath = `/dev/tpmrm${made.tpmNum}`;
    this.onDropped = opts.onDropped ?? (() => {});
    this.ended = new Promise((r) => (this.end = r));
  }

  /** Starts answering the kernel's commands with `handler`, one at a time, in order. */
  serve(handler: CommandHandler): void {
    if (this.closed || this.watch) throw new VtpmProxyError('the device is closed or already served');
    this.handler = handler;
    this.watch = this.addon.watch(this.fd, false, (status) => this.onReadable(status));
  }

  private onReadable(status: number): void {
    if (this.closed) return;
    if (status < 0) return this.hangUp();
    let n: number | null;
    try {
      n = this.addon.read(this.fd, this.buf);
    } catch (e) {
      // EPIPE: the kernel hung up (registration failed, or the device is going away).
      if (errnoOf(e) !== 'EPIPE') this.onDropped(`read from the proxy: ${(e as Error).message}`);
      return this.hangUp();
    }
    if (n === null || n === 0) return;
    const command = this.buf.slice(0, n);
    const gen = ++this.generation;
    this.tail = this.tail.then(() => this.answer(command, gen));
  }

  private async answer(command: Uint8Array, gen: number): Promise<void> {
    let response: Uint8Array;
    const failed = (why: string): Uint8Array => {
      this.onDropped(`command 0x${commandCode(command).toString(16)} answered TPM_RC_FAILURE: ${why}`);
      return responseCode(TPM_RC.FAILURE); // the kernel must never wait for nothing
    };
    try {
      response = await this.handler!(command);
    } catch (e) {
      response = failed((e as Error).message);
    }
    // The kernel refuses (EIO) a response it cannot take, and would then wait for its timeout.
    if (response.length < 10 || response.length > TPM_BUFSIZE) response = failed(`a response of ${response.length} bytes`);
    if (this.closed) return;
    if (gen !== this.generation) {
      this.onDropped(`response to 0x${commandCode(command).toString(16)} dropped: the kernel sent a newer command`);
      return;
    }
    try {
      this.addon.write(this.fd, response);
    } catch (e) {
      // EIO: the kernel no longer waits for this response (it timed out).
      if (errnoOf(e) === 'EPIPE') return this.hangUp();
      this.onDropped(`write to the proxy: ${(e as Error).message}`);
    }
  }

  private hangUp(): void {
    if (this.watch) this.addon.unwatch(this.watch);
    this.watch = undefined;
    this.end();
  }

  /** Closes the proxy fd: the kernel removes /dev/tpmN and /dev/tpmrmN. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.hangUp();
    this.addon.close(this.fd);
  }
}

function createError(control: string, e: unknown): VtpmProxyError {
  const code = errnoOf(e);
  const detail = e instanceof Error ? e.message : String(e);
  switch (code) {
    case 'ENOENT':
      return new VtpmProxyError(`no ${control}: the kernel's vTPM proxy is not loaded (modprobe tpm_vtpm_proxy)`, { cause: e });
    case 'EACCES':
    case 'EPERM':
      return new VtpmProxyError(`permission denied on ${control}: creating a TPM device needs root (CAP_SYS_ADMIN)`, { cause: e });
    case 'ENOTTY':
    case 'EINVAL':
      return new VtpmProxyError(`${control} is not the vTPM proxy's control device (${detail})`, { cause: e });
    default:
      return new VtpmProxyError(`cannot create a vTPM device through ${control}: ${detail}`, { cause: e });
  }
}
