// Request ids come from a pooled random buffer: they must stay 16 hex digits and distinct
// across pool refills (the pool holds 128 ids).
import { describe, expect, it } from 'vitest';
import type { Logger } from 'pino';
import { RequestLog } from '../../src/service/http/request-log.js';
import type { Peer } from '../../src/service/tenants/auth.js';

describe('request ids', () => {
  it('are 16 hex digits and distinct over several pool refills', () => {
    const peer: Peer = { listener: 'unix' };
    const ids = Array.from({ length: 1000 }, () => new RequestLog({} as Logger, peer, false).requestId);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
