// gateway/consent-cache.ts against an in-memory ConsentSource whose loads the test
// resolves by hand, so in-flight loads and invalidations can be interleaved exactly.
import { describe, expect, it } from 'vitest';
import { createConsentCache } from '../../gateway/consent-cache.ts';
import type { ConsentPeriodIn, ConsentSource } from '../../gateway/ports.ts';

const VIN = 'WTEST000000000001';
const HORIZON = 30 * 86_400_000;
const NOW = 1_700_000_000_000;

const P = (sinceMs: number, location: boolean, co2Sharing: boolean, restricted = false): ConsentPeriodIn => ({ sinceMs, location, co2Sharing, restricted });
const ALLOWED = P(0, true, true);
const OPTED_OUT = P(NOW - 1000, false, false);

interface Call {
  vin: string;
  sinceMs: number;
  resolve(p: ConsentPeriodIn[]): void;
  reject(err: Error): void;
}

/** Every timeline() call waits until the test resolves it. */
function fakeSource(): ConsentSource & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    timeline(vin, sinceMs) {
      return new Promise<ConsentPeriodIn[]>((resolve, reject) => {
        calls.push({ vin, sinceMs, resolve, reject });
      });
    },
  };
}

/** Answers at once with whatever `periods` holds at the time of the call. */
function liveSource(periods: Map<string, ConsentPeriodIn[]>): ConsentSource & { n: number } {
  const s = {
    n: 0,
    async timeline(vin: string) {
      s.n++;
      return (periods.get(vin) ?? [ALLOWED]).map((p) => ({ ...p }));
    },
  };
  return s;
}

const state = (location: boolean, co2Sharing: boolean, restricted = false) => ({ location, co2Sharing, restricted });
const flush = () => new Promise((r) => setTimeout(r, 0));

describe('stateFor: the period in force at the recorded time, made stricter by the current one', () => {
  const periods = [
    P(0, true, true), // defaults
    P(1000, false, true), // location opt-out
    P(2000, true, true), // opted back in
    P(3000, true, true, true), // restricted
    P(4000, true, false), // restriction lifted, CO2 sharing refused (current)
  ];

  async function timeline(ps: ConsentPeriodIn[]) {
    const cache = createConsentCache({ source: liveSource(new Map([[VIN, ps]])), horizonMs: HORIZON, now: () => NOW });
    return cache.load(VIN);
  }

  it('picks the latest period starting at or before t and ANDs it with the current state', async () => {
    const tl = await timeline(periods);
    expect(tl.current()).toEqual(state(true, false));
    expect(tl.stateFor(500)).toEqual(state(true, false));
    expect(tl.stateFor(999)).toEqual(state(true, false));
    expect(tl.stateFor(1000)).toEqual(state(false, false)); // a period starts at its sinceMs
    expect(tl.stateFor(1999)).toEqual(state(false, false));
    expect(tl.stateFor(2000)).toEqual(state(true, false));
    expect(tl.stateFor(3500)).toEqual(state(true, false, true));
    expect(tl.stateFor(4000)).toEqual(state(true, false));
    expect(tl.stateFor(NOW + 60_000)).toEqual(state(true, false)); // measured "in the future": the current state
  });

  it('a record measured during an opt-out keeps it after opting back in; one measured while allowed loses location after an opt-out', async () => {
    const backIn = await timeline([P(0, true, true), P(1000, false, false), P(2000, true, true)]);
    expect(backIn.stateFor(1500)).toEqual(state(false, false));
    expect(backIn.stateFor(500)).toEqual(state(true, true));
    expect(backIn.stateFor(2500)).toEqual(state(true, true));
    const optedOut = await timeline([P(0, true, true), P(1000, false, true)]);
    expect(optedOut.stateFor(500)).toEqual(state(false, true));
  });

  it('before the first loaded period: the first period (the state at the horizon), still made stricter by the current one', async () => {
    const tl = await timeline([P(NOW - HORIZON, false, true), P(NOW - 10, true, true)]);
    expect(tl.stateFor(NOW - HORIZON - 5000)).toEqual(state(false, true));
    const tl2 = await timeline([P(NOW - HORIZON, true, true), P(NOW - 10, true, false)]);
    expect(tl2.stateFor(1)).toEqual(state(true, false));
  });

  it('a single period: that state for every time', async () => {
    const tl = await timeline([P(0, false, true, true)]);
    for (const t of [0, 1, NOW, NOW * 2]) expect(tl.stateFor(t)).toEqual(state(false, true, true));
    expect(tl.current()).toEqual(state(false, true, true));
    expect(tl.periods).toHaveLength(1);
  });

  it('asks the source for the periods since now − horizon', async () => {
    const src = fakeSource();
    const cache = createConsentCache({ source: src, horizonMs: HORIZON, now: () => NOW });
    const p = cache.load(VIN);
    expect(src.calls).toHaveLength(1);
    expect(src.calls[0]!).toMatchObject({ vin: VIN, sinceMs: NOW - HORIZON });
    src.calls[0]!.resolve([ALLOWED]);
    await p;
  });
});

