/**
 * The bodies of /v1 as they are on the wire (docs/API.md): what the server sends and the client
 * reads. Bytes are base64 text here; the client decodes them for its callers. No dependencies:
 * the client is bundled into the container tools.
 */
import type { HashName, KeyType, PublicFormat, SignFormat } from './vocabulary.js';

/** A key type or hash as a name of the vocabulary, or its TPM_ALG_ID (number, "11" or "0xB"). */
export type AlgSpelling<N extends string> = N | number | (string & {});

export interface Health {
  status: 'ok' | 'degraded';
  tpm: { reachable: boolean };
  queue: { depth: number; capacity: number };
  version: string;
}

export interface KeySummary {
  handle: string;
  type: KeyType;
  hashAlg: HashName;
  /** The key's TPM Name, hex. */
  name: string;
  createdAt: string;
}

export interface KeyInfo extends KeySummary {
  pem: string;
}

export interface KeyList {
  keys: KeySummary[];
}

export interface CreateKeyRequest {
  type: AlgSpelling<KeyType>;
  hashAlg?: AlgSpelling<HashName>;
}

export interface GetPublicQuery {
  format?: PublicFormat | (string & {});
}

/** pem: the PEM text; der/tss: base64 of SubjectPublicKeyInfo / the marshalled TPM2B_PUBLIC. */
export type PublicKeyAnswer = { handle: string; format: 'pem'; pem: string } | { handle: string; format: 'der' | 'tss'; data: string };

/** Signing with a JSON body: the message inline, base64. */
export interface SignRequest {
  message: string;
  hashAlg?: AlgSpelling<HashName>;
  format?: SignFormat | (string & {});
}

/** Signing a streamed application/octet-stream body: the parameters go in the query. */
export interface SignQuery {
  hashAlg?: AlgSpelling<HashName>;
  format?: SignFormat | (string & {});
}

/** What the calling tenant may do (GET /v1/capabilities). */
export interface Capabilities {
  /** The caller's tenant id. */
  tenant: string;
  /** The operations of the routes table the caller may call. */
  operations: Array<{ op: string; method: string; path: string }>;
  keyTypes: KeyType[];
  hashAlgs: HashName[];
  signFormats: SignFormat[];
  publicFormats: PublicFormat[];
  /** Keys: the quota, how many the caller has (being created or deleted included), how many more it may make. */
  quota: { keys: { max: number; used: number; left: number } };
}

export interface SignAnswer {
  handle: string;
  /** rsassa, rsapss, ecdsa, ecdaa, sm2, ecschnorr, or 0x… for another TPM_ALG_ID. */
  sigAlg: string;
  hashAlg: HashName;
  format: SignFormat;
  /** base64 */
  signature: string;
  /** hex of the digest the TPM signed */
  digest: string;
  messageLength: number;
}
