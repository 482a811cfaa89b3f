// Telemetry sharded by VIN. A VIN hashes to one of BUCKETS fixed buckets; the
// control database (DATABASE_URL) maps each bucket to a shard (SHARD_URLS, in order). Every
// record of a VIN therefore lives on one shard: every write is a single-database
// transaction and every per-vehicle read touches one database. Shards are added by moving
// buckets (cli shard-move), never by rehashing.
//
// Without SHARD_URLS there is one shard and it IS the control database (the same Db): the
// gateway works over N >= 1 shards, and where the one shard is the control database the
// reads may join telemetry to ownership and consent in one statement.
import { createPgDb, type CopyCapability, type Db } from './db.ts';
import { migrate } from './migrate.ts';
import { STO_ERR, StorageError, isTransient } from '../errors.ts';

export const BUCKETS = 4096;
/** NOTIFY channel on the control database: the shard map changed (payload: the bucket, or ''). */
export const SHARD_MAP_CHANNEL = 'shard_map_changed';
// Serialises the first fill of the map across processes starting at once ('shrd').
const MAP_LOCK_KEY = 0x73687264;

/** FNV-1a, 32 bits, over the UTF-8 bytes of `s` (a VIN is ASCII: one byte per character). */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return fnv1aBytes(Buffer.from(s, 'utf8'));
    h = Math.imul(h ^ c, 0x01000193);
  }
  return h >>> 0;
}

function fnv1aBytes(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const c of b) h = Math.imul(h ^ c, 0x01000193);
  return h >>> 0;
}

/** Stable: FNV-1a 32-bit over the VIN's ASCII bytes (uppercase VIN as stored), mod BUCKETS. Pure. */
export function bucketOf(vin: string): number {
  return fnv1a32(vin) % BUCKETS;
}

export interface Shards {
  /** false when SHARD_URLS is unset: one shard, and it IS the control database (same Db object). */
  readonly sharded: boolean;
  readonly count: number;
  /** Shard i's Db (0-based, in SHARD_URLS order). */
  db(index: number): Db;
  all(): readonly Db[];
  /** Owning shard of a VIN, from the in-memory copy of the control DB's shard map (kept fresh by NOTIFY + reload on reconnect). */
  shardOf(vin: string): number;
  dbOf(vin: string): Db;
  /** Short, password-free label of shard i for logs, metrics, /readyz ("shard0 127.0.0.1:55432/cardata_s0"). */
  label(index: number): string;
  /** True while the VIN's bucket is being moved (state 'moving'): its writes are held. Always false unsharded. */
  isMoving(vin: string): boolean;
  /** Calls fn after each reload of the map (a move started or finished); returns the unsubscribe. */
  onChange(fn: () => void): () => void;
  /** Reloads the map from the control database now (also done on NOTIFY and on reconnect). */
  reload(): Promise<void>;
  close(): Promise<void>;
}

export interface ShardsOptions {
  /** Pool size of each shard's Db. Default 10. */
  max?: number;
  /** Give up acquiring a connection after this long, ms. Default 5000. */
  connectionTimeoutMs?: number;
  /** What these pools are for ('ingest', 'api', 'cli'): in application_name and log lines. */
  role: string;
  /**
   * Migrate the control database and every shard, and fill the map on first start
   * (default true). A second Shards of the same process, opened after one that did, may
   * skip it.
   */
  prepare?: boolean;
  onError?: (err: Error, shard: string) => void;
  /** A shard that did not answer at start was migrated on its first use ('shard1'). */
  onMigrated?: (shard: string) => void;
  /**
   * Reload the map this often as well, ms (default 15000; 0: only on NOTIFY): bounds how
   * long a process whose LISTEN connection died silently (no error yet) routes by an old map.
   */
  refreshMs?: number;
}

