// Connectivity recording (issue 26): the broker's connect and disconnect events written to
// the control database in the background, this process's liveness as an instance, the
// sweep that closes the connections of instances that died, and the feed that tells open
// streams of a vehicle's change (README "Connectivity").
import type { Logger } from 'pino';
import type { Db } from '../storage/driver/db.ts';
import { CONNECTIVITY_CHANNEL, LIVENESS_ROLE, type ConnectionEvent, type ConnectivityRepo } from '../storage/repos/connectivity.ts';
import type { ConnectivitySink } from '../gateway/ports.ts';

export interface ConnectivityRecorderOptions {
  /** How often every instance closes the connections of dead instances, ms. Default 2000. */
  sweepMs?: number;
  /** Retention of connectivity rows: as the owner's telemetry (RETENTION_AFTER_CONTRACT_DAYS, RETENTION_DAYS). */
  retention: { afterContractDays: number; telemetryDays: number; intervalMs: number };
  /** Writes waiting at most (the database is down): more are dropped and counted. Default 10000. */
  maxPending?: number;
}

export interface ConnectivityRecorder {
  /** What the broker reports to. */
  readonly sink: ConnectivitySink;
  /** Registers this instance (after the migrations), opens its liveness connection, starts the sweep. */
  start(name: string): Promise<void>;
  /** Waits for the writes in flight (the broker closed its clients), then stops. */
  stop(): Promise<void>;
  /** Writes dropped since start (database unavailable for too long). */
  readonly dropped: number;
}

export function createConnectivityRecorder(
  repo: ConnectivityRepo,
  db: Db,
  deps: { log: Logger; changed: (vin: string) => void },
  opts: ConnectivityRecorderOptions,
): ConnectivityRecorder {
  const { log } = deps;
  const maxPending = opts.maxPending ?? 10_000;
  /** Sessions open here now: opened again after a loss of the liveness connection. */
  const open = new Map<string, ConnectionEvent>();
  /** The last write of each vehicle: its events are written in the order the broker reported them. */
  const chains = new Map<string, Promise<void>>();
  let pending = 0;
  let dropped = 0;
  let started = false;
  let stopListen: (() => Promise<void>) | null = null;
  let sweepTimer: NodeJS.Timeout | null = null;
  let retentionTimer: NodeJS.Timeout | null = null;

  const run = (vin: string, what: string, fn: () => Promise<void>): void => {
    if (!started) return;
    if (pending >= maxPending) {
      dropped++;
      log.warn({ event: 'connectivity_write_dropped', what }, 'connectivity event dropped: too many writes waiting');
      return;
    }
    pending++;
    const prev = chains.get(vin) ?? Promise.resolve();
    const next = prev
      .then(fn)
      .catch((err: Error) => log.warn({ event: 'connectivity_write_failed', what, err: err.message }, 'connectivity event not written'))
      .finally(() => {
        pending--;
        if (chains.get(vin) === next) chains.delete(vin);
      });
    chains.set(vin, next);
  };

  const sweep = async (): Promise<void> => {
    try {
      const vins = await repo.sweep();
      if (vins.length) log.info({ event: 'connectivity_instance_lost', vehicles: vins.length }, 'connections of a dead instance closed');
    } catch (err) {
      log.warn({ event: 'connectivity_sweep_failed', err: (err as Error).message }, 'connectivity sweep failed');
    }
  };

  return {
    get dropped() {
      return dropped;
    },
    sink: {
      connected(session, vin, at) {
        const e = { session, vin, connectedAt: at };
        open.set(session, e);
        run(vin, 'connect', () => repo.connected(e));
      },
      disconnected(session, vin, connectedAt, at, reason) {
        open.delete(session);
        run(vin, 'disconnect', () => repo.disconnected({ session, vin, connectedAt, at, reason }));
      },
      refused(vin, at) {
        run(vin, 'refused', () => repo.refused(vin, at));
      },
    },
    async start(name) {
      const key = await repo.register(name);
      started = true;
      // The liveness connection: while it is open this instance counts as alive (its
      // application_name names the key); it also carries every instance's changes here.
      stopListen = await db.listen(CONNECTIVITY_CHANNEL, deps.changed, {
        role: `${LIVENESS_ROLE}:${key}`,
        onUp: () => {
          // Away for a while: another instance may have closed our rows as lost. Open them again.
          repo.reopen([...open.values()]).catch((err: Error) => log.warn({ event: 'connectivity_reopen_failed', err: err.message }, 'could not reopen connections'));
        },
      });
      await sweep();
      sweepTimer = setInterval(() => void sweep(), opts.sweepMs ?? 2000);
      sweepTimer.unref();
      const retain = () =>
        repo
          .retention(opts.retention.afterContractDays, opts.retention.telemetryDays)
          .then((n) => n > 0 && log.info({ event: 'connectivity_retention', deleted: n }, 'connectivity retention applied'))
          .catch((err: Error) => log.warn({ event: 'connectivity_retention_failed', err: err.message }, 'connectivity retention failed'));
      void retain();
      retentionTimer = setInterval(() => void retain(), opts.retention.intervalMs);
      retentionTimer.unref();
    },
    async stop() {
      if (sweepTimer) clearInterval(sweepTimer);
      if (retentionTimer) clearInterval(retentionTimer);
      // The broker has closed its clients: their disconnects are being written.
      const deadline = Date.now() + 5000;
      while (chains.size > 0 && Date.now() < deadline) await Promise.race([Promise.allSettled([...chains.values()]), new Promise((r) => setTimeout(r, 100))]);
      started = false;
      await stopListen?.();
    },
  };
}
