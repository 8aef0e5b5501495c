/**
 * GET /v1/usage (issue 14). PLACEHOLDER: being written.
 */
import { unsupported } from '../protocol/errors.js';
import type { ApiDeps, Handlers } from './api.js';

export function usageHandlers(_d: ApiDeps): Pick<Handlers, 'usage'> {
  return {
    usage: () => {
      throw unsupported('resource usage is not available in this build');
    },
  };
}
