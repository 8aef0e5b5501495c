/**
 * Reading a small input file whole (a digest, a ciphertext, a peer's public key): a file, or
 * standard input for `-`. Never more than `max` bytes are held: a larger input is refused (exit 6,
 * naming the file), so a wrong file (an ISO image given as a digest) costs no memory.
 */
import { open } from 'node:fs/promises';
import { CliError, EXIT, fileError } from '../errors.js';
import { STDOUT } from '../output.js';

/** `what`: how the file is named in messages ("digest file"). */
export async function readSmallInput(path: string, what: string, max: number, stdin: NodeJS.ReadableStream): Promise<Uint8Array> {
  const name = path === STDOUT ? 'standard input' : path;
  const tooLarge = (): CliError => new CliError(`${what} '${name}' is larger than ${max} bytes: is it the right file?`, EXIT.FILE, 'FILE');
  if (path === STDOUT) {
    const chunks: Buffer[] = [];
    let n = 0;
    try {
      for await (const c of stdin as AsyncIterable<Buffer | string>) {
        const b = typeof c === 'string' ? Buffer.from(c) : c;
        n += b.length;
        if (n > max) throw tooLarge();
        chunks.push(b);
      }
    } catch (e) {
      if (e instanceof CliError) throw e;
      throw fileError(`cannot read ${what}`, name, e);
    }
    return new Uint8Array(Buffer.concat(chunks));
  }
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw fileError(`cannot read ${what}`, path, e);
  }
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw fileError(`cannot read ${what}`, path, Object.assign(new Error('is a directory'), { code: 'EISDIR' }));
    // One byte more than allowed tells a too-large file (FIFOs have no size to trust).
    const buf = Buffer.alloc(max + 1);
    let off = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, off, buf.length - off, null).catch((e: unknown) => {
        throw fileError(`cannot read ${what}`, path, e);
      });
      if (bytesRead === 0) break;
      off += bytesRead;
      if (off > max) throw tooLarge();
    }
    return new Uint8Array(buf.subarray(0, off));
  } finally {
    await fh.close().catch(() => {});
  }
}
