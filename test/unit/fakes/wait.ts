// Bounded waiting for unit tests: never a loop without an end.

/** Resolves once cond() is true; rejects after timeoutMs (checked every few ms). */
export async function until(cond: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Lets pending I/O callbacks, immediates and promise jobs run (a few turns of the loop). */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

/** 'resolved' | 'rejected' | 'pending' right now (after letting promise jobs run). */
export async function stateOf(p: Promise<unknown>): Promise<'resolved' | 'rejected' | 'pending'> {
  let s: 'resolved' | 'rejected' | 'pending' = 'pending';
  p.then(
    () => (s = 'resolved'),
    () => (s = 'rejected'),
  );
  await settle(2);
  return s;
}
