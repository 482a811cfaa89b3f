// The one seam between the storage code and a PostgreSQL server. Repositories and the
// batch writer speak SQL through `Db`; which server answers is app/'s choice.
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

export interface Queryable {
  /** `name`: prepare the statement once per connection under this name (the same text every time). */
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[], name?: string): Promise<QueryResult<R>>;
}

/** A connection inside a transaction that also speaks COPY … FROM STDIN. */
export interface CopyQueryable extends Queryable {
  /** COPY … FROM STDIN with these bytes. */
  copyFrom(sql: string, data: Buffer): Promise<void>;
  /**
   * Runs these statements (no parameters) and COMMIT, in one round trip; returns each
   * statement's result. The transaction ends here (transaction() sends no COMMIT of its own).
   */
  commitWith<R = Record<string, unknown>>(statements: readonly string[]): Promise<QueryResult<R>[]>;
}

/** Options of CopyCapability#transaction. */
export interface CopyTransactionOptions {
  /** Statements (no parameters) run with BEGIN, in the same round trip (session settings, temporary tables). */
  begin?: string;
}

/** The COPY protocol, where the backend speaks it (pg; not PGlite). */
export interface CopyCapability {
  /**
   * Runs `COPY (…) TO STDOUT` and returns everything it sent, in one buffer. The caller
   * bounds the size (LIMIT). With `into`, the bytes are copied there and a view of it is
   * returned, as long as they fit (a caller that reuses its buffers makes no garbage per
   * query); else a new buffer.
   */
  copyOut(sql: string, into?: Buffer): Promise<Buffer>;
  /**
   * Runs fn inside BEGIN/COMMIT on one connection that speaks COPY FROM; ROLLBACK when it
   * throws. Each round trip waits for the event loop too, which ingest keeps busy: with
   * `begin` and commitWith a batch takes 4 round trips instead of 8.
   */
  transaction<T>(fn: (tx: CopyQueryable) => Promise<T>, opts?: CopyTransactionOptions): Promise<T>;
}

export interface Db extends Queryable {
  /** 'timescaledb' when the extension is loaded in this database, else 'postgres'. Set by migrate(). */
  readonly kind: string;
  /** The COPY protocol, or null where the backend does not speak it. Fixed when the Db is built. */
  readonly copy: CopyCapability | null;
  /** Runs fn inside BEGIN/COMMIT on one connection; ROLLBACK when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * LISTEN on a channel; returns a function that stops listening. `onDown` fires when the
   * listening connection is lost (notifications may be missed from then on), `onUp` when
   * it is back: the caller must then reload whatever the notifications keep fresh.
   */
  listen(channel: string, onMessage: (payload: string) => void, hooks?: { onDown?: () => void; onUp?: () => void; /** suffix of the connection's application_name (default "listen") */ role?: string }): Promise<() => Promise<void>>;
  /** Pool usage, for metrics. */
  stats(): { total: number; idle: number; waiting: number };
  close(): Promise<void>;
}

/** A Db whose backend speaks COPY. */
export interface CopyDb extends Db {
  readonly copy: CopyCapability;
}

/** True when `db` speaks COPY: decided once, where the Db's user is built. */
export function hasCopy(db: Db): db is CopyDb {
  return db.copy !== null;
}

export interface PgDbOptions {
  /** Most pool connections. Default 10. */
  max?: number;
  /** Give up acquiring a connection after this long, ms. Default 5000. */
  connectionTimeoutMs?: number;
  /** Name shown in pg_stat_activity. */
  applicationName?: string;
  onError?: (err: Error) => void;
}

/**
 * The type parsers of this project's connections, given to each pool and client (pg's
 * global parsers stay untouched): int8 → number, since our bigint columns (seq, ids,
 * counts) stay well below 2^53.
 */
export function typeParsers(): pg.TypeOverrides {
  const types = new pg.TypeOverrides();
  types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));
  return types;
}

