/**
 * GET /v1/tpm as a plain request (routes.ts `raw-tpm`): the raw channel opens with the HTTP
 * upgrade, which raw/channel.ts takes before routing; a request without it gets a 400 that says how.
 */
import { badRequest, unsupported } from '../protocol/errors.js';
import { RAW_PROTOCOL } from '../protocol/raw.js';
import type { Handlers } from './handler.js';

/** `enabled`: whether this service offers the route (routes.ts `offered`: config rawChannel). */
export function rawHandlers(enabled: boolean): Pick<Handlers, 'raw-tpm'> {
  return {
    'raw-tpm': () => {
      // With the channel off the upgrade is not taken, so even a proper upgrade request lands here.
      if (!enabled) throw unsupported('the raw TPM channel is turned off on this service (config rawChannel: false)');
      throw badRequest(`GET /v1/tpm opens the raw TPM channel: send Connection: Upgrade and Upgrade: ${RAW_PROTOCOL}`);
    },
  };
}
