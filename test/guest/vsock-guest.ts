/**
 * Runs INSIDE the qemu guest (bundled to one .cjs by vsock.test.ts): the vsock adapter over
 * the kernel's loopback transport. Server and clients are in this process; clients connect to
 * CID 1 (VMADDR_CID_LOCAL) only — never CID 2 or anything else.
 *
 * Prints `RESULT <name> PASS|FAIL <detail>` per check and `SUMMARY <n> passed, <m> failed`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import { connectVsock, listenVsock, listenVsockFd, loadVsockAddon, type VsockPeer } from '../../src/service/vsock/index.js';
import { result, log, sleep, assert, check, finish } from './report.js';

const CID = 1; // loopback only
const HTTP_PORT = 7700;
const ECHO_PORT = 7701;
const CLOSED_PORT = 7702;
const NO_LISTENER_PORT = 7799;
const INHERITED_PORT = 7704;
const MiB = 1024 * 1024;

const sha = (b: Buffer | Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Deterministic bytes for /blob: the same on both sides without sending them twice. */
function blob(n: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    if (i + 4 <= n) out.writeUInt32LE(x, i);
    else for (let j = 0; i + j < n; j++) out[i + j] = (x >>> (8 * j)) & 0xff;
  }
  return out;
}

function socketFdCount(): number {
  let n = 0;
  for (const f of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${f}`).startsWith('socket:')) n++;
    } catch {
      // gone
    }
  }
  return n;
}

// ---- the server: node:http over the adapter ----
const peers: VsockPeer[] = [];
const refusals: string[] = [];
/** Progress of the /blob response a stalled client asked for. */
const stalled = { written: 0, done: false };

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://vsock');
  if (url.pathname === '/ping') {
    res.setHeader('x-peer', `${req.socket.remoteAddress}:${req.socket.remotePort}`);
    res.end('pong');
  } else if (url.pathname === '/sha' && req.method === 'POST') {
    const h = createHash('sha256');
    let n = 0;
    req.on('data', (c: Buffer) => {
      h.update(c);
      n += c.length;
    });
    req.on('end', () => res.end(JSON.stringify({ sha: h.digest('hex'), n })));
  } else if (url.pathname === '/echo' && req.method === 'POST') {
    req.pipe(res);
  } else if (url.pathname === '/blob') {
    const n = Number(url.searchParams.get('n'));
    const data = blob(n, Number(url.searchParams.get('seed')));
    const track = url.searchParams.get('track') === '1';
    res.setHeader('content-length', n);
    let off = 0;
    // Honour back-pressure: write until write() says stop, continue on 'drain'.
    const pump = (): void => {
      while (off < n) {
        const chunk = data.subarray(off, Math.min(off + 64 * 1024, n));
        off += chunk.length;
        if (track) stalled.written = off;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      if (track) stalled.done = true;
      res.end();
    };
    pump();
  } else {
    res.statusCode = 404;
    res.end();
  }
});
server.keepAliveTimeout = 1000;

// ---- client helpers ----
interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  ms: number;
}

async function request(method: string, path: string, body?: Buffer): Promise<Reply> {
  const start = Date.now();
  const sock = await connectVsock(CID, HTTP_PORT, { timeoutMs: 10_000 });
  return new Promise<Reply>((resolve, reject) => {
    const req = http.request(
      { method, path, headers: { connection: 'close', ...(body ? { 'content-length': body.length } : {}) }, createConnection: () => sock as never },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts), ms: Date.now() - start }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (body) {
      // stream it in pieces so request-side back-pressure is exercised too
      let off = 0;
      const pump = (): void => {
        while (off < body.length) {
          const c = body.subarray(off, off + 256 * 1024);
          off += c.length;
          if (!req.write(c)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    } else req.end();
  });
}



async function main(): Promise<void> {
  const baselineFds = socketFdCount();
  log(`socket fds before: ${baselineFds}`);

  let listener: Awaited<ReturnType<typeof listenVsock>> | undefined;
  await check('listen', async () => {
    listener = await listenVsock(
      HTTP_PORT,
      (duplex, peer) => {
        peers.push(peer);
        server.emit('connection', duplex);
      },
      { onError: (e) => refusals.push(e.message) },
    );
    return `listening on vsock port ${HTTP_PORT}`;
  });
  if (!listener) return;

  // raw echo until EOF on a second port: half-close semantics without http
  await listenVsock(ECHO_PORT, (duplex) => duplex.pipe(duplex));

  await check('peer-cid', async () => {
    const r = await request('GET', '/ping');
    assert(r.status === 200 && r.body.toString() === 'pong', `bad reply ${r.status} ${r.body.toString()}`);
    const p = peers[peers.length - 1];
    assert(p && p.cid === 1, `peer CID ${JSON.stringify(p)}, expected 1`);
    assert(p.port > 0, `peer port ${p.port}`);
    assert(r.headers['x-peer'] === `vsock:1:${p.port}`, `server saw remoteAddress:remotePort ${String(r.headers['x-peer'])}`);
    return `onConnection peer ${JSON.stringify(p)}, req.socket.remoteAddress ${String(r.headers['x-peer'])}`;
  });

  await check('http', async () => {
    const r = await request('GET', '/ping');
    assert(r.status === 200 && r.body.toString() === 'pong', `bad reply ${r.status}`);
    const r404 = await request('GET', '/nope');
    assert(r404.status === 404, `expected 404, got ${r404.status}`);
    return `GET /ping 200 in ${r.ms} ms, GET /nope 404`;
  });

  await check('concurrent-peers', async () => {
    const before = peers.length;
    const rs = await Promise.all(Array.from({ length: 8 }, () => request('GET', '/ping')));
    assert(rs.every((r) => r.status === 200), 'a request failed');
    const got = peers.slice(before);
    const ports = new Set(got.map((p) => p.port));
    assert(got.length === 8 && got.every((p) => p.cid === 1), `peers ${JSON.stringify(got)}`);
    assert(ports.size === 8, `ports not distinct: ${[...ports].join(',')}`);
    const seen = new Set(rs.map((r) => String(r.headers['x-peer'])));
    assert(seen.size === 8, 'replies do not name 8 distinct peers');
    return `8 parallel connections, all CID 1, 8 distinct ports, max ${Math.max(...rs.map((r) => r.ms))} ms`;
  });

  await check('upload-16MiB', async () => {
    const body = randomBytes(16 * MiB);
    const r = await request('POST', '/sha', body);
    const j = JSON.parse(r.body.toString()) as { sha: string; n: number };
    assert(j.n === body.length && j.sha === sha(body), `server got ${j.n} bytes sha ${j.sha}`);
    return `${j.n} bytes intact, ${((j.n / MiB / r.ms) * 1000).toFixed(1)} MiB/s`;
  });

  await check('download-16MiB', async () => {
    const n = 16 * MiB;
    const r = await request('GET', `/blob?n=${n}&seed=7`);
    assert(r.body.length === n, `got ${r.body.length} bytes`);
    assert(sha(r.body) === sha(blob(n, 7)), 'content differs');
    return `${n} bytes intact, ${((n / MiB / r.ms) * 1000).toFixed(1)} MiB/s`;
  });

  await check('echo-both-ways-4MiB', async () => {
    const body = randomBytes(4 * MiB + 123);
    const r = await request('POST', '/echo', body);
    assert(r.body.equals(body), `echo differs: ${r.body.length} bytes`);
    return `${body.length} bytes up and back, identical`;
  });

  await check('raw-eof', async () => {
    const sock = await connectVsock(CID, ECHO_PORT);
    const body = randomBytes(MiB + 7);
    const parts: Buffer[] = [];
    const done = new Promise<void>((resolve, reject) => {
      sock.on('data', (c: Buffer) => parts.push(c));
      sock.on('end', resolve);
      sock.on('error', reject);
    });
    sock.end(body); // half-close: the echo side sees EOF, ends too, we see EOF
    await done;
    const got = Buffer.concat(parts);
    assert(got.equals(body), `echo returned ${got.length} bytes`);
    await new Promise<void>((r) => (sock.destroyed ? r() : sock.once('close', () => r())));
    return `${body.length} bytes echoed, EOF seen after our shutdown(SHUT_WR)`;
  });

  await check('stalled-peer', async () => {
    // A client asks for 16 MiB and never reads. The server must stop writing (back-pressure)
    // and keep answering everyone else promptly; the loop must keep ticking.
    const n = 16 * MiB;
    const stuck = await connectVsock(CID, HTTP_PORT);
    stuck.pause();
    stuck.write(`GET /blob?n=${n}&seed=9&track=1 HTTP/1.1\r\nhost: vsock\r\nconnection: close\r\n\r\n`);
    // wait until the server's writes stop making progress
    let last = -1;
    for (let i = 0; i < 100 && (stalled.written === 0 || stalled.written !== last); i++) {
      last = stalled.written;
      await sleep(300);
    }
    assert(!stalled.done, 'the whole response fit in buffers: nothing stalled');
    const heldAt = stalled.written;
    let maxLag = 0;
    let prev = Date.now();
    const ticker = setInterval(() => {
      const now = Date.now();
      maxLag = Math.max(maxLag, now - prev - 20);
      prev = now;
    }, 20);
    const lat: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await request('GET', '/ping');
      assert(r.status === 200, `ping ${i} got ${r.status}`);
      lat.push(r.ms);
    }
    await sleep(200);
    clearInterval(ticker);
    assert(stalled.written === heldAt, `server kept writing while the peer was stalled (${heldAt} -> ${stalled.written})`);
    assert(Math.max(...lat) < 3000, `ping latencies ${lat.join(',')} ms while stalled`);
    assert(maxLag < 1000, `event loop lag ${maxLag} ms`);
    // now read it all: the stalled response must complete intact
    const parts: Buffer[] = [];
    const done = new Promise<void>((resolve, reject) => {
      stuck.on('data', (c: Buffer) => parts.push(c));
      stuck.on('end', resolve);
      stuck.on('error', reject);
    });
    stuck.resume();
    await done;
    const raw = Buffer.concat(parts);
    const sep = raw.indexOf('\r\n\r\n');
    const payload = raw.subarray(sep + 4);
    assert(payload.length === n && sha(payload) === sha(blob(n, 9)), `resumed body ${payload.length} bytes, differs`);
    return (
      `server stopped at ${(heldAt / MiB).toFixed(2)} of 16 MiB while the peer did not read; ` +
      `6 other requests answered in ${lat.join('/')} ms (max ${Math.max(...lat)}); ` +
      `max event-loop lag ${maxLag} ms; after resuming, all 16 MiB arrived intact`
    );
  });

  await check('refused', async () => {
    const start = Date.now();
    try {
      await connectVsock(CID, NO_LISTENER_PORT, { timeoutMs: 10_000 });
    } catch (e) {
      const err = e as Error & { code?: string };
      assert(err.code === 'ECONNREFUSED', `code ${String(err.code)}: ${err.message}`);
      assert(/refused/.test(err.message) && err.message.includes(`vsock:1:${NO_LISTENER_PORT}`), `message: ${err.message}`);
      return `rejected after ${Date.now() - start} ms: ${err.message}`;
    }
    throw new Error('connect to a port without listener succeeded');
  });

  await check('no-fd-leak', async () => {
    await sleep(1500); // keep-alive timers, closes in flight
    const now = socketFdCount();
    // the two listeners' sockets stay open (never closed in this script)
    assert(now === baselineFds + 2, `socket fds: ${baselineFds} before, ${now} now (expected ${baselineFds + 2}: the two listeners)`);
    assert(refusals.length === 0, `unexpected refusals: ${refusals.join('; ')}`);
    return `socket fds ${baselineFds} -> ${now} (+2 listeners)`;
  });

  await check('listener-close', async () => {
    let served = 0;
    const l = await listenVsock(CLOSED_PORT, (d) => {
      served++;
      d.destroy();
    });
    const before = socketFdCount();
    await l.close();
    assert(socketFdCount() === before - 1, 'close() did not close the listening socket');
    try {
      await connectVsock(CID, CLOSED_PORT, { timeoutMs: 10_000 });
    } catch (e) {
      const err = e as Error & { code?: string };
      assert(err.code === 'ECONNREFUSED', `code ${String(err.code)}: ${err.message}`);
      assert(served === 0, 'a connection reached onConnection after close()');
      const again = await listenVsock(CLOSED_PORT, () => {});
      await again.close();
      return `after close(): the port is free (connect refused: ${err.message}; listening again works)`;
    }
    throw new Error('connect to a closed listener succeeded');
  });

  await check('inherited-fd', async () => {
    // As systemd would pass it: a listening AF_VSOCK socket made elsewhere, served by fd number.
    const addon = loadVsockAddon();
    const fd = addon.socket();
    addon.bind(fd, addon.VMADDR_CID_ANY, INHERITED_PORT);
    addon.listen(fd, 16);
    const seen: VsockPeer[] = [];
    const l = await listenVsockFd(fd, (d, peer) => {
      seen.push(peer);
      d.end('hi');
    });
    assert(l.port === INHERITED_PORT, `listener port ${l.port}`);
    const sock = await connectVsock(CID, INHERITED_PORT);
    const got = await new Promise<string>((resolve, reject) => {
      let text = '';
      sock.setEncoding('utf8').on('data', (c: string) => (text += c));
      sock.on('end', () => resolve(text));
      sock.on('error', reject);
    });
    sock.destroy();
    await l.close();
    assert(got === 'hi' && seen.length === 1 && seen[0]!.cid === 1, `got ${JSON.stringify(got)}, peers ${JSON.stringify(seen)}`);
    // not a vsock socket: refused with the reason
    let refusal = '';
    await listenVsockFd(0, () => {}).catch((e: Error) => (refusal = e.message));
    assert(/^fd 0 is not a vsock socket: getsockname: /.test(refusal), `fd 0: ${refusal || 'accepted'}`);
    return `fd ${fd} listening on port ${INHERITED_PORT} served by number: peer ${JSON.stringify(seen[0])}; fd 0 refused (${refusal})`;
  });

  await check('port-in-use', async () => {
    try {
      await listenVsock(HTTP_PORT, () => {});
    } catch (e) {
      const m = (e as Error).message;
      assert(/EADDRINUSE/.test(m) && m.includes(String(HTTP_PORT)), m);
      return m;
    }
    throw new Error('a second listener on the same port succeeded');
  });
}

main()
  .catch((e: unknown) => result('main', false, (e as Error).stack ?? String(e)))
  .finally(() => {
    finish();
  });

