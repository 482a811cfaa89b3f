// Composition of the read side over the shards, part of main.ts's composition root (kept
// apart so main.ts stays short): the live streams (one stream-log tailer per shard, woken
// by that shard's commits and NOTIFYs) and scheduled retention (per shard). Without
// SHARD_URLS there is one shard, the database itself, and this builds exactly what
// main.ts built before sharding: one tailer on the API pool, NOTIFY on the database,
// one retention job named 'retention'.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from './config/index.ts';
import type { Db } from './storage/driver/db.ts';
import type { Shards } from './storage/driver/shards.ts';
import { createStreamLogRepo, STREAM_CHANNEL, type StreamLogRepo } from './stream/log.ts';
import { createRecentRows, type RecentRows } from './stream/held-rows.ts';
import type { CopyRow } from './storage/driver/copy-binary.ts';
import { applyRetention, endedContracts, type RetentionDb } from './storage/ops/retention.ts';
import { runOncePerPeriod } from './storage/ops/schedule.ts';
import { coalesced, createStreamHub, type StreamHub } from './stream/hub.ts';
import { createShardedHub, shardedPositions } from './stream/shards.ts';
import type { StreamPos } from './stream/ports.ts';

export interface Live {
  hub: StreamHub;
  /** Resume positions, read in the VIN's shard's log. */
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
 * `shards`: the ingest pools (NOTIFY and LISTEN, as before sharding on `db`).
 */
export function buildLive(config: Config, apiShards: Shards, shards: Shards, log: Logger): Live {
  // Rows held for the tailers, per shard (transaction ids are per database); where the log
  // is read by COPY (PostgreSQL): the embedded database's reads are in-process anyway.
  const recents: (RecentRows | null)[] = apiShards.all().map((d) => (d.copy ? createRecentRows() : null));
  const logs = apiShards.all().map((d, i) => createStreamLogRepo(d, { recent: recents[i] ?? null }));
  const hubs = logs.map((store, i) =>
    createStreamHub({
      store,
      pollMs: config.stream.pollMs,
      onError: (err) => log.warn({ event: 'stream_tail_failed', ...(apiShards.sharded ? { shard: apiShards.label(i) } : {}), err: err.message }, 'reading the stream log failed; retrying'),
    }),
  );
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
  const heldCounts = () => {
    const c = { held: 0, read: 0 };
    for (const r of recents) {
      c.held += r?.counts.held ?? 0;
      c.read += r?.counts.read ?? 0;
    }
    return c;
  };
  const holdRows = (on: boolean): void => {
    holding = on;
    if (!on) forget();
  };
  /** Holds a committed batch's rows for shard `index`'s tailer (only of vehicles followed here). */
  const hold = (index: number, batch: CommittedBatch, follows: (vin: string) => boolean): void => {
    if (holding && batch.inserted && batch.tx !== null) recents[index]?.put(batch.tx, batch.rows, follows);
  };
  const forget = (vin?: string): void => {
    for (const r of recents) {
      if (vin === undefined) r?.clear();
      else r?.dropVin(vin);
    }
  };
  if (!apiShards.sharded) {
    const hub = hubs[0]!;
    return {
      hub,
      positions: logs[0]!,
      logs,
      committed(_index, batch) {
        hold(0, batch, (vin) => hub.follows(vin));
        hub.wake();
        if (batch.inserted) announcers?.[0]!();
      },
      forget,
      holdRows,
      heldCounts,
      announce: announcers !== null,
      async listen() {
        if (!announcers) return async () => {};
        return shards.db(0).listen(STREAM_CHANNEL, fromOthers(() => hub.wake()), { onUp: () => hub.wake(), role: 'stream-wake' });
      },
    };
  }
  const hub = createShardedHub(hubs, (vin) => apiShards.shardOf(vin), {
    onStartError: (i, err) => log.warn({ event: 'stream_tail_failed', shard: apiShards.label(i), err: err.message }, 'the stream tail of a shard could not start; retrying'),
  });
  // A bucket moved: the streams of its vehicles end (`moved`) instead of falling silent.
  apiShards.onChange(() => hub.remap());
  return {
    hub,
    positions: shardedPositions(logs, (vin) => apiShards.shardOf(vin)),
    logs,
    committed(index, batch) {
      if (index === undefined) {
        hub.wake();
        if (batch.inserted && announcers) for (const a of announcers) a();
        return;
      }
      hold(index, batch, (vin) => hub.follows(vin));
      hub.wakeShard(index);
      if (batch.inserted) announcers?.[index]?.();
    },
    forget,
    holdRows,
    heldCounts,
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
          const stop = await shards.db(i).listen(STREAM_CHANNEL, fromOthers(() => hub.wakeShard(i)), { onUp: () => hub.wakeShard(i), role: `stream-wake-s${i}` });
          if (stopped) await stop();
          else stops.push(stop);
        } catch (err) {
          if (stopped) return;
          log.warn({ event: 'stream_wake_failed', shard: shards.label(i), err: (err as Error).message }, 'cannot listen for commits on a shard; retrying');
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

/**
 * One run of scheduled retention, on every shard (README "Retention"). Each shard is its
 * own job in scheduled_runs ('retention', or 'retention:shard<i>' when sharded): once per
 * period across every process, claimed in the control database; a shard that is down fails
 * its own job only, which is taken up again at the next quarter period. The deletes run on
 * the shard (API pool); contracts that ended come from the control database.
 */
export async function runRetention(config: Config, control: Db, apiShards: Shards, shards: Shards, live: Live, instance: string, log: Logger): Promise<void> {
  const trimBefore = () => Date.now() - config.stream.logRetentionDays * 86_400_000;
  if (!apiShards.sharded) {
    try {
      // On the API's pool (never the ingest pool), once per period across every instance.
      // The server's kind comes from the ingest pool, which migrate() ran on (the API pool
      // never learns it): drop_chunks on TimescaleDB rather than DELETE.
      const kind = shards.db(0).kind;
      const r = await runOncePerPeriod(control, 'retention', config.retention.intervalMs, instance, (tx) => applyRetention(Object.assign(tx, { kind }), config.retention));
      if (r.ran) log.info({ event: 'retention_applied', period_start: r.periodStart.toISOString(), ...r.result }, 'retention applied');
      else log.debug({ event: 'retention_skipped', reason: r.reason, period_start: r.periodStart?.toISOString() }, 'retention of this period done elsewhere');
      if (r.ran) log.info({ event: 'stream_log_trimmed', entries: await live.logs[0]!.trim(trimBefore()) }, 'stream log trimmed');
    } catch (err) {
      log.warn({ event: 'retention_failed', err: (err as Error).message }, 'retention failed; retried at the next interval');
    }
    return;
  }
  await Promise.all(
    apiShards.all().map(async (d, i) => {
      const shard = apiShards.label(i);
      try {
        // The ingest pools were migrated, so they know the server's kind (drop_chunks on TimescaleDB).
        const target: RetentionDb = { kind: shards.db(i).kind, query: (text, params, name) => d.query(text, params, name) };
        const r = await runOncePerPeriod(control, `retention:shard${i}`, config.retention.intervalMs, instance, async (tx) => {
          const ended = await endedContracts(tx, config.retention.afterContractDays, (vin) => apiShards.shardOf(vin) === i);
          const res = await applyRetention(target, config.retention, ended);
          return { ...res, streamLogTrimmed: await live.logs[i]!.trim(trimBefore()) };
        });
        if (r.ran) log.info({ event: 'retention_applied', shard, period_start: r.periodStart.toISOString(), ...r.result }, 'retention applied');
        else log.debug({ event: 'retention_skipped', shard, reason: r.reason, period_start: r.periodStart?.toISOString() }, 'retention of this period done elsewhere');
      } catch (err) {
        log.warn({ event: 'retention_failed', shard, err: (err as Error).message }, 'retention failed; retried at the next interval');
      }
    }),
  );
}
