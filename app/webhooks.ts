// Wiring of the recipients' webhooks (docs/webhooks.md): a pool of their own (a delivery
// holds a connection while it waits for the receiver: it must never take the API's or the
// writers'), the repository, the URL policy, the API's service and the delivery worker.
// PostgreSQL only: on the embedded database a transaction held across an HTTP request
// would hold every other statement too.
import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import { createPgDb, type Db } from '../storage/driver/db.ts';
import type { Shards } from '../storage/driver/shards.ts';
import { createWebhookRepo } from '../storage/repos/webhooks.ts';
import type { WebhookService } from '../proto/webhooks.ts';
import { createUrlChecker } from '../webhooks/safety.ts';
import { createWebhookService } from '../webhooks/service.ts';
import { createWebhookWorker, type WorkerMetrics } from '../webhooks/worker.ts';
import type { Live } from './live.ts';

export interface Webhooks {
  service: WebhookService;
  /** Starts delivering (after the migrations). */
  start(): void;
  /** A commit here: deliveries may be due. */
  wake(): void;
  /** Stops the worker (deliveries in flight finish, bounded by their timeouts; leases given up). */
  stop(): Promise<void>;
  db: Db;
}

export function buildWebhooks(
  config: Config,
  deps: { apiShards: Shards; live: Live; log: Logger; instance: string; metrics: WorkerMetrics & { setEndpoints(f: () => Promise<Record<string, number>>): void } },
): Webhooks | null {
  if (!config.databaseUrl) return null;
  const c = config.webhooks;
  const db = createPgDb(config.databaseUrl, {
    max: c.concurrency + 3,
    applicationName: 'cardata-gateway webhooks',
    onError: (err) => deps.log.warn({ event: 'db_connection_error', pool: 'webhooks', err: err.message }, 'database connection error'),
  });
  const repo = createWebhookRepo(db);
  const checker = createUrlChecker({ allowHttp: c.allowHttp, allowPrivate: c.allowPrivate });
  const shardOf = (vin: string): number => deps.apiShards.shardOf(vin);
  const worker = createWebhookWorker(
    {
      instance: deps.instance,
      leaseMs: c.leaseMs,
      pollMs: c.pollMs,
      concurrency: c.concurrency,
      perEndpoint: c.perEndpoint,
      maxEndpoints: c.maxLeased,
      retryFirstMs: c.retryFirstMs,
      retryMaxMs: c.retryMaxMs,
      disableAfterMs: c.disableAfterMs,
      maxRecords: 100,
      startMarginMs: 5000,
      resolveEveryMs: 60_000,
      limits: { connectTimeoutMs: c.connectTimeoutMs, responseTimeoutMs: c.responseTimeoutMs, maxResponseBytes: c.maxResponseBytes },
    },
    { repo, logs: deps.live.logs, shardDbs: deps.apiShards.all(), shardOf, sharded: deps.apiShards.sharded, checker, metrics: deps.metrics, log: deps.log },
  );
  deps.metrics.setEndpoints(() => repo.countByState());
  const service = createWebhookService({
    repo,
    logs: deps.live.logs,
    shardDbs: deps.apiShards.all(),
    shardOf,
    checker,
    fromMarginMs: config.ingest.maxClockSkewMs + 60_000,
    wake: () => worker.wake(),
  });
  return { service, start: () => worker.start(), wake: () => worker.wake(), stop: () => worker.close(), db };
}