/** host:port/database of a postgres URL, never its credentials. */
export function urlLabel(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}${u.port ? `:${u.port}` : ''}${u.pathname}`;
  } catch {
    return '(unparsable url)';
  }
}

/**
 * A shard that did not answer at start: every use first migrates it (once it answers), so no
 * row reaches it before its schema is up to date. Until then each use fails with
 * STO_ERR_UNAVAILABLE, which the writer retries like any outage: only that shard's vehicles
 * wait, and the process starts without it. Once migrated, the calls go straight through.
 */
function migratedOnUse(db: Db & { setKind(kind: string): void }, onMigrated: () => void): Db {
  let done = false;
  let running: Promise<void> | null = null;
  const ready = (): Promise<void> =>
    (running ??= migrate(db).then(
      () => {
        done = true;
        onMigrated();
      },
      (err: unknown) => {
        running = null;
        throw isTransient(err) ? new StorageError(STO_ERR.UNAVAILABLE, `shard not migrated yet: ${(err as Error).message}`, { cause: err }) : err;
      },
    ));
  const inner = db.copy;
  const copy: CopyCapability | null = inner && {
    copyOut: (sql, into) => (done ? inner.copyOut(sql, into) : ready().then(() => inner.copyOut(sql, into))),
    transaction: (fn) => (done ? inner.transaction(fn) : ready().then(() => inner.transaction(fn))),
  };
  return {
    get kind() {
      return db.kind;
    },
    copy,
    query: (text, params, name) => (done ? db.query(text, params, name) : ready().then(() => db.query(text, params, name))),
    transaction: (fn) => (done ? db.transaction(fn) : ready().then(() => db.transaction(fn))),
    listen: (channel, onMessage, hooks) => listenWhenUp(db, channel, onMessage, hooks),
    stats: () => db.stats(),
    close: () => db.close(),
  };
}

/**
 * LISTEN that does not fail when the shard is down now: it keeps trying every second in the
 * background, and once connected calls `onUp` (the caller reloads what it may have missed),
 * from then on like Db.listen. A shard down at start must not stop the process.
 */
async function listenWhenUp(db: Db, channel: string, onMessage: (payload: string) => void, hooks?: Parameters<Db['listen']>[2]): Promise<() => Promise<void>> {
  try {
    return await db.listen(channel, onMessage, hooks);
  } catch (err) {
    if (!isTransient(err)) throw err;
  }
  let stopped = false;
  let stop: (() => Promise<void>) | null = null;
  let timer: NodeJS.Timeout | null = null;
  const attempt = () => {
    timer = setTimeout(() => {
      timer = null;
      db.listen(channel, onMessage, hooks).then(
        async (s) => {
          if (stopped) return s();
          stop = s;
          hooks?.onUp?.();
        },
        () => {
          if (!stopped) attempt();
        },
      );
    }, 1000);
    timer.unref();
  };
  attempt();
  return async () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    await stop?.();
  };
}

/** The one-shard view of single-database mode: the control database itself. */
function singleShard(control: Db): Shards {
  const all = [control] as const;
  return {
    sharded: false,
    count: 1,
    db(index) {
      if (index !== 0) throw new RangeError(`no shard ${index}: one database`);
      return control;
    },
    all: () => all,
    shardOf: () => 0,
    dbOf: () => control,
    label: () => 'shard0 (DATABASE_URL)',
    isMoving: () => false,
    onChange: () => () => {},
    reload: async () => {},
    // The control database belongs to the caller.
    close: async () => {},
  };
}

/**
 * Fills `shards` and `shard_map` on first start (bucket b → shard b mod N), registers
 * shards appended to SHARD_URLS since, and refuses URLs that no longer match what the map
 * refers to (removed or reordered). Under an advisory lock: processes starting together
 * agree.
 */
export async function syncShardMap(control: Db, labels: readonly string[]): Promise<void> {
  await control.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MAP_LOCK_KEY]);
    const known = (await tx.query<{ index: number; label: string }>('SELECT index, label FROM shards ORDER BY index')).rows;
    const used = new Set((await tx.query<{ shard: number }>('SELECT DISTINCT shard FROM shard_map')).rows.map((r) => r.shard));
    const problems: string[] = [];
    for (const k of known) {
      const now = labels[k.index];
      if (now === undefined) {
        if (used.has(k.index)) problems.push(`shard ${k.index} (${k.label}) owns buckets but SHARD_URLS has only ${labels.length} URL(s): move its buckets away first (cli shard-move), then remove it`);
      } else if (now !== k.label) {
        problems.push(`SHARD_URLS position ${k.index} is ${now}, but the shard map knows shard ${k.index} as ${k.label}: keep the order of SHARD_URLS and append new shards at the end`);
      }
    }
    if (problems.length) throw new StorageError(STO_ERR.SHARD_MAP, `SHARD_URLS does not match the shard map:\n  ${problems.join('\n  ')}`);
    for (let i = known.length; i < labels.length; i++) {
      await tx.query('INSERT INTO shards (index, label) VALUES ($1, $2) ON CONFLICT (index) DO NOTHING', [i, labels[i]]);
    }
    if (used.size === 0) {
      // First start with shards: spread the buckets evenly. Later additions take no bucket
      // until one is moved to them.
      await tx.query('INSERT INTO shard_map (bucket, shard) SELECT b, b % $2 FROM generate_series(0, $1 - 1) AS b ON CONFLICT (bucket) DO NOTHING', [BUCKETS, labels.length]);
    }
  });
}

interface MapCopy {
  owner: Int16Array;
  moving: Uint8Array;
}

async function loadMap(control: Db, count: number): Promise<MapCopy> {
  const rows = (await control.query<{ bucket: number; shard: number; state: string }>('SELECT bucket, shard, state FROM shard_map')).rows;
  const owner = new Int16Array(BUCKETS).fill(-1);
  const moving = new Uint8Array(BUCKETS);
  for (const r of rows) {
    if (r.shard >= count) throw new StorageError(STO_ERR.SHARD_MAP, `bucket ${r.bucket} belongs to shard ${r.shard}, but SHARD_URLS names only ${count}`);
    owner[r.bucket] = r.shard;
    moving[r.bucket] = r.state === 'moving' ? 1 : 0;
  }
  const missing = owner.indexOf(-1);
  if (missing >= 0) throw new StorageError(STO_ERR.SHARD_MAP, `bucket ${missing} has no shard in shard_map`);
  return { owner, moving };
}

/**
 * The shards of this process. `urls` null (or empty): single-database mode, no I/O at all.
 * Otherwise one pool per URL; with `prepare` (default) the control database and every shard
 * are migrated before anything else, so a shard is migrated before any row goes to it.
 */
export async function openShards(control: Db, urls: readonly string[] | null, opts: ShardsOptions): Promise<Shards> {
  if (!urls || urls.length === 0) return singleShard(control);
  const labels = urls.map(urlLabel);
  const raw = urls.map((u, i) =>
    createPgDb(u, {
      max: opts.max ?? 10,
      connectionTimeoutMs: opts.connectionTimeoutMs ?? 5000,
      applicationName: `cardata-gateway-${opts.role}-s${i}`,
      onError: (err) => opts.onError?.(err, `shard${i}`),
    }),
  );
  const closeAll = async () => {
    for (const d of raw) await d.close().catch(() => {});
  };
  const dbs: Db[] = [...raw];
  let map: MapCopy;
  let stopListening: () => Promise<void> = async () => {};
  const listeners = new Set<() => void>();
  try {
    if (opts.prepare !== false) {
      await migrate(control);
      // A shard that does not answer now is migrated when it does, before its first row.
      for (let i = 0; i < raw.length; i++) {
        try {
          await migrate(raw[i]!);
        } catch (err) {
          if (!isTransient(err)) throw err;
          opts.onError?.(new Error(`not migrated at start, will be before its first use: ${(err as Error).message}`), `shard${i}`);
          dbs[i] = migratedOnUse(raw[i]!, () => opts.onMigrated?.(`shard${i}`));
        }
      }
      await syncShardMap(control, labels);
    } else {
      // Opened after a process that prepared them: each shard is checked (migrate is a
      // no-op then) on its first use, so this side never reads a shard before its schema.
      for (let i = 0; i < raw.length; i++) dbs[i] = migratedOnUse(raw[i]!, () => opts.onMigrated?.(`shard${i}`));
    }
    map = await loadMap(control, dbs.length);
  } catch (err) {
    await closeAll();
    throw err;
  }

  let reloading: Promise<void> | null = null;
  let again = false;
  const reload = (): Promise<void> => {
    // One reload at a time; a NOTIFY during one asks for another after it.
    if (reloading) {
      again = true;
      return reloading;
    }
    reloading = (async () => {
      try {
        do {
          again = false;
          map = await loadMap(control, dbs.length);
          for (const f of listeners) f();
        } while (again);
      } finally {
        reloading = null;
      }
    })();
    return reloading;
  };
  const reloadQuietly = () => {
    reload().catch((err: Error) => opts.onError?.(err, 'control'));
  };
  try {
    stopListening = await control.listen(SHARD_MAP_CHANNEL, reloadQuietly, { onUp: reloadQuietly, role: `${opts.role}-shard-map` });
  } catch (err) {
    await closeAll();
    throw err;
  }

  const refreshMs = opts.refreshMs ?? 15_000;
  const refresh = refreshMs > 0 ? setInterval(reloadQuietly, refreshMs) : null;
  refresh?.unref();

  const shardOf = (vin: string) => map.owner[bucketOf(vin)]!;
  return {
    sharded: true,
    count: dbs.length,
    db(index) {
      const d = dbs[index];
      if (!d) throw new RangeError(`no shard ${index}: SHARD_URLS names ${dbs.length}`);
      return d;
    },
    all: () => dbs,
    shardOf,
    dbOf: (vin) => dbs[shardOf(vin)]!,
    label: (i) => `shard${i} ${labels[i] ?? '?'}`,
    isMoving: (vin) => map.moving[bucketOf(vin)] === 1,
    onChange(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    reload,
    async close() {
      if (refresh) clearInterval(refresh);
      listeners.clear();
      await stopListening();
      await closeAll();
    },
  };
}
