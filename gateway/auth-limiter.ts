// Failed-authentication limits per source address and per VIN: after `maxFailures` in
// `windowMs`, further CONNECTs for that key are refused without checking the secret
// until the window has passed. Stops online guessing and keeps scrypt from being used
// to burn the gateway's CPU.
export interface AuthLimiter {
  /** True when this key may try now. */
  allowed(key: string, now?: number): boolean;
  failed(key: string, now?: number): void;
  succeeded(key: string): void;
  size(): number;
}

export function createAuthLimiter(opts: { maxFailures: number; windowMs: number; maxKeys?: number }): AuthLimiter {
  const maxKeys = opts.maxKeys ?? 100_000;
  // key → failure times within the window (oldest first); Map order = insertion order.
  const failures = new Map<string, number[]>();

  function recent(key: string, now: number): number[] | undefined {
    const list = failures.get(key);
    if (!list) return undefined;
    while (list.length && list[0]! <= now - opts.windowMs) list.shift();
    if (list.length === 0) {
      failures.delete(key);
      return undefined;
    }
    return list;
  }

  return {
    allowed(key, now = Date.now()) {
      const list = recent(key, now);
      return !list || list.length < opts.maxFailures;
    },
    failed(key, now = Date.now()) {
      let list = recent(key, now);
      if (!list) {
        if (failures.size >= maxKeys) {
          // Bounded memory: forget the key seen longest ago.
          const oldest = failures.keys().next().value;
          if (oldest !== undefined) failures.delete(oldest);
        }
        list = [];
        failures.set(key, list);
      }
      if (list.length < opts.maxFailures * 2) list.push(now);
    },
    succeeded(key) {
      failures.delete(key);
    },
    size: () => failures.size,
  };
}
