// Scheduled retention (README "Retention"), on every shard: each shard is its own job in
// scheduled_runs, run once per RETENTION_INTERVAL_MS across every process (claimed in the
// control database under an advisory lock); a shard that is down fails its own job only,
// which is taken up again at the next quarter period. Contracts that ended come from the
// control database; the deletes run on the shard (API pool), or, where the shard is the
// control database itself (one database, or the embedded one, whose single connection the
// claim holds), in the claim's own transaction, joined to the contracts in one statement. Then each shard's stream log is
// trimmed. Also: TimescaleDB's compression policies, set up once at start on every shard.
import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import type { Db } from '../storage/driver/db.ts';
import type { Shards } from '../storage/driver/shards.ts';
import { applyRetention, enableCompression, endedContracts, type RetentionDb } from '../storage/ops/retention.ts';
import { runExclusive, runOncePerPeriod } from '../storage/ops/schedule.ts';
import type { StreamLogRepo } from '../stream/log.ts';

/** The job's name in scheduled_runs: 'retention' with one database (the name rows already carry), 'retention:shard<i>' with SHARD_URLS. */
export function retentionJob(shards: Pick<Shards, 'sharded'>, index: number): string {
  return shards.sharded ? `retention:shard${index}` : 'retention';
}

export interface RetentionDeps {
  config: Config;
  /** The control database, API pool: claims, ownership periods. */
  control: Db;
  /** The API's pools of the shards: the deletes. */
  apiShards: Shards;
  /** The ingest pools of the shards: they were migrated, so they know the server's kind (drop_chunks on TimescaleDB). */
  shards: Shards;
  /** Shard i's stream log. */
  logs: readonly StreamLogRepo[];
  instance: string;
  log: Logger;
}

/** One run of scheduled retention on every shard; failures are logged, never thrown. */
export async function runRetention(d: RetentionDeps): Promise<void> {
  const { config, control, apiShards, shards, log } = d;
  const trimBefore = () => Date.now() - config.stream.logRetentionDays * 86_400_000;
  await Promise.all(
    apiShards.all().map(async (db, i) => {
      const shard = apiShards.sharded ? { shard: apiShards.label(i) } : {};
      try {
        const kind = shards.db(i).kind;
        const r = await runOncePerPeriod(control, retentionJob(apiShards, i), config.retention.intervalMs, d.instance, async (tx) => {
          // The shard is the control database: one statement joins the ended contracts in.
          if (db === control) return applyRetention(Object.assign(tx, { kind }), config.retention);
          const ended = await endedContracts(tx, config.retention.afterContractDays, (vin) => apiShards.shardOf(vin) === i);
          // In one transaction on the shard: rows and their hourly summaries go together.
          return db.transaction((stx) => {
            const target: RetentionDb = { kind, query: (text, params, name) => stx.query(text, params, name) };
            return applyRetention(target, config.retention, ended);
          });
        });
        if (!r.ran) {
          log.debug({ event: 'retention_skipped', ...shard, reason: r.reason, period_start: r.periodStart?.toISOString() }, 'retention of this period done elsewhere');
          return;
        }
        log.info({ event: 'retention_applied', ...shard, period_start: r.periodStart.toISOString(), ...r.result }, 'retention applied');
        log.info({ event: 'stream_log_trimmed', ...shard, entries: await d.logs[i]!.trim(trimBefore()) }, 'stream log trimmed');
      } catch (err) {
        log.warn({ event: 'retention_failed', ...shard, err: (err as Error).message }, 'retention failed; retried at the next interval');
      }
    }),
  );
}

/**
 * Sets up compression on every shard (under a lock: processes starting together do it one
 * at a time), runs retention now, and then four times a period, so that a period is taken
 * up soon after it begins even when the process that would have run it is gone. Returns
 * the function that stops the timer.
 */
export async function scheduleRetention(d: RetentionDeps): Promise<() => void> {
  for (const db of d.shards.all()) {
    await runExclusive(db, 'compression_setup', (tx) => enableCompression(tx)).then(
      (on) => on && d.log.info({ event: 'compression_enabled' }, 'TimescaleDB compression policies enabled'),
      (err: Error) => d.log.warn({ event: 'compression_failed', err: err.message }, 'could not enable TimescaleDB compression'),
    );
  }
  const timer = setInterval(() => void runRetention(d), Math.max(100, Math.floor(d.config.retention.intervalMs / 4)));
  timer.unref();
  void runRetention(d);
  return () => clearInterval(timer);
}
