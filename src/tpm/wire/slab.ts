/**
 * Memory for the bytes the compiled codecs hand out (whole encoded frames, decoded byte fields of
 * more than 64 bytes): consecutive slices of a shared slab, as Buffer.allocUnsafe takes small
 * buffers from Node's pool. A fresh ArrayBuffer per frame (V8 allocates its backing store off
 * the heap and sweeps it separately) cost about as much as all the marshalling around it.
 *
 * What a holder sees: its own bytes, never written again by anyone here (a slice is handed out
 * once; a full slab is dropped, not reused). But `x.buffer` is the slab: other frames and fields
 * of this process lie beside it, and a slice kept alive keeps its whole slab alive. Nothing is
 * zeroized here, as nothing in the library zeroizes (a fresh buffer was not wiped either).
 * The slab cannot be transferred away (postMessage or structuredClone copy it instead), so no
 * holder can detach its neighbours' bytes (on Node ≥ 20.16: see markOf).
 */

/** Slab size: small enough that a slice kept for long pins little, large enough to amortize. */
const SLAB = 32 * 1024;
/** Larger requests get an ArrayBuffer of their own (they would waste much of a slab). */
const OWN_ABOVE = 2048;

/** None until the first request (a process that marshals nothing allocates nothing). */
let slab = new ArrayBuffer(0);
let used = 0;

type Mark = (ab: ArrayBuffer) => void;
let mark: Mark | null | undefined;

/**
 * worker_threads' markAsUntransferable, loaded on first use rather than imported: the module
 * costs milliseconds to load, and every tool loads this file. Null where Node lacks
 * process.getBuiltinModule (before 20.16): then slabs stay transferable.
 */
function markOf(): Mark | null {
  if (mark === undefined) {
    // Typed as always there, but absent before Node 20.16 (the tools also run on Node 18).
    const present: unknown = process.getBuiltinModule;
    mark = typeof present === 'function' ? process.getBuiltinModule('node:worker_threads').markAsUntransferable : null;
  }
  return mark;
}

function newSlab(): ArrayBuffer {
  const ab = new ArrayBuffer(SLAB);
  markOf()?.(ab);
  return ab;
}

/** `n` bytes no one else has been given (contents unspecified: the caller fills them all). */
function slabBytes(n: number): Uint8Array {
  if (n > OWN_ABOVE) return new Uint8Array(n);
  // A detached slab (byteLength 0) also fails this test, and is replaced.
  if (used + n > slab.byteLength) {
    slab = newSlab();
    used = 0;
  }
  const out = new Uint8Array(slab, used, n);
  used += n;
  return out;
}

/** A copy of `src` in slab memory. */
export function slabCopy(src: Uint8Array): Uint8Array {
  const out = slabBytes(src.length);
  out.set(src);
  return out;
}
