/** Session objects (Part 1 §19, §21): salted/bound HMAC and policy sessions with parameter encryption. */
export { AuthSession, TpmSessionError, type EncryptDirection, type SessionUse } from './session.js';
export { startAuthSession, flushSession, withSession, type StartSessionOptions } from './start.js';
export { kdfa, kdfe } from './kdf.js';
export { paramCrypt, type SessionCipher } from './param-crypt.js';
export { makeSalt, type Salt } from './salt.js';
