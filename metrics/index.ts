// Prometheus metrics of one gateway process. Built by app/gateway.ts, handed to each part as
// plain callbacks (the parts never import prom-client), scraped at GET /metrics.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface MetricsSources {
  writerPending(): { rows: number };
  pool(): { total: number; idle: number; waiting: number };
  /** Live streams (optional): open, unread bytes, ended by reason since start. */
  streams?(): { open: number; bufferedBytes: number; ended: Record<string, number> };
  /** The stream log's tail (optional): subscribers, vehicles they follow, its horizon (a transaction id) and read cycles since start. */
  streamTail?(): { subscribers: number; vehicles: number; horizon: number; cycles: number; recordsHeld?: number; recordsRead?: number };
  /** Telemetry shards (SHARD_URLS only): each answering and writing, and the rows its writer holds. */
  shards?(): Promise<{ shard: string; up: boolean; pendingRows: number }[]>;
}

export interface MetricsOptions {
  /**
   * Name of this process, set as an `instance` label on every series: with several
   * processes behind a load balancer, a sum across them stays possible and each one is
   * told apart. (Prometheus sets its own `instance` target label: scrape with
   * `honor_labels: true` to keep this one, or it is kept as `exported_instance`.)
   */
  instance?: string;
}

export function createMetrics(opts: MetricsOptions = {}) {
  const registry = new Registry();
  if (opts.instance !== undefined) registry.setDefaultLabels({ instance: opts.instance });
  collectDefaultMetrics({ register: registry });

  const connected = new Gauge({ name: 'cardata_mqtt_connected_vehicles', help: 'Vehicles connected over MQTT', registers: [registry] });
  const received = new Counter({ name: 'cardata_messages_received_total', help: 'MQTT telemetry messages received', labelNames: ['qos'], registers: [registry] });
  const stored = new Counter({ name: 'cardata_records_stored_total', help: 'Telemetry records committed (including resent duplicates)', registers: [registry] });
  const quarantined = new Counter({ name: 'cardata_records_quarantined_total', help: 'Messages or records quarantined, by reason code', labelNames: ['reason'], registers: [registry] });
  const refused = new Counter({ name: 'cardata_mqtt_refused_total', help: 'Connections, publishes and subscriptions refused, by reason code', labelNames: ['reason'], registers: [registry] });
  const batchRows = new Histogram({
    name: 'cardata_write_batch_rows',
    help: 'Rows per database statement',
    buckets: [1, 10, 50, 100, 500, 1000, 2000, 5000, 10000],
    registers: [registry],
  });
  const writeSeconds = new Histogram({
    name: 'cardata_write_duration_seconds',
    help: 'Duration of one batch statement',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const puback = new Histogram({
    name: 'cardata_puback_latency_seconds',
    help: 'From PUBLISH received to PUBACK released (data durable), QoS 1',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [registry],
  });
  const failures = new Counter({ name: 'cardata_write_failures_total', help: 'Failed batch statements', labelNames: ['will_retry'], registers: [registry] });
  const consentCache = new Counter({ name: 'cardata_consent_cache_events_total', help: 'Consent cache hits, misses and reloads', labelNames: ['event'], registers: [registry] });

  // Consulted on every message: children resolved once, like received0/1 below.
  const cacheEvents = { hit: consentCache.labels('hit'), miss: consentCache.labels('miss'), reload: consentCache.labels('reload') };
  const received0 = received.labels('0');
  const received1 = received.labels('1');
  let sources: MetricsSources | null = null;
  new Gauge({
    name: 'cardata_writer_pending_rows',
    help: 'Rows held by the batch writer (queued or being written)',
    registers: [registry],
    collect() {
      if (sources) this.set(sources.writerPending().rows);
    },
  });
  new Gauge({
    name: 'cardata_db_pool_connections',
    help: 'Database pool connections by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      if (!sources) return;
      const p = sources.pool();
      this.set({ state: 'total' }, p.total);
      this.set({ state: 'idle' }, p.idle);
      this.set({ state: 'waiting' }, p.waiting);
    },
  });

  new Gauge({
    name: 'cardata_stream_open',
    help: 'Open live streams (SSE) on this instance',
    registers: [registry],
    collect() {
      const st = sources?.streams?.();
      if (st) this.set(st.open);
    },
  });
  new Gauge({
    name: 'cardata_stream_buffered_bytes',
    help: 'Bytes written to live streams and not yet taken by the network, all streams',
    registers: [registry],
    collect() {
      const st = sources?.streams?.();
      if (st) this.set(st.bufferedBytes);
    },
  });
  new Gauge({
    name: 'cardata_stream_tail',
    help: 'The live streams\' tail of the stream log: subscribers, vehicles they follow, horizon (transaction id it has read up to; lowest over shards), read cycles since start, records taken from the rows this process wrote (records_held) and read from the database (records_read) since start',
    labelNames: ['value'],
    registers: [registry],
    collect() {
      const t = sources?.streamTail?.();
      if (!t) return;
      for (const k of ['subscribers', 'vehicles', 'horizon', 'cycles', 'recordsHeld', 'recordsRead'] as const) {
        const v = t[k];
        if (v !== undefined) this.set({ value: k === 'recordsHeld' ? 'records_held' : k === 'recordsRead' ? 'records_read' : k }, v);
      }
    },
  });
  new Gauge({
    name: 'cardata_stream_ended',
    help: 'Live streams the server ended since start, by reason (slow_consumer, ownership_ended, shutdown, error, ...)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      const st = sources?.streams?.();
      if (st) for (const [reason, n] of Object.entries(st.ended)) this.set({ reason }, n);
    },
  });

  // Recipients' webhooks (docs/webhooks.md).
  const whDeliveries = new Counter({ name: 'cardata_webhook_deliveries_total', help: 'Webhook deliveries answered 2xx, by kind (records, grant.created, grant.revoked, ...)', labelNames: ['kind'], registers: [registry] });
  const whRecords = new Counter({ name: 'cardata_webhook_records_delivered_total', help: 'Records delivered by webhooks (answered 2xx)', registers: [registry] });
  const whFailures = new Counter({ name: 'cardata_webhook_failures_total', help: 'Webhook deliveries that failed, by reason (http_5xx, http_4xx, redirect, timeout, connection, address_refused)', labelNames: ['reason'], registers: [registry] });
  const whRetries = new Counter({ name: 'cardata_webhook_retries_total', help: 'Webhook deliveries attempted again after a failure', registers: [registry] });
  const whLatency = new Histogram({
    name: 'cardata_webhook_delivery_latency_seconds',
    help: 'From the commit of the oldest record of a webhook delivery to its 2xx',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
    registers: [registry],
  });
  const whRequest = new Histogram({ name: 'cardata_webhook_request_seconds', help: 'Duration of one webhook POST (2xx)', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [registry] });
  const whBacklog = new Gauge({ name: 'cardata_webhook_backlog_records', help: 'Committed records not yet delivered to the endpoints this instance holds, by endpoint state (active, retrying)', labelNames: ['state'], registers: [registry] });
  let webhookEndpoints: (() => Promise<Record<string, number>>) | null = null;
  new Gauge({
    name: 'cardata_webhook_endpoints',
    help: 'Webhook endpoints by state (active, retrying, disabled), all instances',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      if (!webhookEndpoints) return;
      for (const [state, n] of Object.entries(await webhookEndpoints().catch(() => ({})))) this.set({ state }, n);
    },
  });

  return {
    registry,
    /** For the webhook worker (webhooks/worker.ts WorkerMetrics), and the endpoints' count by state. */
    webhooks: {
      delivered: (kind: string, records: number, latencyMs: number | null, requestMs: number) => {
        whDeliveries.inc({ kind });
        if (records) whRecords.inc(records);
        if (latencyMs !== null) whLatency.observe(Math.max(0, latencyMs) / 1000);
        whRequest.observe(requestMs / 1000);
      },
      failed: (reason: string) => whFailures.inc({ reason }),
      retried: () => whRetries.inc(),
      backlog: (byState: Record<string, number>) => {
        for (const [state, n] of Object.entries(byState)) whBacklog.set({ state }, n);
      },
      setEndpoints: (f: () => Promise<Record<string, number>>) => {
        webhookEndpoints = f;
      },
    },
    setSources(s: MetricsSources) {
      sources = s;
      // Only with shards: without SHARD_URLS /metrics lists exactly what it always did.
      if (s.shards && !registry.getSingleMetric('cardata_shard_up')) {
        new Gauge({
          name: 'cardata_shard_up',
          help: 'Telemetry shard answers and its writer is not retrying failed writes (1) or not (0); SHARD_URLS only',
          labelNames: ['shard'],
          registers: [registry],
          async collect() {
            for (const x of (await sources?.shards?.()) ?? []) this.set({ shard: x.shard }, x.up ? 1 : 0);
          },
        });
        new Gauge({
          name: 'cardata_shard_writer_pending_rows',
          help: 'Rows held by the batch writer of each telemetry shard; SHARD_URLS only',
          labelNames: ['shard'],
          registers: [registry],
          async collect() {
            for (const x of (await sources?.shards?.()) ?? []) this.set({ shard: x.shard }, x.pendingRows);
          },
        });
      }
    },
    /** For the gateway (GatewayMetrics). */
    gateway: {
      // Label children resolved once: inc({qos}) would hash the labels on every message.
      messageReceived: (qos: number) => (qos === 1 ? received1 : qos === 0 ? received0 : received.labels(String(qos))).inc(),
      recordsStored: (n: number) => stored.inc(n),
      quarantined: (reason: string, n: number) => quarantined.inc({ reason }, n),
      refused: (reason: string) => refused.inc({ reason }),
      pubackLatency: (ms: number) => puback.observe(ms / 1000),
      connected: (delta: number) => connected.inc(delta),
      consentCache: (event: 'hit' | 'miss' | 'reload') => cacheEvents[event].inc(),
    },
    /** For the batch writer's hooks. */
    writer: {
      onBatch: (s: { telemetryRows: number; durationMs: number; items: number }) => {
        batchRows.observe(s.telemetryRows);
        writeSeconds.observe(s.durationMs / 1000);
      },
      onError: (willRetry: boolean) => failures.inc({ will_retry: String(willRetry) }),
    },
    text: () => registry.metrics(),
    contentType: registry.contentType,
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
