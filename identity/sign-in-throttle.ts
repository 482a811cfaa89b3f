// Password guessing at the sign-in form, bounded without locking owners out. Failures are
// counted per (account, source) and per source (IPv6 by /64), in a sliding window:
//  - after FREE_FAILURES failures of a key, each further attempt waits first (250 ms,
//    doubling, up to delayMaxMs): slow for a script, barely felt by a person;
//  - at the limit, further attempts are refused unchecked until the oldest counted
//    failure leaves the window (the answer says until when).
// Never counted per account alone: knowing someone's username does not let anyone lock
// them out; they can still sign in from their own address. A success resets the
// (account, source) count only, so a guesser cannot clear their source's count by signing
// in to an account of their own. Attempts in flight count as failures until they end, so
// fifty concurrent guesses get no more checks than fifty sequential ones.
// Pure: no I/O, the time is passed in. Counts are this process's own (per instance).
import { addressGroup } from './address.ts';

export interface SignInThrottleOptions {
  /** Failures per (account, source) in the window; at this many, refused (SIGN_IN_FAILURES_PER_ACCOUNT_MAX). */
  perAccountMax: number;
  /** Failures per source, whatever the account, in the window (SIGN_IN_FAILURES_PER_SOURCE_MAX). */
  perSourceMax: number;
  /** Failures older than this are forgotten, ms (SIGN_IN_FAILURE_WINDOW_MS). */
  windowMs: number;
  /** Longest wait before an attempt is checked, ms; 0: no waits (SIGN_IN_DELAY_MAX_MS). */
  delayMaxMs: number;
  /** Keys remembered per map before the least recently used is forgotten. Default 100 000. */
  maxKeys?: number;
}

/** Failures of a key that cost no wait: a person mistyping. */
export const FREE_FAILURES = 3;
/** The first wait; each further failure doubles it. */
export const FIRST_DELAY_MS = 250;

export type ThrottleDecision =
  /** Go on after waiting delayMs; end the attempt with `settle`. */
  | { ok: true; delayMs: number; attempt: SignInAttempt }
  /** Refused unchecked until retryAt (ms since the epoch); `scope` says which count is full. */
  | { ok: false; retryAt: number; scope: 'account' | 'source' };

export interface SignInAttempt {
  /** The password check's outcome; 'error': no outcome (the check did not run), nothing counted. Only the first call counts. */
  settle(outcome: 'success' | 'failure' | 'error', now: number): void;
}

export interface SignInThrottle {
  /** Whether `account` may be tried from `address` now, and after what wait. */
  begin(account: string, address: string | undefined, now: number): ThrottleDecision;
  /** Keys remembered (both maps): for tests and metrics. */
  size(): number;
}

/** Thrown by a sign-in the throttle refused: the answer is 429 until retryAt. */
export class SignInThrottled extends Error {
  constructor(
    readonly retryAt: number,
    readonly scope: 'account' | 'source',
  ) {
    super(`too many failed sign-ins from this ${scope === 'account' ? 'address for this account' : 'address'}`);
    this.name = 'SignInThrottled';
  }
}

/** The wait before an attempt when `failures` (counted ones, in flight included) precede it. */
export function delayFor(failures: number, delayMaxMs: number): number {
  if (failures < FREE_FAILURES || delayMaxMs <= 0) return 0;
  return Math.min(delayMaxMs, FIRST_DELAY_MS * 2 ** Math.min(failures - FREE_FAILURES, 20));
}

interface Count {
  /** Times of the failures within the window, oldest first; at most the limit. */
  failures: number[];
  /** Attempts begun and not yet settled. */
  pending: number;
}

export function createSignInThrottle(opts: SignInThrottleOptions): SignInThrottle {
  const maxKeys = opts.maxKeys ?? 100_000;
  const pairs = new Map<string, Count>();
  const sources = new Map<string, Count>();

  /** The count of a key with expired failures dropped; touched keys move to the end (LRU order). */
  function get(map: Map<string, Count>, key: string, now: number, create: boolean): Count | undefined {
    let c = map.get(key);
    if (c) {
      while (c.failures.length && c.failures[0]! <= now - opts.windowMs) c.failures.shift();
      map.delete(key);
      if (c.failures.length === 0 && c.pending === 0 && !create) return undefined;
    } else if (!create) return undefined;
    else c = { failures: [], pending: 0 };
    if (map.size >= maxKeys) {
      // Bounded memory: forget the key touched longest ago.
      const oldest = map.keys().next().value;
      if (oldest !== undefined) map.delete(oldest);
    }
    map.set(key, c);
    return c;
  }

  /** When a key at `max` frees a place: its failures, and its attempts in flight as if they failed now. */
  function full(c: Count | undefined, max: number, now: number): number | null {
    if (!c || c.failures.length + c.pending < max) return null;
    const times = [...c.failures, ...Array<number>(c.pending).fill(now)];
    return times[times.length - max]! + opts.windowMs;
  }

  function record(c: Count, max: number, now: number): void {
    c.failures.push(now);
    if (c.failures.length > max) c.failures.shift();
  }

  return {
    begin(account, address, now) {
      const source = addressGroup(address);
      const pairKey = `${source}\u0000${account}`;
      const pair = get(pairs, pairKey, now, false);
      const src = get(sources, source, now, false);
      const pairFull = full(pair, opts.perAccountMax, now);
      const srcFull = full(src, opts.perSourceMax, now);
      if (pairFull !== null || srcFull !== null) {
        const scope = srcFull !== null && (pairFull === null || srcFull >= pairFull) ? 'source' : 'account';
        return { ok: false, retryAt: Math.max(pairFull ?? 0, srcFull ?? 0), scope };
      }
      const pairCount = pair ? pair.failures.length + pair.pending : 0;
      const srcCount = src ? src.failures.length + src.pending : 0;
      // The source's count weighs as much as the account's at the same share of its limit.
      const weight = Math.max(pairCount, Math.floor((srcCount * opts.perAccountMax) / opts.perSourceMax));
      const p = get(pairs, pairKey, now, true)!;
      const s = get(sources, source, now, true)!;
      p.pending++;
      s.pending++;
      let settled = false;
      return {
        ok: true,
        delayMs: delayFor(weight, opts.delayMaxMs),
        attempt: {
          settle(outcome, at) {
            if (settled) return;
            settled = true;
            p.pending--;
            s.pending--;
            if (outcome === 'failure') {
              record(p, opts.perAccountMax, at);
              record(s, opts.perSourceMax, at);
            } else if (outcome === 'success') {
              p.failures.length = 0;
            }
            // Forget empty keys (when still the same object in the map: it may have been evicted).
            if (p.failures.length === 0 && p.pending === 0 && pairs.get(pairKey) === p) pairs.delete(pairKey);
            if (s.failures.length === 0 && s.pending === 0 && sources.get(source) === s) sources.delete(source);
          },
        },
      };
    },
    size: () => pairs.size + sources.size,
  };
}
