/**
 * readWholeBody on a real HTTP server over a unix socket, fed by raw sockets: a body that came
 * with its headers (taken at once, without waiting) keeps the same limits, budget and abort
 * rules as one that arrives in pieces after them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ByteBudget, readWholeBody } from '../../src/service/http/body.js';
import { ServiceError } from '../../src/service/protocol/errors.js';

type Outcome = { bytes: string; used: number } | { error: unknown; used: number };

interface Case {
  maxBytes: number;
  budget: ByteBudget;
  signal: AbortSignal;
  /** Called when the handler starts, before the body is read. */
  entered?: () => void;
  done: (o: Outcome) => void;
}

/** How much of the budget is in use (what one `take` of everything left cannot get). */
const used = (b: ByteBudget): number => {
  let free = 0;
  while (free < b.limit && b.take(1)) free++;
  b.give(free);
  return b.limit - free;
};

describe('readWholeBody', () => {
  let dir: string;
  let server: Server;
  let current: Case | undefined;
  const sock = (): string => join(dir, 's.sock');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'body-'));
    server = createServer((req: IncomingMessage, res) => {
      const c = current!;
      c.entered?.();
      readWholeBody(req, { maxBytes: c.maxBytes, idleMs: 5000, minBytesPerSec: 0, signal: c.signal, budget: c.budget }).then(
        ({ bytes, release }) => {
          const u = used(c.budget);
          release();
          c.done({ bytes: Buffer.from(bytes).toString(), used: u });
          res.end('ok');
        },
        (error: unknown) => {
          c.done({ error, used: used(c.budget) });
          res.destroy();
        },
      );
    });
    await new Promise<void>((r) => server.listen(sock(), r));
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  /** Sends `first` in one write, then each of `later` once the handler has started. */
  const send = (c: Omit<Case, 'done' | 'entered'>, first: string, later: string[] = []): Promise<Outcome> =>
    new Promise((resolve) => {
      const s = connect(sock());
      s.on('error', () => {});
      current = {
        ...c,
        entered: () => later.forEach((p) => s.write(p)),
        done: (o) => {
          s.destroy();
          resolve(o);
        },
      };
      s.write(first);
    });
  const head = (extra: string): string => `POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${extra}\r\n`;

  it('reads a body that came in the same write as its headers, charging the budget until released', async () => {
    const budget = new ByteBudget(1000);
    const o = await send({ maxBytes: 100, budget, signal: new AbortController().signal }, head('Content-Length: 11\r\n') + '{"a":"bcd"}');
    expect(o).toEqual({ bytes: '{"a":"bcd"}', used: 11 });
    expect(used(budget)).toBe(0);
  });

  it('reads a body that arrives in pieces after its headers', async () => {
    const budget = new ByteBudget(1000);
    const o = await send({ maxBytes: 100, budget, signal: new AbortController().signal }, head('Content-Length: 11\r\n'), ['{"a":', '"bcd"}']);
    expect(o).toEqual({ bytes: '{"a":"bcd"}', used: 11 });
  });

  it('reads an empty body that came whole', async () => {
    const o = await send({ maxBytes: 100, budget: new ByteBudget(10), signal: new AbortController().signal }, head('Content-Length: 0\r\n'));
    expect(o).toEqual({ bytes: '', used: 0 });
  });

  it('refuses a chunked body that came whole but is over the limit (413), its budget returned', async () => {
    const budget = new ByteBudget(1000);
    const body = `14\r\n${'x'.repeat(20)}\r\n0\r\n\r\n`;
    const o = await send({ maxBytes: 10, budget, signal: new AbortController().signal }, head('Transfer-Encoding: chunked\r\n') + body);
    expect('error' in o && o.error instanceof ServiceError && o.error.status).toBe(413);
    expect(o.used).toBe(0);
  });

  it('answers 503 BUSY when the shared budget cannot take a body that came whole, its budget returned', async () => {
    const budget = new ByteBudget(5);
    const o = await send({ maxBytes: 100, budget, signal: new AbortController().signal }, head('Content-Length: 11\r\n') + '{"a":"bcd"}');
    expect('error' in o && o.error instanceof ServiceError && [o.error.status, o.error.code]).toEqual([503, 'BUSY']);
    expect(o.used).toBe(0);
  });

  it("ends with the request's abort reason even when the body is already whole", async () => {
    const ctl = new AbortController();
    const reason = new Error('deadline');
    ctl.abort(reason);
    const o = await send({ maxBytes: 100, budget: new ByteBudget(100), signal: ctl.signal }, head('Content-Length: 11\r\n') + '{"a":"bcd"}');
    expect('error' in o && o.error).toBe(reason);
    expect(o.used).toBe(0);
  });
});
