/** A TPM Name given on the command line: nameAlg (2 octets) ‖ a digest of that algorithm's size. */
import { DIGEST_SIZE } from '../../tpm/constants.js';
import { usageError } from '../errors.js';

export function checkName(name: Uint8Array, option: string): Uint8Array {
  if (name.length < 2) throw usageError(`${option}: ${name.length} octets is not a Name (hash algorithm ‖ digest)`);
  const alg = name[0]! * 256 + name[1]!;
  const size = DIGEST_SIZE[alg];
  const algHex = `0x${alg.toString(16).padStart(4, '0')}`;
  if (size === undefined) throw usageError(`${option}: algorithm ${algHex} is not a hash (a key's Name starts with its nameAlg, e.g. 000b for sha256)`);
  if (name.length !== 2 + size) throw usageError(`${option}: ${name.length - 2} digest octets after ${algHex}, expected ${size}`);
  return name;
}