describe('loading and caching', () => {
  it('peek is undefined before a load, the loaded timeline after it; concurrent loads share one query', async () => {
    const src = fakeSource();
    const cache = createConsentCache({ source: src, horizonMs: HORIZON, now: () => NOW });
    expect(cache.peek(VIN)).toBeUndefined();
    const a = cache.load(VIN);
    const b = cache.load(VIN);
    expect(src.calls).toHaveLength(1);
    src.calls[0]!.resolve([ALLOWED, OPTED_OUT]);
    const [ta, tb] = await Promise.all([a, b]);
    expect(ta).toBe(tb);
    expect(cache.peek(VIN)).toBe(ta);
    expect(cache.peek(VIN)!.current()).toEqual(state(false, false));
    expect(cache.size()).toBe(1);
  });

  it('a failed load caches nothing and the next load asks again', async () => {
    const src = fakeSource();
    const cache = createConsentCache({ source: src, horizonMs: HORIZON, now: () => NOW });
    const a = cache.load(VIN);
    src.calls[0]!.reject(new Error('db down'));
    await expect(a).rejects.toThrow('db down');
    expect(cache.peek(VIN)).toBeUndefined();
    const b = cache.load(VIN);
    expect(src.calls).toHaveLength(2);
    src.calls[1]!.resolve([ALLOWED]);
    await b;
    expect(cache.peek(VIN)).toBeDefined();
  });

  it('invalidate drops the entry; the next lookup loads fresh', async () => {
    const periods = new Map([[VIN, [ALLOWED]]]);
    const src = liveSource(periods);
    const cache = createConsentCache({ source: src, horizonMs: HORIZON, now: () => NOW });
    await cache.load(VIN);
    expect(cache.peek(VIN)!.current().location).toBe(true);
    periods.set(VIN, [ALLOWED, OPTED_OUT]);
    cache.invalidate(VIN);
    expect(cache.peek(VIN)).toBeUndefined();
    await cache.load(VIN);
    expect(cache.peek(VIN)!.current().location).toBe(false);
    expect(src.n).toBe(2);
  });

  it('invalidate of one VIN leaves the others cached', async () => {
    const cache = createConsentCache({ source: liveSource(new Map()), horizonMs: HORIZON, now: () => NOW });
    await cache.load(VIN);
    await cache.load('WTEST000000000002');
    cache.invalidate(VIN);
    expect(cache.peek(VIN)).toBeUndefined();
    expect(cache.peek('WTEST000000000002')).toBeDefined();
  });
});

