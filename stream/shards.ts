// Live streams over sharded storage (README "Sharding"): each shard has its own stream log
// (its writes' commit order, its own transaction ids), so each shard gets its own tailer
// (stream/hub.ts) with its own horizon, woken by that shard's commits and by the NOTIFY on
// that shard. A stream reads the log of its vehicle's shard only: its cursor (tx, ord) is
// a position in that shard's log. This file routes subscribers to their shard's tailer.
import type { StreamHub } from './hub.ts';
import type { StreamPos, StreamStart, StreamSubscriber as Subscriber } from '../proto/stream.ts';

/** Resume positions of one shard's log (stream/log.ts). */
export interface ShardPositions {
  trimmedBelow(): Promise<number>;
  startFor(vin: string, fromMs: number, marginMs: number): Promise<StreamPos>;
}

export interface ShardedHub extends StreamHub {
  /** Shard `index` committed (here, or elsewhere by NOTIFY on that shard): read its log. */
  wakeShard(index: number): void;
  /**
   * The shard map changed: a subscriber whose vehicle now lives on another shard is ended
   * (reason `moved`). Its tailer would hear nothing more of it, and its cursor counts in
   * the old shard's log, which the new shard's cannot continue.
   */
  remap(): void;
}

/**
 * One StreamHub over per-shard tailers: `hubs[i]` tails shard i's log; `shardOf` names the
 * shard of a VIN. `wake()` wakes every tailer (a commit whose shard is not known).
 */
export function createShardedHub(
  hubs: readonly StreamHub[],
  shardOf: (vin: string) => number,
  opts: { /** A tailer could not start (its shard is down); retried every `retryMs`. */ onStartError?: (index: number, err: Error) => void; retryMs?: number } = {},
): ShardedHub {
  if (hubs.length === 0) throw new Error('createShardedHub: no shards');
  const retryMs = opts.retryMs ?? 1000;
  let stopped = false;
  const retries = new Set<NodeJS.Timeout>();
  /** The tailer each open subscriber went to (the map may change while it is open). */
  const placed = new Map<Subscriber, StreamHub>();
  const hubOf = (vin: string): StreamHub => hubs[shardOf(vin)]!;
  return {
    async open(sub: Subscriber, opts: StreamStart) {
      const h = hubOf(sub.vin);
      placed.set(sub, h);
      try {
        await h.open(sub, opts);
      } finally {
        if (sub.closed) placed.delete(sub);
      }
    },
    close(sub) {
      const h = placed.get(sub);
      placed.delete(sub);
      if (h) h.close(sub);
      else for (const x of hubs) x.close(sub);
    },
    wake() {
      for (const h of hubs) h.wake();
    },
    wakeShard(index) {
      hubs[index]?.wake();
    },
    remap() {
      for (const [sub, h] of [...placed]) {
        if (sub.closed || hubOf(sub.vin) === h) continue;
        placed.delete(sub);
        h.close(sub);
        sub.end?.('moved');
      }
    },
    // Cheap on the tailers without subscribers of the VIN (a map lookup): every tailer is
    // told, so a subscriber placed before a bucket move is rechecked too.
    invalidate(vin) {
      for (const h of hubs) h.invalidate(vin);
    },
    invalidateGrant(id) {
      for (const h of hubs) h.invalidateGrant(id);
    },
    invalidateAll() {
      for (const h of hubs) h.invalidateAll();
    },
    follows: (vin) => hubs.some((h) => h.follows(vin)),
    /** The lowest horizon of the tailers (each counts in its own shard's transaction ids). */
    get horizon() {
      return Math.min(...hubs.map((h) => h.horizon));
    },
    stats() {
      const out = { subscribers: 0, vehicles: 0, horizon: Infinity, cycles: 0 };
      for (const h of hubs) {
        const s = h.stats();
        out.subscribers += s.subscribers;
        out.vehicles += s.vehicles;
        out.cycles += s.cycles;
        out.horizon = Math.min(out.horizon, s.horizon);
      }
      return out;
    },
    // A shard that is down at start does not stop the others (nor the process): its tailer
    // starts once the shard answers; until then its vehicles' streams cannot open (their
    // first read fails) and nothing of it is live.
    async start() {
      const startOne = async (i: number): Promise<void> => {
        try {
          await hubs[i]!.start();
        } catch (err) {
          opts.onStartError?.(i, err as Error);
          if (stopped) return;
          const t = setTimeout(() => {
            retries.delete(t);
            void startOne(i);
          }, retryMs);
          t.unref();
          retries.add(t);
        }
      };
      await Promise.all(hubs.map((_, i) => startOne(i)));
    },
    async stop() {
      stopped = true;
      for (const t of retries) clearTimeout(t);
      retries.clear();
      await Promise.all(hubs.map((h) => h.stop()));
    },
  };
}

/** Resume positions of a VIN, read in its shard's log. */
export function shardedPositions(
  logs: readonly ShardPositions[],
  shardOf: (vin: string) => number,
): { trimmedBelow(vin: string): Promise<number>; startFor(vin: string, fromMs: number, marginMs: number): Promise<StreamPos>; shardOf(vin: string): number } {
  return {
    shardOf,
    trimmedBelow: (vin) => logs[shardOf(vin)]!.trimmedBelow(),
    startFor: (vin, fromMs, marginMs) => logs[shardOf(vin)]!.startFor(vin, fromMs, marginMs),
  };
}
