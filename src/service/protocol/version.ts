import pkg from '../../../package.json' with { type: 'json' };

/** The package version, reported by /v1/health. */
export const VERSION: string = (pkg as { version: string }).version;