describe('invalidation racing an in-flight load', () => {
  it('a load in flight when the change is announced does not cache its (stale) result', async () => {
    const src = fakeSource();
    const cache = createConsentCache({ source: src, horizonMs: HORIZON, now: () => NOW });
    const stale = cache.load(VIN);
    cache.invalidate(VIN); // NOTIFY arrives while the query is running
    src.calls[0]!.resolve([ALLOWED]); // the answer predates the change
    await stale;
    await flush();
    expect(cache.peek(VIN)).toBeUndefined();
    // the next lookup does not join the stale load: it asks again
    const fresh = cache.load(VIN);
    expect(src.calls).toHaveLength(2);
    src.calls[1]!.resolve([ALLOWED, OPTED_OUT]);
    await fresh;
    expect(cache.peek(VIN)!.current()).toEqual(state(false, false));
  });

  it('a stale load finishing after the fresh one does not overwrite it', async () => {
    const src = fakeSource();
    const cache = createConsentCache({ source: src, horizonMs: HORIZON, now: () => NOW });
    const stale = cache.load(VIN);
    cache.invalidate(VIN);
    const fresh = cache.load(VIN);
    expect(src.calls).toHaveLength(2);
    src.calls[1]!.resolve([ALLOWED, OPTED_OUT]);
    await fresh;
    src.calls[0]!.resolve([ALLOWED]);
    await stale;
    await flush();
    expect(cache.peek(VIN)!.current()).toEqual(state(false, false));
    // and a later load is not confused by the stale promise's cleanup
    expect(cache.peek(VIN)).toBe(await fresh);
  });

  it('invalidateAll during an in-flight load: its result is not cached', async () => {
    const src = fakeSource();
    const cache = createConsentCache({ source: src, horizonMs: HORIZON, now: () => NOW });
    const p = cache.load(VIN);
    cache.invalidateAll();
    src.calls[0]!.resolve([ALLOWED]);
    await p;
    await flush();
    expect(cache.peek(VIN)).toBeUndefined();
    expect(cache.size()).toBe(0);
  });

  it('invalidate, then the vehicle disconnects (forget), during an in-flight load: the stale result is still not cached', async () => {
    const src = fakeSource();
    const cache = createConsentCache({ source: src, horizonMs: HORIZON, now: () => NOW });
    const stale = cache.load(VIN);
    cache.invalidate(VIN);
    cache.forget(VIN);
    src.calls[0]!.resolve([ALLOWED]);
    await stale;
    await flush();
    expect(cache.peek(VIN)).toBeUndefined();
  });

  it('reconnect after invalidate + forget: a stale load finishing last does not overwrite the fresh one', async () => {
    const src = fakeSource();
    const cache = createConsentCache({ source: src, horizonMs: HORIZON, now: () => NOW });
    const stale = cache.load(VIN); // message being processed
    cache.invalidate(VIN); // owner opts out
    cache.forget(VIN); // vehicle disconnects
    const fresh = cache.load(VIN); // vehicle reconnects: consent loaded at CONNECT
    src.calls[1]!.resolve([ALLOWED, OPTED_OUT]);
    await fresh;
    src.calls[0]!.resolve([ALLOWED]);
    await stale;
    await flush();
    expect(cache.peek(VIN)?.current()).toEqual(state(false, false));
  });
});

describe('setTrusted', () => {
  it('setTrusted(false): peek returns undefined even for cached entries; loads are answered but not cached', async () => {
    const periods = new Map([[VIN, [ALLOWED]]]);
    const src = liveSource(periods);
    const cache = createConsentCache({ source: src, horizonMs: HORIZON, now: () => NOW });
    await cache.load(VIN);
    expect(cache.peek(VIN)).toBeDefined();
    cache.setTrusted(false);
    expect(cache.peek(VIN)).toBeUndefined();
    const tl = await cache.load(VIN);
    expect(tl.current().location).toBe(true);
    expect(cache.peek(VIN)).toBeUndefined();
    periods.set(VIN, [ALLOWED, OPTED_OUT]);
    // every lookup while untrusted goes to the source
    expect((await cache.load(VIN)).current().location).toBe(false);
    expect(src.n).toBe(3);
    expect(cache.size()).toBe(0);
  });

  it('a load in flight when trust is lost is not cached', async () => {
    const src = fakeSource();
    const cache = createConsentCache({ source: src, horizonMs: HORIZON, now: () => NOW });
    const p = cache.load(VIN);
    cache.setTrusted(false);
    src.calls[0]!.resolve([ALLOWED]);
    await p;
    await flush();
    cache.setTrusted(true);
    expect(cache.peek(VIN)).toBeUndefined();
  });

  it('back to trusted (as app/feeds.ts does: invalidateAll, then setTrusted(true)): entries load and cache again', async () => {
    const src = liveSource(new Map([[VIN, [ALLOWED]]]));
    const cache = createConsentCache({ source: src, horizonMs: HORIZON, now: () => NOW });
    cache.setTrusted(false);
    await cache.load(VIN);
    cache.invalidateAll();
    cache.setTrusted(true);
    expect(cache.peek(VIN)).toBeUndefined();
    const tl = await cache.load(VIN);
    expect(cache.peek(VIN)).toBe(tl);
  });

  it('forget drops a VIN', async () => {
    const cache = createConsentCache({ source: liveSource(new Map()), horizonMs: HORIZON, now: () => NOW });
    await cache.load(VIN);
    cache.forget(VIN);
    expect(cache.peek(VIN)).toBeUndefined();
    expect(cache.size()).toBe(0);
  });
});
