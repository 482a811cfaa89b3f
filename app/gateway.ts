// The composition of the gateway: builds each part, wires them, opens them in order, and
// closes them through one list of what was opened (app/resources.ts), the same for a start
// that fails halfway and for an orderly stop. Telemetry always lives on N >= 1 shards:
// without SHARD_URLS the one shard is the database itself.
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import type { StreamStats } from '../proto/stream.ts';
import { createPgDb, type Db } from '../storage/driver/db.ts';
import { createPgliteDb } from '../storage/driver/pglite.ts';
import { migrate } from '../storage/driver/migrate.ts';
import { openShards } from '../storage/driver/shards.ts';
import { storeFailures } from '../storage/errors.ts';
import { createBatchWriter, type WriterOptions } from '../storage/writer/writer.ts';
import { createShardedWriter } from '../storage/writer/sharded-writer.ts';
import { createVehicleRepo } from '../storage/repos/vehicles.ts';
import { createConsentRepo } from '../storage/repos/consent.ts';
import { createRightsRepo } from '../storage/repos/rights.ts';
import { createReadRepo } from '../storage/repos/reads.ts';
import { replicaReads } from './read-replica.ts';
import { createSeriesRepo } from '../storage/repos/series.ts';
import { createCheckinRepo, createGrantRepo, createRecipientRepo } from '../storage/repos/grants.ts';
import { createConnectivityRepo } from '../storage/repos/connectivity.ts';
import { createConnectivityRecorder } from './connectivity.ts';
import { createConsentCache } from '../gateway/consent-cache.ts';
import { createIngest } from '../gateway/ingest.ts';
import { createBroker } from '../gateway/broker.ts';
import { createAdmission } from '../gateway/admission.ts';
import { watchCrl } from '../gateway/crl.ts';
import { createMetrics } from '../metrics/index.ts';
import { newSecret } from '../identity/secrets.ts';
import { buildApp } from '../api/app.ts';
import { createStreamSessions } from '../stream/sse.ts';
import { Resources } from './resources.ts';
import { closeServer, createMetricsServer, createMqttListeners, listen, portOf, readTlsFiles, tlsContext } from './listeners.ts';
import { createReadiness } from './readiness.ts';
import { buildLive } from './live.ts';
import { followChanges } from './feeds.ts';
import { scheduleRetention } from './retention-job.ts';
import { createSignIn } from './sign-in.ts';
import { createLogger } from './logger.ts';
import { buildWebhooks } from './webhooks.ts';

export { createLogger };

export interface RunningGateway {
  /** Plain MQTT port; null when client certificates are required (only MQTTS is open). */
  readonly mqttPort: number | null;
  /** MQTT over TLS port, when TLS is configured. */
  readonly mqttsPort: number | null;
  readonly https: boolean;
  readonly httpPort: number;
  /** The separate /metrics listener's port (METRICS_PORT), or null. */
  readonly metricsPort: number | null;
  readonly adminToken: string;
  /** Issuer of the embedded OpenID Provider, when it runs. */
  readonly oidcIssuer: string | null;
  readonly storage: string;
  readonly db: Db;
  /** Open live streams and what they hold (README "Live CarData"). */
  streams(): StreamStats;
  /** INSTANCE_ID, or "<hostname>-<pid>": in every log line, metric and /readyz answer. */
  readonly instance: string;
  /** Orderly stop: MQTT intake → drain → flush → HTTP → database. */
  close(): Promise<void>;
}

function redactUrl(u: string): string {
  try {
    const url = new URL(u);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '(unparsable url)';
  }
}

/**
 * Builds, wires and starts every part; a start that fails halfway closes what it opened
 * (newest first, the database last) and rethrows.
 */
export async function startGateway(config: Config, baseLog: Logger = createLogger(config.logLevel)): Promise<RunningGateway> {
  const instance = config.instanceId ?? `${os.hostname()}-${process.pid}`;
  const log = baseLog.child({ instance });
  const res = new Resources(log);
  try {
    return await open(config, log, instance, res);
  } catch (err) {
    await res.close();
    throw err;
  }
}

