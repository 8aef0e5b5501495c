/**
 * Runs INSIDE the qemu guest (bundled to one .cjs by device.test.ts): the library's device
 * transport against the kernel's TPM resource manager, /dev/tpmrm0 (backed by a fresh swtpm).
 *
 * Prints `RESULT <name> PASS|FAIL <detail>` per check and `SUMMARY <n> passed, <m> failed`.
 */
import { randomBytes } from 'node:crypto';
import {
  DeviceTransport,
  TPM_ALG,
  TpmError,
  TpmTransportError,
  Tpm,
  createAk,
  CreatePrimary,
  TPM_RH,
  ekRsaTemplate,
  evictPersistent,
  flush,
  getTpmProperty,
  listHandles,
  listPersistentHandles,
  loadKey,
  objectName,
  openTransport,
  persistKey,
  publicToPem,
  readPublic,
  signMessage,
  startPolicySession,
  verifyMessageSignature,
  withLoadedKey,
  type CreatedKey,
  type Transport,
} from '../../src/tpm/index.js';
import { result, assert, check, finish } from './report.js';

const DEVICE = '/dev/tpmrm0';
const PERSISTENT = 0x81010000;
const MiB = 1024 * 1024;
// Part 2 §6.13 (PT_VAR + n), spelled out here rather than taken from the library's table.
const PT_HR_ACTIVE_AVAIL = 0x206; // sessions that may still be started (loaded or saved)
const PT_HR_TRANSIENT_AVAIL = 0x207;

const hex = (h: number): string => `0x${h.toString(16).padStart(8, '0')}`;
const transientHandles = (tpm: Tpm): Promise<number[]> => listHandles(tpm, 0x80000000, 0x80ffffff);
const sessionHandles = (tpm: Tpm): Promise<number[]> => listHandles(tpm, 0x02000000, 0x03ffffff);

