/**
 * eve_tools_tpm2_tcti: the helper of tpm2-tss's `cmd` TCTI
 * (`TPM2TOOLS_TCTI="cmd:eve_tools_tpm2_tcti"`). tpm2-tss spawns it once per TCTI context and
 * writes command frames to its stdin, reading each response from its stdout. It opens the
 * service's raw channel (docs/API.md "Raw TPM channel") with the tools' usual address and secret
 * and carries the bytes both ways; the service reads frames by their headers. stdout carries
 * frames only: every message goes to stderr. It ends when stdin closes or the service closes.
 */
import type { Duplex } from 'node:stream';
import { RawChannelError, dialService, upgradeRaw } from '../../service/client/raw-client.js';
import { CliError, EXIT } from '../errors.js';
import type { ToolContext, ToolDef } from '../run.js';

/** Carries stdin → service and service → stdout until either side ends. */
function carry(s: Duplex, rest: Buffer, ctx: ToolContext): Promise<void> {
  const { stdin, stdout } = ctx.io;
  return new Promise((resolve) => {
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      stdin.unpipe(s);
      (stdin as { destroy?: () => void }).destroy?.();
      s.destroy();
      resolve();
    };
    if (rest.length > 0) stdout.write(rest);
    s.on('data', (chunk: Buffer) => void stdout.write(chunk));
    s.once('end', finish);
    s.once('close', finish);
    s.on('error', (e: Error) => {
      ctx.warn(`raw channel: ${e.message}`);
      finish();
    });
    // stdin closed: the TCTI context is finalized; let the service answer what is in flight.
    stdin.once('end', () => s.end());
    stdin.pipe(s, { end: false });
    s.resume();
  });
}

export const tcti: ToolDef<Record<string, never>> = {
  name: 'eve_tools_tpm2_tcti',
  summary: "Carry TPM command frames between tpm2-tss's cmd TCTI (stdin/stdout) and the service's raw channel.",
  configure(cmd) {
    cmd.addHelpText(
      'after',
      `
Use with tpm2-tss's cmd TCTI (libtss2-tcti-cmd0):
  TPM2TOOLS_TCTI="cmd:eve_tools_tpm2_tcti" tpm2_getrandom --hex 8
Frames are read on stdin and answers written on stdout; messages go to stderr only.`,
    );
  },
  async run(opts, ctx) {
    const settings = ctx.settings();
    let socket: Duplex | undefined;
    try {
      socket = await dialService(settings.address);
      socket.on('error', () => {});
      const rest = await upgradeRaw(socket, settings.secret);
      await carry(socket, rest, ctx);
    } catch (e) {
      if (!(e instanceof RawChannelError)) throw e;
      const status = e.status;
      const code = e.unreachable ? EXIT.UNREACHABLE : status === 401 || status === 403 ? EXIT.AUTH : status === 503 || status === 429 ? EXIT.BUSY : EXIT.GENERAL;
      throw new CliError(e.message, code);
    } finally {
      socket?.destroy();
    }
    void opts;
  },
};
