/**
 * Where the vTPM daemon sends the commands of its device: a FrameChannel answers one whole TPM
 * command frame with one whole response frame, one at a time. Implemented here: pass-through to
 * a TPM the library can open (the raw chip /dev/tpm0, or swtpm for development). The
 * service's raw channel (the firewall) is the other implementation, for apps in a guest.
 */
import { constants, promises as fsp } from 'node:fs';
import { checkCommand, openTransport, type Transport } from '../tpm/transport/index.js';
import { TPM_RC } from '../tpm/rc.js';
import { responseCode, TPM_BUFSIZE } from './vtpm-proxy.js';

export interface FrameChannel {
  transact(frame: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
  /** Where the frames go, for messages: `device:/dev/tpm0`, … */
  readonly description: string;
}

/** The channel cannot be used at all (checked before the device is made). */
export class ChannelUnreachableError extends Error {
  override readonly name = 'ChannelUnreachableError';
}


/**
 * Pass-through to `spec` (a device path, `device:PATH`, or `swtpm:unix:PATH`/`swtpm:tcp:…`): the
 * TPM the frames go to unchanged. A device path is checked now (exists, a character device,
 * can be opened), so that a wrong path fails before a device is made for it.
 */
export async function openPassThrough(spec: string): Promise<FrameChannel> {
  let transport: Transport;
  try {
    transport = openTransport(spec, { maxFrameSize: TPM_BUFSIZE });
  } catch (e) {
    throw new ChannelUnreachableError(`bad --tpm ${spec}: ${(e as Error).message}`);
  }
  if (!spec.startsWith('swtpm:')) {
    const path = spec.startsWith('device:') ? spec.slice(7) : spec;
    try {
      const st = await fsp.stat(path);
      if (!st.isCharacterDevice()) throw new ChannelUnreachableError(`${path} is not a TPM device (not a character device)`);
      // Opened once now: /dev/tpm0 takes one user at a time (EBUSY), and root may lack access.
      await (await fsp.open(path, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOCTTY)).close();
    } catch (e) {
      await transport.close();
      if (e instanceof ChannelUnreachableError) throw e;
      const code = (e as { code?: string }).code;
      throw new ChannelUnreachableError(
        code === 'ENOENT'
          ? `no TPM device at ${path}`
          : code === 'EACCES' || code === 'EPERM'
            ? `permission denied on ${path} (needs root or the tss group)`
            : code === 'EBUSY'
              ? `${path} is busy: another process has it open (it takes one user at a time)`
              : `cannot use ${path}: ${(e as Error).message}`,
      );
    }
  }
  return {
    description: transport.description,
    async transact(frame) {
      try {
        checkCommand(frame, TPM_BUFSIZE);
      } catch {
        return responseCode(TPM_RC.COMMAND_SIZE); // as a TPM answers a frame whose size field lies
      }
      return transport.send(frame);
    },
    close: () => transport.close(),
  };
}
