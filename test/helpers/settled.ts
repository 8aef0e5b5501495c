/** Whether `p` has settled (resolved or rejected), asked without waiting for it. */
export function settled(p: Promise<unknown>): () => boolean {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  return () => done;
}