async function open(config: Config, log: Logger, instance: string, res: Resources): Promise<RunningGateway> {
  /** When the stop began: the drain and the writer's flush share SHUTDOWN_GRACE_MS from there. */
  let stopStartedAt = Date.now();
  // ---- Databases. No DATABASE_URL: the embedded PostgreSQL (PGlite) keeps its files in DATA_DIR.
  const db = config.databaseUrl
    ? createPgDb(config.databaseUrl, {
        max: config.dbPoolMax,
        onError: (err) => log.warn({ event: 'db_connection_error', err: err.message }, 'database connection error'),
      })
    : await createPgliteDb(path.resolve(config.dataDir));
  res.push('database', 'database', () => db.close());
  // API reads (exports, reports, portal, streams, readiness) get a pool of their own:
  // however many run, the writer's connections, and with them the PUBACKs, are never theirs.
  const apiDb = config.databaseUrl
    ? createPgDb(config.databaseUrl, {
        max: config.dbApiPoolMax,
        onError: (err) => log.warn({ event: 'db_connection_error', pool: 'api', err: err.message }, 'database connection error'),
      })
    : db;
  if (apiDb !== db) res.push('API database', 'database', () => apiDb.close());
  // The telemetry shards (README "Sharding"). The ingest side migrates the control
  // database and every shard and fills the map on first start, before any row can go
  // anywhere; the API's pools open after it. Without SHARD_URLS: one shard, the database.
  const shardError = (pool: string) => (err: Error, shard: string) => log.warn({ event: 'db_connection_error', pool, shard, err: err.message }, 'shard connection error');
  const shards = await openShards(db, config.shardUrls, {
    role: 'ingest',
    max: config.dbPoolMax,
    onError: shardError('ingest'),
    onMigrated: (shard) => log.info({ event: 'shard_migrated', shard }, 'shard migrated on its first use (it did not answer at start)'),
  });
  res.push('shards', 'database', () => shards.close());
  const apiShards = await openShards(apiDb, config.shardUrls, { role: 'api', max: config.dbApiPoolMax, prepare: false, onError: shardError('api') });
  res.push('API shards', 'database', () => apiShards.close());

  // ---- Ingest: live streams' tail, writers, consent cache, broker.
  // The `instance` label only when named (INSTANCE_ID): a lone process keeps plain series.
  const prom = createMetrics(config.instanceId ? { instance } : {});
  const metrics = prom.gateway;
  const live = buildLive(config, apiShards, shards, log);
  // Recipients' webhooks (PostgreSQL only): a pool of their own, closed with the databases.
  const webhooks = buildWebhooks(config, { apiShards, live, log, instance, metrics: prom.webhooks });
  if (webhooks) res.push('webhook database', 'database', () => webhooks.db.close());
  const writerOptions = (index: number): WriterOptions => ({
    // PGlite runs on this thread: smaller statements keep the event loop responsive.
    batchMaxRows: config.databaseUrl ? config.writer.batchMaxRows : Math.min(config.writer.batchMaxRows, 1000),
    maxPendingRows: config.writer.maxPendingRows,
    concurrency: config.writer.concurrency,
    lingerMs: config.writer.lingerMs,
    lingerRows: config.writer.lingerRows,
    retryMaxMs: config.writer.retryMaxMs,
    onBatch: (stats) => {
      prom.writer.onBatch(stats);
      // Only that shard's tailer reads its log, and the NOTIFY goes out on that shard.
      live.committed(index, { inserted: stats.telemetryInserted > 0, tx: stats.telemetryTx, rows: stats.telemetry });
      if (stats.telemetryInserted > 0) webhooks?.wake();
    },
    onError: (err, willRetry) => {
      prom.writer.onError(willRetry);
      log.warn({ event: 'write_failed', ...(shards.sharded ? { shard: shards.label(index) } : {}), err: (err as Error).message, will_retry: willRetry }, willRetry ? 'write failed, retrying' : 'write refused');
    },
  });
  // One writer per shard (own queue, bound, retries): a shard that is down holds back only
  // its own vehicles. WRITER_MAX_PENDING_ROWS and WRITER_CONCURRENCY are per shard.
  const writer = createShardedWriter(
    shards,
    shards.all().map((d, i) => createBatchWriter(d, writerOptions(i))),
  );
  res.push('batch writer', 'flush', () => writer.close(Math.max(0, config.shutdownGraceMs - (Date.now() - stopStartedAt))));
  // The cache reads through a repository of its own; the one the API writes through tells
  // the cache of each change it commits.
  const consents = createConsentCache({ source: createConsentRepo(db), horizonMs: config.ingest.maxRecordAgeMs, metrics });
  // A change made through this process's API is in force here before the API answers 200;
  // the NOTIFY that follows carries it to every other process.
  const vehicleChanged = (vin: string): void => {
    consents.invalidate(vin);
    live.forget(vin);
    live.hub.invalidate(vin);
  };
  const ingest = createIngest({
    sink: writer,
    consents,
    limits: config.ingest,
    metrics,
    onQuarantine: (vin, reason, detail) => log.info({ event: 'message_quarantined', vin, reason, detail }, 'message quarantined'),
    onConsentUnavailable: (vin, err) => log.warn({ event: 'consent_unavailable', vin, err: err.message }, 'consent could not be read; the message waits'),
  });
  // Connectivity (README "Connectivity"): the broker's connects and disconnects, written in
  // the background to the control database; a change reaches this process's open streams
  // by the NOTIFY every instance (this one too) listens to.
  let connectivityChanged = (_vin: string): void => {};
  const connectivityRepo = createConnectivityRepo(db, { single: !config.databaseUrl });
  const connectivity = createConnectivityRecorder(
    connectivityRepo,
    db,
    { log, changed: (vin) => connectivityChanged(vin) },
    { retention: { afterContractDays: config.retention.afterContractDays, telemetryDays: config.retention.telemetryDays, intervalMs: config.retention.intervalMs } },
  );
  const broker = await createBroker(
    {
      connectTimeoutMs: config.mqtt.connectTimeoutMs,
      ...config.mqtt.auth,
      secretScryptCost: config.secretScryptCost,
      requireClientCert: config.mqtt.requireClientCert,
    },
    { ingest, credentials: createVehicleRepo(db), consents, metrics, log, connectivity: connectivity.sink },
  );
  res.push('MQTT broker', 'broker', () => broker.close());
  let drained = { drained: true, left: 0 };
  res.push('MQTT intake', 'drain', async () => {
    drained = await broker.drain(config.shutdownGraceMs);
    ingest.close();
  });

  // What a socket may cost before it authenticates (first packet, per address, in total).
  const admission = createAdmission(
    { maxPacketBytes: config.mqtt.maxPacketBytes, maxConnectBytes: config.admission.maxConnectBytes, maxConnectionsPerAddress: config.admission.maxConnectionsPerAddress, maxPreauthBytes: config.admission.preauthMaxBytes },
    { broker, metrics, log },
  );
  const tlsFiles = readTlsFiles(config);
  const { mqttServer, mqttsServer, tlsServer } = createMqttListeners(config, tlsFiles, (socket, certVin, remote) => admission.accept(socket, certVin, remote), {
    log,
    refused: (code) => metrics.refused(code),
  });

  // ---- HTTP: the API's repositories on the API's pools, readiness, sign-in, streams.
  const changeHooks = { onCommitted: vehicleChanged };
  const consentRepo = createConsentRepo(apiDb, changeHooks, apiShards);
  const rights = createRightsRepo(apiDb, changeHooks, apiShards);
  // DATABASE_READ_URL: exports on a standby once it has replayed what the primary had at the
  // request's start (app/read-replica.ts); every other read on the primary.
  const readDb = config.read
    ? createPgDb(config.read.url, {
        max: config.dbApiPoolMax,
        applicationName: 'cardata-gateway-read',
        onError: (err) => log.warn({ event: 'db_connection_error', pool: 'read', err: err.message }, 'database connection error'),
      })
    : null;
  if (readDb) res.push('read database', 'database', () => readDb.close());
  const primaryReads = createReadRepo(apiDb, apiShards);
  const reads =
    readDb && config.read
      ? replicaReads({ primary: apiDb, replica: readDb, onPrimary: primaryReads, onReplica: createReadRepo(readDb), maxWaitMs: config.read.maxWaitMs, log })
      : primaryReads;
  const recipients = createRecipientRepo(apiDb);
  const grants = createGrantRepo(apiDb);
  // Status reads on the API's pool; with the embedded database this process is the one instance.
  const connectivityReads = createConnectivityRepo(apiDb, { single: !config.databaseUrl, ownKey: () => connectivityRepo.instanceKey });
  const adminToken = config.adminToken ?? newSecret();
  const signIn = createSignIn(config, apiDb, log);
  const tokens = signIn.authenticator;
  const sessions = createStreamSessions({ maxPerCaller: config.stream.maxPerCaller });
  // A revocation (here, or elsewhere by NOTIFY) ends the open streams of what it revoked.
  res.push('stream credential checks', 'http', signIn.onRevocation(() => sessions.recheckCredentials()));
  const health = createReadiness({
    apiDb,
    apiShards,
    writerOf: (i) => writer.shard(i),
    brokerListening: () => (mqttServer ?? mqttsServer)?.listening ?? false,
    signInReady: () => signIn.ready(),
    cacheMs: config.api.readyzCacheMs,
    instance,
  });
  prom.setSources({
    writerPending: () => writer.pending(),
    pool: () => db.stats(),
    streams: () => sessions.stats(),
    streamTail: () => {
      const h = live.heldCounts();
      return { ...live.hub.stats(), recordsHeld: h.held, recordsRead: h.read };
    },
    // Per-shard series only with SHARD_URLS: without it /metrics lists what it always did.
    ...(shards.sharded ? { shards: () => health.shardHealth() } : {}),
  });
  const app = await buildApp(
    {
      failures: storeFailures,
      readiness: health.readiness,
      admin: {
        adminToken,
        secretCost: config.secretScryptCost,
        vehicles: createVehicleRepo(apiDb),
        tokens: signIn.tokens,
        tokenTtlS: config.tokenTtlS,
        rights,
        mintedTokens: signIn.mintedTokens,
        onRevoked: signIn.onRevoked,
        revokeSubject: (issuer, subject) => signIn.revokeSubject(issuer, subject),
        issuers: () => signIn.issuers(),
        embeddedIssuer: () => signIn.provider()?.issuer ?? null,
        rotateSigningKey: () => signIn.rotateSigningKey(),
        accounts: signIn.accounts,
        recipients,
        serviceClients: {
          clients: signIn.serviceClients,
          remove: (recipientId, clientId) => signIn.removeServiceClient(recipientId, clientId),
          available: () => signIn.provider() !== null,
        },
        onSecretRotated: (vin) => broker.closeSecretSessions(vin),
      },
      vehicles: { tokens, consents: consentRepo, rights },
      cardata: { tokens, consents: consentRepo, rights, reads, grants, obfcmReport: config.obfcmReport, exportsPerCaller: config.api.exportsPerCaller, connectivity: connectivityReads },
      grants: {
        tokens,
        recipients,
        grants,
        checkins: createCheckinRepo(apiDb),
        consents: consentRepo,
        rights,
        reads,
        exportsPerCaller: config.api.exportsPerCaller,
        connectivity: connectivityReads,
        limits: { grantMaxDays: config.grants.maxDays, checkinCodeTtlS: config.grants.checkinCodeTtlS, visitMaxHours: config.grants.visitMaxHours },
      },
      portal: { tokens, rights, series: createSeriesRepo(apiDb, apiShards) },
      connectivity: { tokens, rights, consents: consentRepo, grants, connectivity: connectivityReads, series: createSeriesRepo(apiDb, apiShards) },
      // The storage in use is known once migrate() has run (below): asked per request.
      description: {
        storage: () => ({ engine: db.kind, shards: shards.all().length }),
        retention: { afterContractDays: config.retention.afterContractDays, telemetryDays: config.retention.telemetryDays, obfcmDays: config.retention.obfcmDays, streamLogDays: config.stream.logRetentionDays },
        sendIntervalMs: config.vehicleSendIntervalMs,
      },
      // The portal signs in against the configured issuer, else the embedded provider on its own origin.
      web: { oidc: { issuer: config.oidc.issuer ?? null, clientId: 'cardata-portal' } },
      // With METRICS_PORT, /metrics is served only there (see README "Metrics listener").
      ...(config.metricsListener ? {} : { metrics: { text: () => prom.text(), contentType: prom.contentType } }),
      stream: {
        tokens,
        rights,
        consents: consentRepo,
        feed: live.hub,
        positions: live.positions,
        grants,
        keepAliveMs: config.stream.keepAliveMs,
        bufferBytes: config.stream.bufferBytes,
        sessions,
        isRevokedNow: (p) => signIn.isRevokedNow(p),
        fromWindowMs: config.stream.logRetentionDays * 86_400_000,
        fromMarginMs: config.ingest.maxClockSkewMs + 60_000,
        connectivity: { reads: connectivityReads, series: createSeriesRepo(apiDb, apiShards) },
      },
      oidc: { provider: signIn.provider },
      webhooks: {
        tokens,
        grants,
        webhooks: webhooks?.service ?? null,
        maxPerRecipient: config.webhooks.maxPerRecipient,
        replayWindowMs: config.stream.logRetentionDays * 86_400_000,
      },
    },
    {
      loggerInstance: log,
      ...(config.http.trustProxy.length ? { trustProxy: [...config.http.trustProxy] } : {}),
      requestTimeoutMs: config.api.requestTimeoutMs,
      headersTimeoutMs: config.api.headersTimeoutMs,
      ...(tlsFiles ? { https: { cert: tlsFiles.cert, key: tlsFiles.key } } : {}),
    },
  );
  res.push('HTTP app', 'http', () => app.close());

  // ---- Start: schema, feeds, sign-in, listeners, retention.
  const mig = await migrate(db);
  log.info({ event: 'migrations_applied', applied: mig.applied, timescaledb: mig.timescaledb }, 'database schema up to date');
  await live.hub.start();
  if (webhooks) {
    webhooks.start();
    // Deliveries in flight finish (bounded by WEBHOOK_RESPONSE_TIMEOUT_MS) before the HTTP stage; the leases are given up.
    res.push('webhook deliveries', 'http', () => webhooks.stop());
  }
  res.push('stream tail', 'feeds', () => live.hub.stop());
  await followChanges({ db, consents, live, vehicleChanged, secretRotated: (vin) => broker.closeSecretSessions(vin), log }, (what, stop) => res.push(what, 'feeds', stop));
  connectivityChanged = (vin) => sessions.statusChanged(vin);
  res.push('connectivity', 'feeds', () => connectivity.stop());
  await connectivity.start(instance);
  // Pushed first: open() starts its LISTEN before it loads the lists, and a failed load must stop it too.
  res.push('sign-in', 'sign-in', () => signIn.close());
  await signIn.open();

  // A listener stops accepting at once; its connections end when the broker closes them.
  if (mqttServer) {
    await listen(mqttServer, config.mqtt.port, config.mqtt.host);
    res.push('MQTT listener', 'intake', () => void mqttServer.close());
  }
  if (mqttsServer) {
    await listen(mqttsServer, config.mqtt.tlsPort, config.mqtt.host);
    res.push('MQTTS listener', 'intake', () => void mqttsServer.close());
    if (config.crl && tlsFiles && tlsServer) {
      // A revoked certificate stops working without a restart: new handshakes use the new
      // list; sessions already open keep running until they reconnect.
      res.push('CRL watch', 'timers', watchCrl(config.crl.file, config.crl.checkIntervalMs, { apply: (crl) => tlsServer.setSecureContext(tlsContext(tlsFiles, crl)), log }));
    }
  }
  await app.listen({ port: config.http.port, host: config.http.host });
  const httpPort = portOf(app.server);
  await signIn.start({ scheme: tlsFiles ? 'https' : 'http', host: config.http.host, port: httpPort });
  let metricsPort: number | null = null;
  if (config.metricsListener) {
    const ms = createMetricsServer(prom);
    await listen(ms, config.metricsListener.port, config.metricsListener.host);
    res.push('metrics listener', 'http', () => closeServer(ms));
    metricsPort = portOf(ms);
  }
  res.push(
    'retention',
    'timers',
    await scheduleRetention({ config, control: apiDb, apiShards, shards, logs: live.logs, instance, log }),
  );

  const storage = config.databaseUrl ? `${db.kind} at ${redactUrl(config.databaseUrl)}` : `embedded PostgreSQL (PGlite) in ${path.resolve(config.dataDir)}`;
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      stopStartedAt = Date.now();
      log.info({ event: 'shutdown_started' }, 'stopping');
      await res.close();
      log.info({ event: 'shutdown_complete', drained: drained.drained, left_unacknowledged: drained.left, ms: Date.now() - stopStartedAt }, 'stopped');
    })());
  return {
    mqttPort: mqttServer ? portOf(mqttServer) : null,
    mqttsPort: mqttsServer ? portOf(mqttsServer) : null,
    https: !!tlsFiles,
    httpPort,
    metricsPort,
    adminToken,
    oidcIssuer: signIn.provider()?.issuer ?? null,
    storage,
    db,
    instance,
    streams: () => sessions.stats(),
    close,
  };
}
