/**
 * A command-level multiplexer in front of one swtpm: any number of clients connect to a unix
 * socket; each complete command frame is passed to the one upstream connection in arrival
 * order and its response sent back. swtpm itself serves one connection at a time; through
 * this, the service and stock tpm2-tools (swtpm TCTI, `path=` mode) can take turns on the
 * same TPM without either closing its connection. Optionally records the command codes that
 * pass (to see which TPM commands an operation costs).
 *
 * tpm2-tss's swtpm TCTI also opens `<path>.ctrl` for CMD_SET_LOCALITY; those connections are
 * piped to swtpm's real control socket.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { rm } from 'node:fs/promises';
import { SwtpmSocketTransport, type Transport } from '../../src/tpm/index.js';
import { onCleanup } from './lifecycle.js';

export class TpmMux {
  private readonly upstream: Transport;
  private server: Server | undefined;
  private ctrl: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** When set, every command code passing through is appended. */
  record: number[] | undefined;
  commands = 0;

  constructor(
    upstreamPath: string,
    readonly path: string,
    private readonly upstreamCtrlPath?: string,
  ) {
    this.upstream = new SwtpmSocketTransport({ path: upstreamPath });
  }

  async listen(): Promise<void> {
    await rm(this.path, { force: true });
    this.server = createServer((s) => this.serve(s));
    await new Promise<void>((res, rej) => {
      this.server!.once('error', rej);
      this.server!.listen(this.path, () => res());
    });
    if (this.upstreamCtrlPath) {
      const ctrlPath = `${this.path}.ctrl`;
      await rm(ctrlPath, { force: true });
      this.ctrl = createServer((down) => {
        const up = createConnection({ path: this.upstreamCtrlPath! });
        this.sockets.add(down).add(up);
        down.pipe(up).pipe(down);
        const end = (): void => {
          down.destroy();
          up.destroy();
          this.sockets.delete(down);
          this.sockets.delete(up);
        };
        down.once('close', end).once('error', end);
        up.once('close', end).once('error', end);
      });
      await new Promise<void>((res, rej) => {
        this.ctrl!.once('error', rej);
        this.ctrl!.listen(ctrlPath, () => res());
      });
    }
    onCleanup(() => this.close());
  }

  private serve(s: Socket): void {
    this.sockets.add(s);
    let pending: Buffer = Buffer.alloc(0);
    let chain: Promise<void> = Promise.resolve();
    s.on('data', (d: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, d]) : d;
      while (pending.length >= 6) {
        const size = pending.readUInt32BE(2);
        if (size < 10 || size > 65536) {
          s.destroy();
          return;
        }
        if (pending.length < size) break;
        const frame = new Uint8Array(pending.subarray(0, size));
        pending = pending.subarray(size);
        this.commands++;
        this.record?.push(Buffer.from(frame.buffer, frame.byteOffset).readUInt32BE(6));
        chain = chain.then(async () => {
          try {
            const r = await this.upstream.send(frame);
            if (!s.destroyed) s.write(r);
          } catch {
            s.destroy();
          }
        });
      }
    });
    s.once('close', () => this.sockets.delete(s));
    s.once('error', () => s.destroy());
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all(
      [this.server, this.ctrl].filter((x): x is Server => x !== undefined).map((srv) => new Promise<void>((r) => srv.close(() => r()))),
    );
    this.server = undefined;
    this.ctrl = undefined;
    await this.upstream.close();
  }
}