export function createPgDb(connectionString: string, opts: PgDbOptions = {}): CopyDb & { setKind(kind: string): void } {
  const types = typeParsers();
  const pool = new pg.Pool({
    connectionString,
    types,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectionTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    application_name: opts.applicationName ?? 'cardata-gateway',
  });
  // An idle client losing its connection must not crash the process: the pool drops it.
  const onPoolError = (err: Error) => opts.onError?.(err);
  pool.on('error', onPoolError);
  let kind = 'postgres';
  const listeners = new Set<pg.Client>();

  /** A simple query of several statements: node-pg gives one result per statement (its typings know of one). */
  async function queryAll(client: pg.PoolClient, text: string): Promise<pg.QueryResult[]> {
    const r: pg.QueryResult | pg.QueryResult[] = await client.query(text);
    return Array.isArray(r) ? r : [r];
  }

  /** BEGIN/COMMIT on one pooled connection; ROLLBACK when fn throws. */
  async function transaction<T>(fn: (tx: CopyQueryable) => Promise<T>, opts: CopyTransactionOptions = {}): Promise<T> {
    const client = await pool.connect();
    let broken = false;
    let committed = false;
    // While checked out, pg-pool listens for nothing on the client: an error between two
    // statements (the server gone, e.g. a database failover: FATAL 57P01) would be an
    // unhandled 'error' event and end the process. The next statement fails instead.
    const onCheckedOutError = (err: Error) => {
      broken = true;
      onPoolError(err);
    };
    client.on('error', onCheckedOutError);
    try {
      // Several statements in one simple query: the transaction block BEGIN opens stays open after it.
      await client.query(opts.begin ? `BEGIN; ${opts.begin}` : 'BEGIN');
      const tx: CopyQueryable = {
        async query<R>(text: string, params?: readonly unknown[]) {
          const r = await client.query(text, params as unknown[] | undefined);
          return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
        },
        async copyFrom(sql: string, data: Buffer) {
          const stream = client.query(copyFrom(sql));
          await pipeline(Readable.from([data]), stream);
        },
        async commitWith<R>(statements: readonly string[]) {
          // A failing statement skips the rest of the query, COMMIT included: the catch below rolls back.
          const results = await queryAll(client, [...statements, 'COMMIT'].join(';\n'));
          committed = true;
          return results.slice(0, statements.length).map((x) => ({ rows: x.rows as R[], rowCount: x.rowCount ?? 0 }));
        },
      };
      const out = await fn(tx);
      if (!committed) await client.query('COMMIT');
      return out;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw err;
    } finally {
      client.removeListener('error', onCheckedOutError);
      client.release(broken);
    }
  }

  const copy: CopyCapability = {
    transaction,
    async copyOut(sql: string, into?: Buffer): Promise<Buffer> {
      const client = await pool.connect();
      let failed: unknown = null;
      // As in transaction(): an error while checked out fails the COPY, not the process.
      const onCheckedOutError = (err: Error) => {
        failed ??= err;
        onPoolError(err);
      };
      client.on('error', onCheckedOutError);
      try {
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const c of client.query(copyTo(sql)) as AsyncIterable<Buffer>) {
          chunks.push(c);
          size += c.length;
        }
        if (!into || size > into.length) return Buffer.concat(chunks, size);
        let at = 0;
        for (const c of chunks) at += c.copy(into, at);
        return into.subarray(0, size);
      } catch (err) {
        failed = err;
        throw err;
      } finally {
        // A connection whose COPY failed half-way is not handed out again.
        client.removeListener('error', onCheckedOutError);
        client.release(failed ? (failed as Error) : undefined);
      }
    },
  };

  return {
    get kind() {
      return kind;
    },
    setKind(k: string) {
      kind = k;
    },
    async query<R>(text: string, params?: readonly unknown[], name?: string) {
      const r = name ? await pool.query({ name, text, values: params as unknown[] }) : await pool.query(text, params as unknown[] | undefined);
      return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
    },
    copy,
    transaction,
    async listen(channel, onMessage, hooks) {
      if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`bad channel name ${channel}`);
      let stopped = false;
      let client: pg.Client | null = null;
      let retryTimer: NodeJS.Timeout | null = null;
      const connect = async (isReconnect: boolean): Promise<void> => {
        const c = new pg.Client({ connectionString, types, application_name: `${opts.applicationName ?? 'cardata-gateway'}-${hooks?.role ?? 'listen'}` });
        c.on('notification', (n) => {
          if (n.channel === channel) onMessage(n.payload ?? '');
        });
        c.on('error', (err) => {
          opts.onError?.(err);
          scheduleReconnect();
        });
        c.on('end', () => scheduleReconnect());
        await c.connect();
        await c.query(`LISTEN ${channel}`);
        client = c;
        listeners.add(c);
        // Notifications sent while we were away are lost: the caller reloads its state.
        if (isReconnect) hooks?.onUp?.();
      };
      const scheduleReconnect = () => {
        if (stopped || retryTimer) return;
        if (client) hooks?.onDown?.();
        if (client) {
          listeners.delete(client);
          client.removeAllListeners('end');
          client.end().catch(() => {});
          client = null;
        }
        retryTimer = setTimeout(() => {
          retryTimer = null;
          connect(true).catch(() => scheduleReconnect());
        }, 500);
        retryTimer.unref();
      };
      await connect(false);
      return async () => {
        stopped = true;
        if (retryTimer) clearTimeout(retryTimer);
        const c = client;
        client = null;
        if (c) {
          listeners.delete(c);
          c.removeAllListeners('end');
          await c.end().catch(() => {});
        }
      };
    },
    stats() {
      return { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount };
    },
    async close() {
      for (const c of listeners) await c.end().catch(() => {});
      listeners.clear();
      await pool.end();
    },
  };
}
