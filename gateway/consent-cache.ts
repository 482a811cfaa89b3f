// In-memory consent timelines per VIN, loaded on connect and refreshed on every
// announced change. The cache answers "which consent applies to a record measured at t
// and processed now": the stricter of the state in force at t and the current state.
import { strictest, type ConsentState } from '../filters/privacy.ts';
import type { ConsentPeriodIn, ConsentSource, GatewayMetrics } from './ports.ts';

export interface ConsentTimeline {
  readonly periods: readonly ConsentPeriodIn[];
  /** The consent that governs a record measured at recordedAtMs, processed now. */
  stateFor(recordedAtMs: number): ConsentState;
  /** The state in force now. */
  current(): ConsentState;
}

export interface ConsentCache {
  /** The timeline if cached and trusted, else undefined (call load). */
  peek(vin: string): ConsentTimeline | undefined;
  /** Loads (or joins the load in progress) from the database. */
  load(vin: string): Promise<ConsentTimeline>;
  /** A change was announced for this VIN: the next lookup waits for a fresh load. */
  invalidate(vin: string): void;
  /** Every entry is suspect (e.g. the change feed was interrupted). */
  invalidateAll(): void;
  /** Drops a VIN (its vehicle disconnected). */
  forget(vin: string): void;
  /** Marks the change feed as up or down; while down nothing cached is trusted. */
  setTrusted(trusted: boolean): void;
  size(): number;
}

function makeTimeline(periods: ConsentPeriodIn[]): ConsentTimeline {
  const last = periods[periods.length - 1]!;
  const cur: ConsentState = { location: last.location, co2Sharing: last.co2Sharing, restricted: last.restricted };
  return {
    periods,
    current: () => cur,
    stateFor(t) {
      if (periods.length === 1) return cur;
      // Latest period starting at or before t; before the first loaded one, the first.
      let p = periods[0]!;
      for (let i = periods.length - 1; i >= 0; i--) {
        if (periods[i]!.sinceMs <= t) {
          p = periods[i]!;
          break;
        }
      }
      return strictest(p, cur);
    },
  };
}

export function createConsentCache(opts: {
  source: ConsentSource;
  /** How far back records may be measured (MAX_RECORD_AGE_MS): that much history is kept. */
  horizonMs: number;
  now?: () => number;
  metrics?: GatewayMetrics;
}): ConsentCache {
  const now = opts.now ?? Date.now;
  const entries = new Map<string, ConsentTimeline>();
  const loading = new Map<string, Promise<ConsentTimeline>>();
  // Bumped on every invalidation so a load that started before it is not cached.
  const generation = new Map<string, number>();
  let globalGen = 0;
  let trusted = true;

  function load(vin: string): Promise<ConsentTimeline> {
    const inProgress = loading.get(vin);
    if (inProgress) return inProgress;
    const gen = generation.get(vin) ?? 0;
    const g0 = globalGen;
    opts.metrics?.consentCache('reload');
    const p = opts.source
      .timeline(vin, now() - opts.horizonMs)
      .then((periods) => {
        const tl = makeTimeline(periods);
        if ((generation.get(vin) ?? 0) === gen && globalGen === g0 && trusted) entries.set(vin, tl);
        return tl;
      })
      .finally(() => {
        if (loading.get(vin) === p) loading.delete(vin);
      });
    loading.set(vin, p);
    return p;
  }

  return {
    peek(vin) {
      if (!trusted) return undefined;
      const e = entries.get(vin);
      opts.metrics?.consentCache(e ? 'hit' : 'miss');
      return e;
    },
    load,
    invalidate(vin) {
      generation.set(vin, (generation.get(vin) ?? 0) + 1);
      entries.delete(vin);
      loading.delete(vin);
    },
    invalidateAll() {
      globalGen++;
      entries.clear();
      loading.clear();
    },
    forget(vin) {
      entries.delete(vin);
      // The generation is bumped, not dropped: a load started before an invalidation must
      // stay uncacheable even if the vehicle disconnects and reconnects meanwhile.
      generation.set(vin, (generation.get(vin) ?? 0) + 1);
      loading.delete(vin);
    },
    setTrusted(t) {
      trusted = t;
      if (!t) {
        globalGen++;
        entries.clear();
        loading.clear();
      }
    },
    size: () => entries.size,
  };
}
