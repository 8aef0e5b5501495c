/**
 * One TPM2_SequenceUpdate frame per sequence, marshalled once and refilled. A long message is
 * hashed in 1024-byte updates by the million, and swtpm hashes one in tens of µs: marshalling
 * each frame anew and decoding each answer in full cost more of our CPU than that. Between two
 * updates of a sequence at one handle only the data changes (the password auth area, the
 * TPM2B's size, the handle stay), so the data is copied into the frame and nothing else is done.
 *
 * The answer stays strictly checked: the exact success frame, byte for byte, is accepted at
 * once; anything else goes to the full decoder, which throws the TPM's error (or accepts
 * another valid encoding of success).
 */
import { marshalCommand, unmarshalResponse } from '../../tpm/command/marshal.js';
import { SequenceUpdate, passwordAuth } from '../../tpm/index.js';

/**
 * SequenceUpdate's success with one password session: header (ST_SESSIONS, 19 bytes,
 * TPM_RC_SUCCESS), parameterSize 0, then the auth response: empty nonce, continueSession
 * (a password session is always "continued"), empty hmac.
 */
const SUCCESS = Buffer.of(0x80, 0x02, 0, 0, 0, 19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0);

export class UpdateFrame {
  /** The whole command; the data is its last `size` bytes. */
  readonly frame: Buffer;
  /** Where the data starts. */
  readonly dataAt: number;

  constructor(
    /** The sequence's handle the frame names. */
    readonly handle: number,
    auth: Uint8Array,
    /** Bytes of data per update: the TPM's input buffer. */
    readonly size: number,
  ) {
    // A copy of our own: the frame is refilled in place and kept.
    this.frame = Buffer.from(marshalCommand(SequenceUpdate, { sequenceHandle: handle, buffer: new Uint8Array(size) }, { sequenceHandle: passwordAuth(auth) }));
    this.dataAt = this.frame.length - size;
  }

  /** Throws unless `response` is SequenceUpdate's success. */
  static check(response: Uint8Array): void {
    if (!SUCCESS.equals(response)) unmarshalResponse(SequenceUpdate, response);
  }
}
