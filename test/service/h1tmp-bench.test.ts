import { it } from 'vitest';
import { TPM_ALG, Tpm, createAk, loadKey, signDigest, tpmHash, withLoadedKey } from '../../src/tpm/index.js';
import { startSwtpm } from '../helpers/swtpm.js';
import { startEnv } from './env.js';

const MESSAGE = new Uint8Array(32).fill(0x61);
const p50 = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

it('bench', async () => {
  const envC = await startEnv({ config: { objectCache: 32 } });
  const envN = await startEnv();
  const sw = await startSwtpm();
  const tpm = new Tpm(sw.transport());
  const blobs = await createAk(tpm, 'rsa');
  const loaded = await loadKey(tpm, blobs);
  const kC = await envC.client('alice').createKey({ type: 'rsa' });
  const kN = await envN.client('alice').createKey({ type: 'rsa' });
  const cC = envC.client('alice');
  const cN = envN.client('alice');
  const ops: Record<string, () => Promise<unknown>> = {
    svcCached: () => cC.sign(kC.handle, { message: MESSAGE }),
    svcNoCache: () => cN.sign(kN.handle, { message: MESSAGE }),
    libHot: async () => { const h = await tpmHash(tpm, MESSAGE, TPM_ALG.SHA256); return signDigest(tpm, loaded, h.digest, h.validation); },
    libCold: async () => { const h = await tpmHash(tpm, MESSAGE, TPM_ALG.SHA256); return withLoadedKey(tpm, blobs, (_h, k) => signDigest(tpm, k, h.digest, h.validation)); },
  };
  const from = envC.commands.length;
  await ops.svcCached!();
  const fromHot = envC.commands.length;
  await ops.svcCached!();
  console.log('hot cmds', envC.commands.slice(fromHot), 'first', envC.commands.slice(from, fromHot));
  const fromN = envN.commands.length;
  await ops.svcNoCache!();
  console.log('uncached cmds', envN.commands.slice(fromN).length, envN.commands.slice(fromN));
  const t: Record<string, number[]> = Object.fromEntries(Object.keys(ops).map((k) => [k, []]));
  const reps = Number(process.env.REPS ?? 200);
  for (let i = 0; i < reps + 10; i++) {
    for (const [k, f] of Object.entries(ops)) {
      const s = performance.now();
      await f();
      if (i >= 10) t[k]!.push(performance.now() - s);
    }
  }
  const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, p50(v)]));
  console.log('p50 ms', m);
  console.log('P1 cached/libHot', m.svcCached! / m.libHot!, 'uncached/libCold', m.svcNoCache! / m.libCold!, 'cached/libCold', m.svcCached! / m.libCold!);
  await envC.stop(); await envN.stop(); await sw.stop();
}, 600_000);
