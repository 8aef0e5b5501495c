/**
 * The FrameChannel to the host service's raw channel (docs/API.md "Raw TPM channel"): every
 * command goes through the service's firewall, as the app's own. One connection is one resource
 * manager context on the service's side; when it drops (service restart), the next command opens
 * a new one, and what the old one held is gone (as when a /dev/tpmrm0 fd is closed).
 */
import { RawChannelError, RawClient } from '../service/client/raw-client.js';
import { ChannelUnreachableError, type FrameChannel } from './frame-channel.js';

export async function openRawChannel(address: string, secret: string | undefined): Promise<FrameChannel> {
  const open = async (): Promise<RawClient> => {
    try {
      return await RawClient.open(address, secret);
    } catch (e) {
      throw new ChannelUnreachableError(e instanceof RawChannelError ? e.message : `cannot open the raw channel at ${address}: ${(e as Error).message}`);
    }
  };
  // Opened now: an unreachable service or a refused secret fails before a device is made.
  let client: RawClient | undefined = await open();
  return {
    description: `the service's raw channel at ${address}`,
    async transact(frame) {
      client ??= await open();
      try {
        return await client.transact(frame);
      } catch (e) {
        client.close();
        client = undefined;
        throw e;
      }
    },
    close() {
      client?.close();
      client = undefined;
      return Promise.resolve();
    },
  };
}