async function main(): Promise<void> {
  const transport: Transport = openTransport(DEVICE);
  const tpm = new Tpm(transport);
  let rsa: CreatedKey | undefined;
  let ecc: CreatedKey | undefined;
  const small = new TextEncoder().encode('hello from the guest');
  const big = new Uint8Array(randomBytes(MiB));

  await check('open', async () => {
    assert(transport instanceof DeviceTransport, `openTransport gave ${transport.description}`);
    const h = await transientHandles(tpm);
    assert(h.length === 0, `fresh fd already sees ${h.map(hex).join(',')}`);
    return `${transport.description}, no transient handles`;
  });

  await check('createAk-rsa', async () => {
    rsa = await createAk(tpm, 'rsa');
    assert(rsa.publicArea.type === TPM_ALG.RSA, `type ${rsa.publicArea.type}`);
    const left = [...(await transientHandles(tpm)), ...(await sessionHandles(tpm))];
    assert(left.length === 0, `left loaded: ${left.map(hex).join(',')}`);
    return `RSA AK, ${rsa.public.length}+${rsa.private.length} blob bytes, EK and session flushed`;
  });

  await check('createAk-ecc', async () => {
    ecc = await createAk(tpm, 'ecc');
    assert(ecc.publicArea.type === TPM_ALG.ECC, `type ${ecc.publicArea.type}`);
    const left = [...(await transientHandles(tpm)), ...(await sessionHandles(tpm))];
    assert(left.length === 0, `left loaded: ${left.map(hex).join(',')}`);
    return `ECC AK, nothing left loaded`;
  });

  await check('virtual-handle', async () => {
    assert(rsa, 'no RSA AK');
    const { handle, name } = await loadKey(tpm, rsa);
    try {
      assert(handle >= 0x80ff0000 && handle <= 0x80ffffff, `loadKey gave ${hex(handle)}, not a tpmrm virtual handle`);
      const seen = await transientHandles(tpm);
      assert(seen.length === 1 && seen[0] === handle, `GetCapability shows ${seen.map(hex).join(',')}`);
      const info = await readPublic(tpm, handle);
      assert(Buffer.from(info.name).equals(Buffer.from(name)) && Buffer.from(name).equals(Buffer.from(objectName(rsa.publicArea))), 'name mismatch');
      return `loadKey -> ${hex(handle)}, listed by GetCapability(HANDLES), ReadPublic name matches`;
    } finally {
      await flush(tpm, handle);
    }
  });

  await check('persist-readpublic-pem', async () => {
    assert(rsa, 'no RSA AK');
    const before = await listPersistentHandles(tpm);
    assert(!before.includes(PERSISTENT), `${hex(PERSISTENT)} already in use`);
    await persistKey(tpm, rsa, PERSISTENT);
    const after = await listPersistentHandles(tpm);
    assert(after.includes(PERSISTENT), `persistent handles: ${after.map(hex).join(',')}`);
    const info = await readPublic(tpm, PERSISTENT);
    const pem = publicToPem(info.publicArea);
    assert(pem.startsWith('-----BEGIN PUBLIC KEY-----\n') && pem.trimEnd().endsWith('-----END PUBLIC KEY-----'), 'not a PEM public key');
    assert(pem === publicToPem(rsa.publicArea), 'PEM differs from the created key');
    const left = await transientHandles(tpm);
    assert(left.length === 0, `left loaded: ${left.map(hex).join(',')}`);
    return `persisted at ${hex(PERSISTENT)}, ReadPublic -> ${pem.length}-char PEM equal to the created key's`;
  });

  await check('sign-loaded', async () => {
    assert(rsa && ecc, 'no AKs');
    const out: string[] = [];
    for (const [label, key] of [
      ['rsa', rsa],
      ['ecc', ecc],
    ] as const) {
      for (const [size, msg] of label === 'rsa' ? ([['small', small], ['1MiB', big]] as const) : ([['small', small]] as const)) {
        const start = Date.now();
        const sig = await withLoadedKey(tpm, key, (h) => signMessage(tpm, h, msg));
        assert(verifyMessageSignature(key.publicArea, msg, sig), `${label} ${size}: signature does not verify`);
        assert(!verifyMessageSignature(key.publicArea, Buffer.concat([msg, Buffer.from('x')]), sig), `${label} ${size}: verifies a different message`);
        out.push(`${label}/${size} ${Date.now() - start} ms`);
      }
    }
    const left = await transientHandles(tpm);
    assert(left.length === 0, `left loaded: ${left.map(hex).join(',')}`);
    return `withLoadedKey + signMessage verified: ${out.join(', ')}`;
  });

  await check('sign-persistent', async () => {
    assert(rsa, 'no RSA AK');
    const out: string[] = [];
    for (const [size, msg] of [
      ['small', small],
      ['1MiB', big],
    ] as const) {
      const start = Date.now();
      const sig = await signMessage(tpm, PERSISTENT, msg);
      assert(verifyMessageSignature(rsa.publicArea, msg, sig), `${size}: signature does not verify`);
      out.push(`${size} ${Date.now() - start} ms`);
    }
    return `signMessage with ${hex(PERSISTENT)} verified: ${out.join(', ')}`;
  });

  await check('fd-isolation', async () => {
    assert(rsa && ecc, 'no AKs');
    const other = new DeviceTransport(DEVICE);
    const tpmB = new Tpm(other);
    const { handle: hA } = await loadKey(tpm, ecc);
    let hB: number | undefined;
    try {
      const seenByB = await transientHandles(tpmB);
      assert(seenByB.length === 0, `second fd sees ${seenByB.map(hex).join(',')}`);
      // fd A's virtual handle means nothing on fd B: the kernel refuses to map it (EINVAL
      // from the device, before the TPM sees the command) — a TpmError would also do.
      let err: unknown;
      try {
        await readPublic(tpmB, hA);
      } catch (e) {
        err = e;
      }
      const refused = err instanceof TpmError || (err instanceof TpmTransportError && /EINVAL/.test(err.message));
      assert(refused, `ReadPublic(${hex(hA)}) on the second fd: ${err === undefined ? 'succeeded' : String(err)}`);
      // each fd has its own handle space: the same number may name different keys
      hB = (await loadKey(tpmB, rsa)).handle;
      const onA = await readPublic(tpm, hA);
      const onB = await readPublic(tpmB, hB);
      assert(Buffer.from(onA.name).equals(Buffer.from(ecc.name)), 'fd A lost its key');
      assert(Buffer.from(onB.name).equals(Buffer.from(rsa.name)), 'fd B sees the wrong key');
      return (
        `ECC AK at ${hex(hA)} on fd A; on fd B it is not listed and ReadPublic fails (${(err as Error).name}: ${(err as Error).message}); ` +
        `RSA AK loaded on fd B at ${hex(hB)}${hB === hA ? ' (same number, other key)' : ''}; each fd reads its own key`
      );
    } finally {
      await flush(tpm, hA);
      if (hB !== undefined) await flush(tpmB, hB);
      await other.close();
    }
  });

  await check('flush-on-close', async () => {
    assert(rsa, 'no RSA AK');
    // Objects are context-saved by the kernel between commands, so the TPM's object slots do
    // not show them; sessions do (a saved session still counts as active). Leave a key and a
    // session behind on fd A, close it, and watch the session count come back from fd B.
    const a = new DeviceTransport(DEVICE);
    const tpmA = new Tpm(a);
    const b = new DeviceTransport(DEVICE);
    const tpmB = new Tpm(b);
    try {
      const base = await getTpmProperty(tpmB, PT_HR_ACTIVE_AVAIL);
      const baseTransient = await getTpmProperty(tpmB, PT_HR_TRANSIENT_AVAIL);
      assert(base !== undefined, 'TPM does not report TPM_PT_HR_ACTIVE_AVAIL');
      const { handle } = await loadKey(tpmA, rsa);
      const s1 = await startPolicySession(tpmA);
      const s2 = await startPolicySession(tpmA);
      const held = await getTpmProperty(tpmB, PT_HR_ACTIVE_AVAIL);
      assert(held === base - 2, `with 2 sessions open on fd A: ACTIVE_AVAIL ${String(held)}, base ${base}`);
      const onA = await transientHandles(tpmA);
      assert(onA.includes(handle), `fd A does not list ${hex(handle)}`);
      await a.close(); // no flush: the kernel must do it
      let after: number | undefined;
      for (let i = 0; i < 50; i++) {
        after = await getTpmProperty(tpmB, PT_HR_ACTIVE_AVAIL);
        if (after === base) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert(after === base, `after closing fd A: ACTIVE_AVAIL ${String(after)}, expected ${base}`);
      const afterTransient = await getTpmProperty(tpmB, PT_HR_TRANSIENT_AVAIL);
      assert(afterTransient === baseTransient, `TRANSIENT_AVAIL ${String(afterTransient)} vs ${String(baseTransient)}`);
      const fresh = new Tpm(openTransport(DEVICE));
      try {
        const seen = [...(await transientHandles(fresh)), ...(await sessionHandles(fresh))];
        assert(seen.length === 0, `a new fd sees ${seen.map(hex).join(',')}`);
      } finally {
        await fresh.transport.close();
      }
      return (
        `fd A held ${hex(handle)} and sessions ${hex(s1.handle)}, ${hex(s2.handle)} (ACTIVE_AVAIL ${base} -> ${held}); ` +
        `after close(A) without flushing: ACTIVE_AVAIL back to ${String(after)}, TRANSIENT_AVAIL ${String(afterTransient)}`
      );
    } finally {
      await a.close();
      await b.close();
    }
  });

  await check('loop-responsive', async () => {
    // RSA-2048 primary keys with a random unique field (nothing cached: the TPM searches for
    // primes). While each CreatePrimary is in flight the event loop must keep ticking: the
    // transport waits on the threadpool, never on the loop.
    let inFlight = false;
    let ticksInFlight = 0;
    let maxGap = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      if (inFlight) ticksInFlight++;
    }, 5);
    const times: number[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const s = performance.now();
        inFlight = true;
        const r = await tpm.run(CreatePrimary, {
          primaryHandle: TPM_RH.OWNER,
          inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) },
          inPublic: { ...ekRsaTemplate(), unique: new Uint8Array(randomBytes(256)) },
          outsideInfo: new Uint8Array(0),
          creationPCR: [],
        });
        inFlight = false;
        times.push(Math.round(performance.now() - s));
        await flush(tpm, r.objectHandle);
      }
    } finally {
      clearInterval(timer);
    }
    const busy = times.reduce((a, b) => a + b, 0);
    assert(ticksInFlight >= Math.min(3, Math.floor(busy / 50)), `${ticksInFlight} timer ticks during ${busy} ms of CreatePrimary`);
    assert(maxGap < Math.max(250, busy * 0.5), `the loop stalled for ${Math.round(maxGap)} ms of ${busy} ms`);
    return `3 CreatePrimary(RSA 2048, random unique) took ${times.join('/')} ms; a 5 ms timer ticked ${ticksInFlight} times while they ran, longest gap ${Math.round(maxGap)} ms`;
  });

  await check('evict', async () => {
    await evictPersistent(tpm, PERSISTENT);
    const after = await listPersistentHandles(tpm);
    assert(!after.includes(PERSISTENT), `${hex(PERSISTENT)} still there`);
    return `${hex(PERSISTENT)} evicted; persistent handles now [${after.map(hex).join(',')}]`;
  });

  await check('flush-hygiene', async () => {
    const t = await transientHandles(tpm);
    const s = await sessionHandles(tpm);
    assert(t.length === 0 && s.length === 0, `left on this fd: ${[...t, ...s].map(hex).join(',')}`);
    return 'GetCapability(HANDLES) 0x80000000-0x80ffffff and 0x02000000-0x03ffffff: none left on this fd';
  });

  await transport.close();
}

main()
  .catch((e: unknown) => result('main', false, (e as Error).stack ?? String(e)))
  .finally(() => {
    finish();
  });
