/**
 * The bodies of /v1 as they are on the wire (docs/API.md): what the server sends and the client
 * reads. Bytes are base64 text here; the client decodes them for its callers. No dependencies:
 * the client is bundled into the container tools.
 */
import type { EccCurve, HashName, KeyKind, KeyScheme, KeyType, KeyUsage, PublicFormat, RsaBits, SignFormat } from './vocabulary.js';

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
  /**
   * ak (restricted signing key, genaik) or general (issue 12). Services before issue 12 did not
   * send kind/usage/scheme/bits/curve: a client reads their absence as an AK.
   */
  kind: KeyKind;
  /** An AK always signs. */
  usage: KeyUsage;
  /** The key's fixed scheme (AK: rsassa or ecdsa). */
  scheme: KeyScheme;
  /** RSA keys: the modulus size. */
  bits?: RsaBits;
  /** ECC keys: the curve. */
  curve?: EccCurve;
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

/**
 * POST /v1/keys. Without `kind` (or kind "ak"): an attestation key, as genaik makes. kind
 * "general": a non-restricted key under the app's own parent; usage defaults to sign, scheme to
 * the first of GENERAL_SCHEMES[type][usage], bits to 2048, curve to P-256. usage/scheme/bits/
 * curve with an AK, or a scheme that does not fit type and usage, are a 400.
 */
export interface CreateKeyRequest {
  type: AlgSpelling<KeyType>;
  hashAlg?: AlgSpelling<HashName>;
  kind?: KeyKind | (string & {});
  usage?: KeyUsage | (string & {});
  scheme?: KeyScheme | (string & {});
  bits?: RsaBits | number;
  curve?: EccCurve | (string & {});
}

export interface GetPublicQuery {
  format?: PublicFormat | (string & {});
}

/** pem: the PEM text; der/tss: base64 of SubjectPublicKeyInfo / the marshalled TPM2B_PUBLIC. */
export type PublicKeyAnswer = { handle: string; format: 'pem'; pem: string } | { handle: string; format: 'der' | 'tss'; data: string };

/**
 * Signing with a JSON body: the message inline, base64 — or (general signing keys only, as
 * `tpm2_sign -d`) a digest the caller computed, base64, exactly one of the two. An AK signs
 * only what the TPM hashed: a digest for it is a 422.
 */
