/** Every tool's definition, keyed by its short name (the names are declared in protocol/tools.ts). */
import type { ToolName } from '../../service/protocol/tools.js';
import type { ToolDef } from '../run.js';
import { capabilities } from './capabilities.js';
import { evictaik } from './evictaik.js';
import { genaik } from './genaik.js';
import { listkeys } from './listkeys.js';
import { pubgetaik } from './pubgetaik.js';
import { sign } from './sign.js';
import { pcrread } from './pcrread.js';
import { quote } from './quote.js';
import { ekpub } from './ekpub.js';
import { ekcert } from './ekcert.js';
import { activatecredential } from './activatecredential.js';
import { certify } from './certify.js';
import { usage } from './usage.js';
import { genkey } from './genkey.js';
import { rsadecrypt } from './rsadecrypt.js';
import { ecdh } from './ecdh.js';
import { csr } from './csr.js';
import { cert } from './cert.js';
import { tcti } from './tcti.js';

export const TOOL_DEFS: Readonly<Record<ToolName, ToolDef<never>>> = {
  genaik: genaik as ToolDef<never>,
  pubgetaik: pubgetaik as ToolDef<never>,
  sign: sign as ToolDef<never>,
  listkeys: listkeys as ToolDef<never>,
  evictaik: evictaik as ToolDef<never>,
  capabilities: capabilities as ToolDef<never>,
  pcrread: pcrread as ToolDef<never>,
  quote: quote as ToolDef<never>,
  ekpub: ekpub as ToolDef<never>,
  ekcert: ekcert as ToolDef<never>,
  activatecredential: activatecredential as ToolDef<never>,
  certify: certify as ToolDef<never>,
  usage: usage as ToolDef<never>,
  genkey: genkey as ToolDef<never>,
  rsadecrypt: rsadecrypt as ToolDef<never>,
  ecdh: ecdh as ToolDef<never>,
  csr: csr as ToolDef<never>,
  cert: cert as ToolDef<never>,
  tcti: tcti as ToolDef<never>,
};
