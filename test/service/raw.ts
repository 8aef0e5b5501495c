/** Raw HTTP/1.1 over a socket, for requests node:http's client would refuse to send. */
import { createConnection, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The whole answer (status line, headers, body). */
  text: string;
}

export function connectTo(address: string): Socket {
  if (address.startsWith('unix:')) return createConnection({ path: address.slice(5) });
  const m = /^tcp:([^:]+):(\d+)$/.exec(address)!;
  return createConnection({ host: m[1]!, port: Number(m[2]) });
}

export function parseResponse(text: string): RawResponse {
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const [statusLine, ...lines] = head.split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status, headers, body: end < 0 ? '' : text.slice(end + 4), text };
}

/** Sends `request` (bytes as given) and reads until the server closes or `timeoutMs`. */
export function rawRequest(address: string, request: string | Uint8Array, timeoutMs = 10_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const s = connectTo(address);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no complete answer within ${timeoutMs} ms: ${Buffer.concat(chunks).toString('latin1').slice(0, 200)}`));
    }, timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => {}); // a reset after the answer is fine
    s.on('close', () => {
      clearTimeout(timer);
      resolve(parseResponse(Buffer.concat(chunks).toString('latin1')));
    });
    s.write(request);
  });
}

/** A well-formed request with Connection: close. */
export function httpText(method: string, path: string, headers: Record<string, string> = {}, body = ''): string {
  const h = { Host: 'x', Connection: 'close', ...(body ? { 'Content-Length': String(Buffer.byteLength(body)) } : {}), ...headers };
  return `${method} ${path} HTTP/1.1\r\n${Object.entries(h)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n')}\r\n\r\n${body}`;
}
