/**
 * TSS.JS (Microsoft's TPM 2.0 TypeScript stack, npm `tss.js`) as the marshalling baseline.
 *
 * Installed in bench/tss/ with --ignore-scripts: its ffi-napi dependency (for Windows TBS
 * only, loaded lazily) does not build on Node 20, and nothing used here needs it.
 *
 * What is measured is TSS.JS's own code wherever it has a path for the job:
 * - command encode: `TpmBase.dispatchCommand` (the frame builder every `tpm.Xxx()` call runs),
 *   with the device replaced by one that only keeps the bytes;
 * - response decode: `TpmBase.processResponse` (what every `tpm.Xxx()` callback runs), plus
 *   `TPMS_AUTH_RESPONSE.fromTpm` for the session area, which processResponse leaves unread
 *   and our decoder checks;
 * - command decode and response encode, which TSS.JS (a client) has no function for, are
 *   composed from its TpmBuffer and its generated structure classes the way dispatchCommand
 *   and processResponse use them.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';

/* eslint-disable @typescript-eslint/no-explicit-any */
export type TssModule = any;

export function loadTssJs(root: string): { tss: TssModule; version: string } {
  const req = createRequire(join(root, 'bench', 'tss', 'package.json'));
  // TpmBuffer uses the deprecated `new Buffer(n)`; its one-time warning is noise here.
  const saved = process.noDeprecation;
  process.noDeprecation = true;
  try {
    const tss = req('tss.js');
    const version = (req('tss.js/package.json') as { version: string }).version;
    return { tss, version };
  } finally {
    process.noDeprecation = saved;
  }
}

/** A TSS.JS `Tpm` whose device keeps the last command frame instead of sending it. */
export class TssHarness {
  readonly tpm: any;
  private captured: Buffer | undefined;

  constructor(readonly tss: TssModule) {
    this.tpm = new tss.Tpm(false);
    (this.tpm as { device: unknown }).device = {
      dispatchCommand: (cmd: Buffer) => {
        this.captured = cmd;
      },
      close: () => {},
    };
  }

  /** A password session exactly as the recorded frames have it: empty nonce and hmac, attributes 0. */
  passwordSession(): any {
    const { Session, TPM_HANDLE, TPM_RH } = this.tss;
    return new Session(new TPM_HANDLE(TPM_RH.RS_PW), null, 0, null);
  }

  /** A TSS.JS Session carrying a decoded TPMS_AUTH_COMMAND (what dispatchCommand marshals). */
  sessionOf(auth: any): any {
    const s = new this.tss.Session();
    s.SessIn = auth;
    return s;
  }

  /** TpmBase.dispatchCommand: header, handles, authorization area, parameters. */
  encodeCommand(cc: number, req: any, session: any | undefined): Buffer {
    if (session) this.tpm.withSession(session);
    this.tpm.dispatchCommand(cc, req, noop);
    const out = this.captured!;
    this.captured = undefined;
    return out;
  }

  /** TpmBase.processResponse, then the authorization area it leaves unread. */
  decodeResponse(frame: Uint8Array, Resp: any, withSessions: boolean, nSessions: number): { resp: any; auths: any[] } {
    const { TpmBuffer, TPM_ST, TPMS_AUTH_RESPONSE } = this.tss;
    const t = this.tpm as { sessTag: number; _lastError: unknown };
    t.sessTag = withSessions ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS;
    t._lastError = null;
    const buf = new TpmBuffer(frame);
    const resp = this.tpm.processResponse(buf, Resp);
    if (!resp || this.tpm.lastError) throw new Error(`TSS.JS could not decode the response: ${String(this.tpm.lastError?.message ?? 'null result')}`);
    const auths: any[] = [];
    for (let i = 0; i < nSessions; i++) auths.push(TPMS_AUTH_RESPONSE.fromTpm(buf));
    if (!buf.isOk() || buf.curPos !== frame.length) throw new Error('TSS.JS response decode did not consume the frame exactly');
    return { resp, auths };
  }

  /** A command frame read with TpmBuffer and the generated request class. */
  decodeCommand(frame: Uint8Array, Req: any): { req: any; handles: any[]; sessions: any[] } {
    const { TpmBuffer, TPM_ST, TPM_HANDLE, TPMS_AUTH_COMMAND } = this.tss;
    const buf = new TpmBuffer(frame);
    const tag = buf.readShort();
    const size = buf.readInt();
    buf.readInt(); // command code
    const req = new Req();
    const handles: any[] = [];
    for (let i = 0; i < req.numHandles(); i++) handles.push(TPM_HANDLE.fromTpm(buf));
    const sessions: any[] = [];
    if (tag === TPM_ST.SESSIONS) {
      const authSize = buf.readInt();
      const end = buf.curPos + authSize;
      while (buf.curPos < end && buf.isOk()) sessions.push(TPMS_AUTH_COMMAND.fromTpm(buf));
    }
    req.initFromTpm(buf);
    if (!buf.isOk() || buf.curPos !== size || size !== frame.length) throw new Error('TSS.JS command decode did not consume the frame exactly');
    return { req, handles, sessions };
  }

  /** A response frame written with TpmBuffer and the generated response class. */
  encodeResponse(resp: any, auths: any[]): Buffer {
    const { TpmBuffer, TPM_ST } = this.tss;
    const buf = new TpmBuffer();
    const withSessions = auths.length > 0;
    buf.writeShort(withSessions ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS);
    buf.writeInt(0);
    buf.writeInt(0);
    if (resp.numHandles() > 0) resp.getHandle().toTpm(buf);
    const psPos = buf.curPos;
    if (withSessions) buf.writeInt(0);
    resp.toTpm(buf);
    if (withSessions) {
      buf.writeNumAtPos(buf.curPos - psPos - 4, psPos);
      for (const a of auths) a.toTpm(buf);
    }
    buf.writeNumAtPos(buf.curPos, 2);
    return buf.trim();
  }
}

function noop(): void {}
