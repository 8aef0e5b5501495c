/** The real client for main(); tests of the tools pass a fake instead. */
import { ServiceClient } from '../service/client/client.js';
import type { ClientFactory } from './service.js';

export const createServiceClient: ClientFactory = (opts) => new ServiceClient(opts);
