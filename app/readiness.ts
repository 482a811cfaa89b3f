// What /readyz answers, and the health of each telemetry shard (for /readyz and /metrics).
// Ready: the broker listens, the embedded OpenID Provider (when it runs) serves, the
// control database answers, and at least one shard is up
// (answers its probe and its writer is not retrying failed writes). Every instance shares
// the shards, so taking instances out of rotation for one shard would stop every vehicle
// instead of that shard's; the shards that are down are named in x-shards-down (README
// "Sharding"). With one database, it is the only shard: ready = it answers and its writer
// is not retrying.
import type { Db } from '../storage/driver/db.ts';
import type { Shards } from '../storage/driver/shards.ts';
import type { Readiness } from '../api/routes/health.ts';

export interface ShardHealth {
  shard: string;
  up: boolean;
  pendingRows: number;
}

export interface ReadinessDeps {
  /** The control database, API pool. */
  apiDb: Db;
  /** The API's pools of the shards (probed there: a busy writer pool does not look down). */
  apiShards: Shards;
  /** Shard i's writer: degraded while it retries failed writes. */
  writerOf(index: number): { readonly degraded: boolean; pending(): { rows: number } };
  /** Whether an MQTT listener is open. */
  brokerListening(): boolean;
  /** Whether sign-in serves: the embedded provider started (always true without one). */
  signInReady(): boolean;
  /** A probe's answer is shared this long, ms (READYZ_CACHE_MS): a storm of probes costs one query. */
  cacheMs: number;
  instance: string;
}

function answers(d: Db): Promise<boolean> {
  return Promise.race([d.query('SELECT 1').then(() => true, () => false), new Promise<boolean>((r) => setTimeout(() => r(false), 1000).unref())]);
}

export function createReadiness(deps: ReadinessDeps): { readiness: Readiness; shardHealth(): Promise<ShardHealth[]> } {
  const { apiDb, apiShards } = deps;
  let probe: { at: number; result: Promise<{ control: boolean; shards: boolean[]; at: string }> } | null = null;
  const probeAll = () => {
    const now = Date.now();
    if (!probe || now - probe.at >= deps.cacheMs) {
      // One query per database, in parallel: with one database, the control database is the shard.
      const asked = new Map<Db, Promise<boolean>>();
      const ask = (d: Db) => {
        let p = asked.get(d);
        if (!p) asked.set(d, (p = answers(d)));
        return p;
      };
      probe = {
        at: now,
        result: Promise.all([ask(apiDb), Promise.all(apiShards.all().map(ask))]).then(([control, shards]) => ({ control, shards, at: new Date(now).toISOString() })),
      };
    }
    return probe.result;
  };
  const shardHealth = async (): Promise<ShardHealth[]> => {
    const p = await probeAll();
    return apiShards.all().map((_, i) => {
      const w = deps.writerOf(i);
      return { shard: String(i), up: (p.shards[i] ?? false) && !w.degraded, pendingRows: w.pending().rows };
    });
  };
  const readiness: Readiness = async () => {
    const p = await probeAll();
    const h = await shardHealth();
    const down = h.filter((s) => !s.up).map((s) => s.shard);
    return {
      broker: deps.brokerListening(),
      database: p.control && down.length < h.length,
      signIn: deps.signInReady(),
      databaseCheckedAt: p.at,
      instance: deps.instance,
      ...(apiShards.sharded ? { shardsDown: down.length ? down.join(',') : 'none' } : {}),
    };
  };
  return { readiness, shardHealth };
}
