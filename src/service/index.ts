/**
 * The host microservice, for embedding and tests. The container tools import only
 * `./client/client.js` and `./protocol/` (self-contained, bundled into each tool).
 */
export { startService, type RunningService, type ServiceDeps } from './service.js';
export { resolveConfig, readConfigFile, DEFAULT_CONFIG, ConfigError, type ServiceConfig } from './config.js';
export { ServiceClient, handleText, INLINE_MAX, type ClientOptions, type Health, type KeyInfo, type KeySummary, type PublicKey, type SignOptions, type SignResult } from './client/client.js';
export { ServiceError, ServiceUnreachableError, type ErrorCode, type ServiceErrorCode, type ClientErrorCode } from './protocol/errors.js';
export { ROUTES, type Contract, type Op } from './protocol/routes.js';
export { addTenant, listTenants, removeTenant } from './admin/admin.js';
export { parseAddress, formatAddress, type Address } from './protocol/address.js';
