// Wiring of the live streams over the shards (README "Live CarData", "Sharding"): one
// stream-log tailer per shard, on the API's pools, woken by that shard's commits here and
// by that shard's NOTIFY from other instances, with the rows this process's writers just
// committed held for them. Without SHARD_URLS there is one shard, the database itself:
// the same code with N = 1.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import type { Db } from '../storage/driver/db.ts';
import type { Shards } from '../storage/driver/shards.ts';
import type { CopyRow } from '../storage/driver/copy-binary.ts';
import type { StreamPos } from '../proto/stream.ts';
import { createStreamLogRepo, STREAM_CHANNEL, type StreamLogRepo } from '../stream/log.ts';
import { createRecentRows, type RecentRows } from '../stream/held-rows.ts';
import { coalesced, createStreamHub } from '../stream/hub.ts';
import { createShardedHub, type ShardedHub } from '../stream/shards.ts';

export interface Live {
  hub: ShardedHub;
  /** Resume positions, read in the VIN's shard's log; `shardOf` only with SHARD_URLS (cursors then name their shard). */
  positions: { trimmedBelow(vin: string): Promise<number>; startFor(vin: string, fromMs: number, marginMs: number): Promise<StreamPos>; shardOf?(vin: string): number };
  /** Shard i's stream log (API pool). */
  logs: readonly StreamLogRepo[];
  /**
   * A commit on shard `index` (undefined: unknown shard, every shard): wake the tailer here
   * (any commit may move the horizon: entries of younger transactions wait for it), and when
   * it inserted telemetry, NOTIFY the other instances. The batch's rows and transaction
   * are held for this process's tailer (stream/held-rows.ts).
   */
  committed(index: number | undefined, batch: CommittedBatch): void;
  /** The stored data or the terms of `vin` (undefined: of every vehicle) may have changed: let go of its held rows. */
  forget(vin?: string): void;
  /**
   * Whether rows are held at all: not while the change feed is down (an erasure made
   * elsewhere would not be heard; the tail then reads everything from the database).
   */
  holdRows(on: boolean): void;
  /** Records the tailers took from held rows, and read from the database, since start. */
  heldCounts(): { held: number; read: number };
  /** Whether commits are announced by NOTIFY (STREAM_FANOUT=notify on PostgreSQL). */
  announce: boolean;
  /** LISTENs for other instances' commits on every shard; resolves to the function that stops. */
  listen(): Promise<() => Promise<void>>;
}

/** What a writer's committed batch tells the live streams. */
export interface CommittedBatch {
  /** Whether it inserted telemetry (a batch of duplicates only did not). */
  inserted: boolean;
  /** The transaction that wrote it (null: none, or not known). */
  tx: number | null;
  rows: readonly CopyRow[];
}

/**
 * `apiShards`: the API's pools (the tailers read there, never on the writers' pools);
 * `shards`: the ingest pools (NOTIFY and LISTEN).
 */
export function buildLive(config: Config, apiShards: Shards, shards: Shards, log: Logger): Live {
  const shardField = (i: number) => (apiShards.sharded ? { shard: apiShards.label(i) } : {});
  // Rows held for the tailers, per shard (transaction ids are per database); where the log
  // is read by COPY (PostgreSQL): the embedded database's reads are in-process anyway.
  const recents: (RecentRows | null)[] = apiShards.all().map((d) => (d.copy ? createRecentRows() : null));
  const logs = apiShards.all().map((d, i) => createStreamLogRepo(d, { recent: recents[i] ?? null }));
  const hubs = logs.map((store, i) =>
    createStreamHub({
      store,
      pollMs: config.stream.pollMs,
      onError: (err) => log.warn({ event: 'stream_tail_failed', ...shardField(i), err: err.message }, 'reading the stream log failed; retrying'),
    }),
  );
  const shardOf = (vin: string): number => apiShards.shardOf(vin);
  const hub = createShardedHub(hubs, shardOf, {
    onStartError: (i, err) => log.warn({ event: 'stream_tail_failed', shard: apiShards.label(i), err: err.message }, 'the stream tail of a shard could not start; retrying'),
  });
  // A bucket moved: the streams of its vehicles end (`moved`) instead of falling silent.
  apiShards.onChange(() => hub.remap());

  // The NOTIFY payload names this process, whose own tailer was woken already: its own
  // notifications are not a second wake-up.
  const wakeTag = randomUUID();
  const fromOthers = (wake: () => void) => (from: string) => {
    if (from !== wakeTag) wake();
  };
  const announceOn = (d: Db) =>
    coalesced(
      () => d.query('SELECT pg_notify($1, $2)', [STREAM_CHANNEL, wakeTag]),
      (err) => log.warn({ event: 'stream_notify_failed', err: err.message }, 'could not announce a commit to other instances'),
    );
  const announcers = config.databaseUrl && config.stream.fanout === 'notify' ? shards.all().map(announceOn) : null;

  let holding = true;
  const forget = (vin?: string): void => {
    for (const r of recents) {
      if (vin === undefined) r?.clear();
      else r?.dropVin(vin);
    }
  };
  return {
    hub,
    positions: {
      trimmedBelow: (vin) => logs[shardOf(vin)]!.trimmedBelow(),
      startFor: (vin, fromMs, marginMs) => logs[shardOf(vin)]!.startFor(vin, fromMs, marginMs),
      // The control database as its only shard: cursors name no shard (as they never did there).
      ...(apiShards.sharded ? { shardOf } : {}),
    },
    logs,
    committed(index, batch) {
      if (index === undefined) {
        hub.wake();
        if (batch.inserted && announcers) for (const a of announcers) a();
        return;
      }
      // Only rows of vehicles someone here follows are held.
      if (holding && batch.inserted && batch.tx !== null) recents[index]?.put(batch.tx, batch.rows, (vin) => hub.follows(vin));
      hub.wakeShard(index);
      if (batch.inserted) announcers?.[index]?.();
    },
    forget,
    holdRows(on) {
      holding = on;
      if (!on) forget();
    },
    heldCounts() {
      const c = { held: 0, read: 0 };
      for (const r of recents) {
        c.held += r?.counts.held ?? 0;
        c.read += r?.counts.read ?? 0;
      }
      return c;
    },
    announce: announcers !== null,
    async listen() {
      if (!announcers) return async () => {};
      // Each shard's commits are announced on that shard: its LISTEN wakes its tailer only.
      // A shard that is down now is listened to once it answers (its tailer polls meanwhile).
      const stops: (() => Promise<void>)[] = [];
      const timers = new Set<NodeJS.Timeout>();
      let stopped = false;
      const listenOne = async (i: number): Promise<void> => {
        try {
          const role = apiShards.sharded ? `stream-wake-s${i}` : 'stream-wake';
          const stop = await shards.db(i).listen(STREAM_CHANNEL, fromOthers(() => hub.wakeShard(i)), { onUp: () => hub.wakeShard(i), role });
          if (stopped) await stop();
          else stops.push(stop);
        } catch (err) {
          if (stopped) return;
          log.warn({ event: 'stream_wake_failed', ...shardField(i), err: (err as Error).message }, 'cannot listen for commits; retrying');
          const t = setTimeout(() => {
            timers.delete(t);
            void listenOne(i);
          }, 1000);
          t.unref();
          timers.add(t);
        }
      };
      await Promise.all(shards.all().map((_, i) => listenOne(i)));
      return async () => {
        stopped = true;
        for (const t of timers) clearTimeout(t);
        for (const s of stops) await s();
      };
    },
  };
}