export interface SignRequest {
  message?: string;
  digest?: string;
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
  /** The hashes of the vocabulary this TPM implements (TPM_CAP_ALGS); the whole vocabulary while the TPM was not asked. */
  hashAlgs: HashName[];
  /** Where hashAlgs comes from: the TPM, or the vocabulary (the TPM unreachable so far). */
  hashAlgsFrom: 'tpm' | 'vocabulary';
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

/** POST /v1/keys/{handle}/decrypt: RSA-OAEP decryption with a general RSA decrypt key (the key's own OAEP hash). */
export interface DecryptRequest {
  /** base64, exactly the key's modulus size. */
  ciphertext: string;
  /** The OAEP label as text (as tpm2_rsadecrypt -l): the TPM hashes its UTF-8 bytes and a terminating zero. */
  label?: string;
}

export interface DecryptAnswer {
  handle: string;
  /** base64 */
  plaintext: string;
}

/** POST /v1/keys/{handle}/ecdh: TPM2_ECDH_ZGen with a general ECC decrypt key. */
export interface EcdhRequest {
  /** The peer's public key, PEM (SubjectPublicKeyInfo) on the key's curve. */
  peer: string;
}

export interface EcdhAnswer {
  handle: string;
  /** base64 of Z, the shared point's x coordinate at full curve size (what `openssl pkeyutl -derive` gives). */
  z: string;
}

// ---- Attestation (docs/ATTESTATION.md) ----

/** One PCR's value as read: its bank (hash name, or 0x… for another TPM_ALG_ID), index, value (hex). */
export interface PcrValue {
  bank: string;
  pcr: number;
  value: string;
}

/** GET /v1/pcrs: the selection as tpm2_pcrread takes it (`sha256:0,1,2+sha1:0`); default every allocated bank, PCRs 0–23. */
export interface PcrReadQuery {
  selection?: string;
}

export interface PcrReadAnswer {
  /** The selection read, canonical (`sha1:0,1+sha256:0,1`). */
  selection: string;
  /** The TPM's pcrUpdateCounter the values were read under. */
  updateCounter: number;
  /** In selection order (banks as selected, PCRs ascending): the order of pcrs.out and of the quote's digest. */
  pcrs: PcrValue[];
}

/**
 * The app identity (what the service knows of the caller) a bound or device attestation was
 * made for, and how its qualifying data was computed: SHA-256(label ‖ 0x00 ‖ identity ‖ 0x00 ‖ nonce).
 */
export interface AppBinding {
  /** The tenant id, and `/cid=N` when the tenant is bound to a vsock CID: `app1` or `app1/cid=7`. */
  identity: string;
  /** EVE-APP (quote/certify --bind) or EVE-APP-KEY (certification by the device's key). */
  label: 'EVE-APP' | 'EVE-APP-KEY';
}

/** What Quote and Certify return: the signed bytes as the TPM made them. */
export interface AttestAnswer {
  /** The key that signed (the path's handle, or the device's attestation key), 0x… */
  signer: string;
  /** base64 of the TPMS_ATTEST bytes the TPM signed (TPM2B_ATTEST's buffer: tpm2_quote -m, tpm2_certify -o). */
  attest: string;
  /** base64 of the marshalled TPMT_SIGNATURE (tpm2_quote -s, tpm2_certify -s in tss format). */
  signature: string;
  /** The caller's nonce, hex. */
  nonce: string;
  /** The qualifying data the TPM put in extraData, hex: the nonce itself, or its binding to the app. */
  qualifyingData: string;
  /** Present when the qualifying data binds the attestation to the calling app. */
  binding?: AppBinding;
}

/** POST /v1/keys/{handle}/quote: the key (an AK of the caller) quotes the PCRs. */
export interface QuoteRequest {
  /** Selection as tpm2_quote -l: `sha256:0,1,2`. */
  pcrs: string;
  /** Hex, 1–64 bytes (unbound: at most the key's name-hash size). Required: no nonce, no quote. */
  nonce: string;
  /** Qualifying data = SHA-256("EVE-APP" ‖ 0 ‖ identity ‖ 0 ‖ nonce) instead of the nonce. */
  bind?: boolean;
}

export interface QuoteAnswer extends AttestAnswer {
  /** The selection quoted, canonical. */
  selection: string;
  /** The PCR values the quote's digest was checked against (pcrs.out). */
  pcrs: PcrValue[];
}

/** POST /v1/keys/{handle}/certify: the path's key (an AK of the caller) certifies another key of the caller. */
export interface CertifyRequest {
  /** The certified key's handle (the caller's). */
  object: string;
  nonce: string;
  bind?: boolean;
}

export interface CertifyAnswer extends AttestAnswer {
  /** The certified key's handle and TPM Name (hex). */
  object: string;
  objectName: string;
}

/** POST /v1/keys/{handle}/device-certify: the device's attestation key (EVE's) certifies the path's key. */
export interface DeviceCertifyRequest {
  nonce: string;
}

export interface DeviceCertifyAnswer extends CertifyAnswer {
  /** Always present: qualifying data = SHA-256("EVE-APP-KEY" ‖ 0 ‖ identity ‖ 0 ‖ nonce). */
  binding: AppBinding;
  /** The device attestation key's public key (PEM) and Name (hex). */
  signerPem: string;
  signerName: string;
}

/** POST /v1/keys/{handle}/activate-credential: the credential tpm2_makecredential made for the path's key. */
export interface ActivateCredentialRequest {
  /** base64 of TPM2B_ID_OBJECT's buffer (integrity HMAC ‖ encrypted identity). */
  credentialBlob: string;
  /** base64 of TPM2B_ENCRYPTED_SECRET's buffer (the seed encrypted to the EK). */
  secret: string;
}

export interface ActivateCredentialAnswer {
  handle: string;
  /** base64 of the secret the verifier put in the credential. */
  secret: string;
}

/** GET /v1/ek and /v1/ek/certificate: which EK (default rsa). */
export interface EkQuery {
  type?: KeyType | (string & {});
}

export interface EkPublicAnswer {
  type: KeyType;
  pem: string;
  /** The EK's TPM Name, hex (what tpm2_makecredential -n needs for the AK is the AK's Name; this is the EK's). */
  name: string;
  /** base64 of its TPM2B_PUBLIC (tpm2_createek -u / tpm2_readpublic -o). */
  public: string;
}

export interface EkCertificateAnswer {
  type: KeyType;
  /** The NV index it was read from: 0x01C00002 (rsa) or 0x01C0000A (ecc). */
  index: string;
  /** base64 DER of the X.509 certificate. */
  der: string;
}

// ---- Resource usage (issue 14; docs/API.md) ----

/**
 * GET /v1/usage: the caller's resource usage as the host sees it, and its share of the TPM.
 * Counters are raw totals (since the cgroup, interface or service began): the caller computes
 * rates from two readings and their timestamps. A group the host cannot give is a UsageMissing.
 */
export interface Usage {
  tenant: string;
  /** ISO 8601 time of the reading. */
  timestamp: string;
  /** The app's cgroup figures (v2, or v1 controllers: the same fields); not configured or unreadable: why. */
  cgroup: CgroupUsage | UsageMissing;
  /** The app's host-side network interfaces; not configured: why. */
  network: NetworkUsage | UsageMissing;
  tpm: TpmUsage;
}

/** A figure or group that is not there, and why (never a guess, never 0). */
export interface UsageMissing {
  available: false;
  /** false: the host administrator never named the source (tenant add --cgroup / --netif). */
  configured: boolean;
  reason: string;
}

export interface CgroupUsage {
  available: true;
  /** Which hierarchy the figures come from: 2 (unified) or 1 (one per controller). Always sent; optional for answers of earlier services. */
  cgroupVersion?: 1 | 2;
  cpu: CpuUsage | UsageMissing;
  memory: MemoryUsage | UsageMissing;
  io: IoUsage | UsageMissing;
  pids: PidsUsage | UsageMissing;
}

/** cpu.stat (microseconds), or v1 cpuacct + cpu.stat; the throttling fields only where the cpu controller is enabled. */
export interface CpuUsage {
  available: true;
  usageUsec: number;
  userUsec: number;
  systemUsec: number;
  nrPeriods?: number;
  nrThrottled?: number;
  throttledUsec?: number;
}

/** memory.current, memory.peak (kernels ≥ 5.19) and memory.stat's anon and file, in bytes (v1: usage_in_bytes, max_usage_in_bytes, rss and cache). */
export interface MemoryUsage {
  available: true;
  currentBytes: number;
  peakBytes?: number;
  anonBytes?: number;
  fileBytes?: number;
}

/** io.stat (v1: blkio io_service_bytes and io_serviced), per device ("MAJ:MIN") and summed. */
export interface IoUsage {
  available: true;
  readBytes: number;
  writeBytes: number;
  devices: IoDeviceUsage[];
}

export interface IoDeviceUsage {
  device: string;
  readBytes: number;
  writeBytes: number;
  readIos: number;
  writeIos: number;
  discardBytes?: number;
  discardIos?: number;
}

export interface PidsUsage {
  available: true;
  current: number;
}

/**
 * Seen from the app: rx is what the app received, i.e. the host-side interface's transmit
 * counters (a tap, vif or veth end carries the app's traffic the other way round).
 */
export interface NetworkUsage {
  available: true;
  /** Sums over the interfaces that could be read. */
  rxBytes: number;
  txBytes: number;
  interfaces: Array<InterfaceUsage | (UsageMissing & { name: string })>;
}

export interface InterfaceUsage {
  name: string;
  available: true;
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
  rxErrors: number;
  txErrors: number;
  rxDropped: number;
  txDropped: number;
}

/** What the service accounts to the app since it started (`since`). */
export interface TpmUsage {
  /** ISO 8601 start of these counters (the service's start). */
  since: string;
  /** Per operation: answered requests, and those refused (any 4xx/5xx answer). */
  requests: Array<{ op: string; count: number; refused: number }>;
  /** Milliseconds the TPM spent on the app's jobs. */
  tpmTimeMs: number;
  keys: { held: number; max: number; left: number };
  /** The app's TPM jobs that waited in the queue: how many, how long in all, the longest. */
  queueWaits: { count: number; totalMs: number; maxMs: number };
}
