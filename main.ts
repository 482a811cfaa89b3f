// The composition root: reads the configuration, builds each part, wires them, starts
// them, and stops them in order. Nothing else in the code base creates a connection.
import net from 'node:net';
import http from 'node:http';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { pino, type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from './config/index.ts';
import { createPgDb, type Db } from './storage/driver/db.ts';
import { migrate } from './storage/driver/migrate.ts';
import { openShards, type Shards } from './storage/driver/shards.ts';
import { storeFailures } from './storage/errors.ts';
import { createBatchWriter, type BatchWriter, type WriterOptions } from './storage/writer/writer.ts';
import { createShardedWriter, type ShardedWriter } from './storage/writer/sharded-writer.ts';
import { createVehicleRepo, SECRET_CHANNEL } from './storage/repos/vehicles.ts';
import { createConsentRepo, CONSENT_CHANNEL } from './storage/repos/consent.ts';
import { createConsentCache, type ConsentCache } from './gateway/consent-cache.ts';
import { createIngest, type Ingest } from './gateway/ingest.ts';
import { createBroker, type Broker } from './gateway/broker.ts';
import { certVinOf } from './identity/cert.ts';
import { createAdmission } from './gateway/admission.ts';
import { watchCrl } from './gateway/crl.ts';
import { proxiedTlsEntry, proxyProtocolListener, type ProxyHeaderError } from './gateway/proxy-protocol.ts';
import { createMetrics } from './metrics/index.ts';
import { buildApp } from './api/app.ts';
import { newSecret } from './identity/secrets.ts';
import { createPgliteDb } from './storage/driver/pglite.ts';
import { createRightsRepo } from './storage/repos/rights.ts';
import { createReadRepo } from './storage/repos/reads.ts';
import { createSeriesRepo } from './storage/repos/series.ts';
import { buildLive, runRetention, type Live } from './shard-reads.ts';
import type { StreamStats } from './api/routes/stream.ts';
import { createCheckinRepo, createGrantRepo, createRecipientRepo, GRANT_CHANNEL } from './storage/repos/grants.ts';
import { enableCompression } from './storage/ops/retention.ts';
import { createSignIn, type SignIn } from './sign-in.ts';
import { runExclusive } from './storage/ops/schedule.ts';
import os from 'node:os';
import path from 'node:path';

function closeServer(server: net.Server): Promise<void> {
  return new Promise<void>((resolve) => server.close(() => resolve()));
}

function listen(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
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

export function createLogger(level: string): Logger {
  return pino({
    level,
    // Never log secrets, tokens or positions, whatever a caller passes in.
    redact: {
      paths: ['password', 'secret', 'token', 'adminToken', '*.password', '*.secret', '*.token', 'req.headers.authorization', 'location', '*.location', 'latitude', 'longitude', '*.latitude', '*.longitude', 'payload', '*.payload'],
      censor: '[redacted]',
    },
  });
}

/** What was opened, in order: a start that fails halfway closes it in reverse order. */
export class OpenedStack {
  private readonly items: { what: string; close: () => unknown }[] = [];
  constructor(private readonly log: Logger) {}
  push(what: string, close: () => unknown): void {
    this.items.push({ what, close });
  }
  /** Closes everything opened, newest first; a failing close is logged and the rest still closed. */
  async unwind(): Promise<void> {
    for (let it = this.items.pop(); it; it = this.items.pop()) {
      try {
        await it.close();
      } catch (err) {
        this.log.warn({ event: 'start_cleanup_failed', what: it.what, err: (err as Error).message }, 'could not close after a failed start');
      }
    }
  }
}

/** The gateway's parts, built and wired but not yet listening. */
export interface BuiltGateway {
  readonly config: Config;
  readonly log: Logger;
  readonly instance: string;
  readonly db: Db;
  /** The API's own pool (the same Db as `db` on the embedded database). */
  readonly apiDb: Db;
  /** Telemetry shards of ingest (writer pools); without SHARD_URLS one shard: `db` itself. */
  readonly shards: Shards;
  /** Telemetry shards of the API (read pools); without SHARD_URLS one shard: `apiDb` itself. */
  readonly apiShards: Shards;
  /** /metrics on its own listener (METRICS_PORT), or null: served on the HTTP port. */
  readonly metricsServer: http.Server | null;
  readonly opened: OpenedStack;
  readonly prom: ReturnType<typeof createMetrics>;
  /** The batch writer; with SHARD_URLS one per shard behind one interface (README "Sharding"). */
  readonly writer: BatchWriter | ShardedWriter;
  readonly consents: ConsentCache;
  /** The consent, ownership or stored data of `vin` changed (here, or elsewhere by NOTIFY): drop what is cached of it, recheck its streams. */
  readonly vehicleChanged: (vin: string) => void;
  readonly ingest: Ingest;
  readonly broker: Broker;
  /** null when client certificates are required: the plain port stays closed. */
  readonly mqttServer: net.Server | null;
  /** The TLS server, or behind a balancer (MQTT_PROXY_PROTOCOL) the TCP listener in front of it. */
  readonly mqttsServer: net.Server | null;
  /** The TLS server itself (its secure context is replaced when the CRL changes). */
  readonly tlsServer: tls.Server | null;
  readonly tlsFiles: { cert: Buffer; key: Buffer; ca: Buffer | undefined } | undefined;
  readonly app: FastifyInstance;
  readonly adminToken: string;
  /** Live streams: the tailer, the stream log, whether commits are announced by NOTIFY. */
  readonly live: Live & { stats: () => StreamStats };
  readonly signIn: SignIn;
}

/** The MQTTS server's secure context: certificate, key, client CA and revocation list. */
function tlsContext(files: { cert: Buffer; key: Buffer; ca: Buffer | undefined }, crl?: Buffer): tls.SecureContextOptions {
  return { cert: files.cert, key: files.key, minVersion: 'TLSv1.2', ...(files.ca ? { ca: files.ca } : {}), ...(crl ? { crl } : {}) };
}

/**
 * Builds every part and wires them; opens only the database (the pool connects lazily;
 * PGlite opens its files). Nothing listens yet. What it opens is on `opened`.
 */
export async function buildGateway(config: Config, baseLog: Logger, opened: OpenedStack = new OpenedStack(baseLog)): Promise<BuiltGateway> {
  const instance = config.instanceId ?? `${os.hostname()}-${process.pid}`;
  const log = baseLog.child({ instance });
  // No DATABASE_URL: the embedded PostgreSQL (PGlite) keeps its files in DATA_DIR.
  const db = config.databaseUrl
    ? createPgDb(config.databaseUrl, {
        max: config.dbPoolMax,
        onError: (err) => log.warn({ event: 'db_connection_error', err: err.message }, 'database connection error'),
      })
    : await createPgliteDb(path.resolve(config.dataDir));
  opened.push('database', () => db.close());
  // API reads (exports, reports, readiness) get a pool of their own: however many run, the
  // writer's connections, and with them the PUBACKs, are never theirs to take.
  const apiDb = config.databaseUrl
    ? createPgDb(config.databaseUrl, {
        max: config.dbApiPoolMax,
        onError: (err) => log.warn({ event: 'db_connection_error', pool: 'api', err: err.message }, 'database connection error'),
      })
    : db;
  if (apiDb !== db) opened.push('API database', () => apiDb.close());
  // SHARD_URLS: telemetry on the shards (README "Sharding"). The ingest side migrates the
  // control database and every shard and fills the map on first start, before any row
  // can go anywhere; the API's pools open after it. Unset: one shard, the database itself.
  const shardError = (pool: string) => (err: Error, shard: string) => log.warn({ event: 'db_connection_error', pool, shard, err: err.message }, 'shard connection error');
  const shards = await openShards(db, config.shardUrls, {
    role: 'ingest',
    max: config.dbPoolMax,
    onError: shardError('ingest'),
    onMigrated: (shard) => log.info({ event: 'shard_migrated', shard }, 'shard migrated on its first use (it did not answer at start)'),
  });
  opened.push('shards', () => shards.close());
  const apiShards = await openShards(apiDb, config.shardUrls, { role: 'api', max: config.dbApiPoolMax, prepare: false, onError: shardError('api') });
  opened.push('API shards', () => apiShards.close());

  // The `instance` label only when named (INSTANCE_ID): a lone process keeps plain series.
  const prom = createMetrics(config.instanceId ? { instance } : {});
  const metrics = prom.gateway;
  // Live streams: one tailer of the stream log (per shard); commits here wake it at once,
  // commits on other instances by NOTIFY (README "Live CarData"). On the API pools: the
  // stream reads never take the writer's connections.
  const live = buildLive(config, apiShards, shards, log);
  const hub = live.hub;
  const writerOptions = (shard?: string, index?: number): WriterOptions => ({
    // PGlite runs on this thread: smaller statements keep the event loop responsive.
    batchMaxRows: config.databaseUrl ? config.writer.batchMaxRows : Math.min(config.writer.batchMaxRows, 1000),
    maxPendingRows: config.writer.maxPendingRows,
    concurrency: config.writer.concurrency,
    lingerMs: config.writer.lingerMs,
    lingerRows: config.writer.lingerRows,
    retryMaxMs: config.writer.retryMaxMs,
    onBatch: (stats) => {
      prom.writer.onBatch(stats);
      // Sharded: only that shard's tailer reads its log, and the NOTIFY goes out on that shard.
      live.committed(index, { inserted: stats.telemetryInserted > 0, tx: stats.telemetryTx, rows: stats.telemetry });
    },
    onError: (err, willRetry) => {
      prom.writer.onError(willRetry);
      log.warn({ event: 'write_failed', ...(shard ? { shard } : {}), err: (err as Error).message, will_retry: willRetry }, willRetry ? 'write failed, retrying' : 'write refused');
    },
  });
  // With shards, one writer each (own queue, bound, retries): a shard that is down holds
  // back only its own vehicles. WRITER_MAX_PENDING_ROWS and WRITER_CONCURRENCY are per shard.
  const writer = shards.sharded
    ? createShardedWriter(
        shards,
        shards.all().map((d, i) => createBatchWriter(d, writerOptions(shards.label(i), i))),
      )
    : createBatchWriter(db, writerOptions());
  const streamStats: { get?: () => StreamStats } = {};
  const streams = (): StreamStats => streamStats.get?.() ?? { open: 0, bufferedBytes: 0, maxBufferedBytes: 0, ended: {} };
  prom.setSources({
    writerPending: () => writer.pending(),
    pool: () => db.stats(),
    streams,
    streamTail: () => {
      const h = live.heldCounts();
      return { ...hub.stats(), recordsHeld: h.held, recordsRead: h.read };
    },
    ...(shards.sharded ? { shards: () => shardHealth() } : {}),
  });
  opened.push('batch writer', () => writer.close(0));
  const vehicles = createVehicleRepo(db);
  // The cache reads through a repository of its own; the one the API writes through tells
  // the cache of each change it commits (declared after the cache it invalidates).
  const consents = createConsentCache({ source: createConsentRepo(db), horizonMs: config.ingest.maxRecordAgeMs, metrics });
  // A change made through this process's API is in force here before the API answers 200;
  // the NOTIFY that follows carries it to every other process.
  const vehicleChanged = (vin: string): void => {
    consents.invalidate(vin);
    live.forget(vin);
    hub.invalidate(vin);
  };
  const changeHooks = { onCommitted: vehicleChanged };
  const consentRepo = createConsentRepo(apiDb, changeHooks, apiShards);
  const ingest = createIngest({
    sink: writer,
    consents,
    limits: config.ingest,
    metrics,
    onQuarantine: (vin, reason, detail) => log.info({ event: 'message_quarantined', vin, reason, detail }, 'message quarantined'),
    onConsentUnavailable: (vin, err) => log.warn({ event: 'consent_unavailable', vin, err: err.message }, 'consent could not be read; the message waits'),
  });
  const broker = await createBroker(
    {
      connectTimeoutMs: config.mqtt.connectTimeoutMs,
      authFailuresMax: config.mqtt.authFailuresMax,
      authFailuresPerVinMax: config.admission.authFailuresPerVinMax,
      authFailureWindowMs: config.mqtt.authFailureWindowMs,
      authConcurrency: config.admission.authConcurrency,
      secretScryptCost: config.secretScryptCost,
      requireClientCert: config.mqtt.requireClientCert,
    },
    { ingest, credentials: vehicles, consents, metrics, log },
  );
  opened.push('MQTT broker', () => broker.close());

  // What a socket may cost before it authenticates (first packet, per address, in total).
  const admission = createAdmission(
    { maxPacketBytes: config.mqtt.maxPacketBytes, maxConnectBytes: config.admission.maxConnectBytes, maxConnectionsPerAddress: config.admission.maxConnectionsPerAddress, maxPreauthBytes: config.admission.preauthMaxBytes },
    { broker, metrics, log },
  );
  // remote: the client's address from a PROXY header (behind a load balancer), else the peer's.
  const accept = (socket: net.Socket, certVin?: string | null, remote?: string) => admission.accept(socket, certVin, remote);
  const proxyOpts = {
    timeoutMs: config.mqtt.connectTimeoutMs,
    onError: (err: ProxyHeaderError, socket: net.Socket) => {
      metrics.refused(err.code);
      log.info({ event: 'mqtt_proxy_header_refused', err: err.message, remote: socket.remoteAddress }, 'connection closed: no valid PROXY header');
    },
  };
  // With client certificates required the plain port stays closed: a secret alone must
  // not be a way in.
  let mqttServer: net.Server | null = null;
  if (!config.mqtt.requireClientCert) {
    // noDelay: with acks held for the commit, Nagle would add up to 40 ms per PUBACK.
    mqttServer = net.createServer(
      { noDelay: true },
      config.mqtt.proxyProtocol ? proxyProtocolListener((socket, src) => accept(socket, undefined, src?.address), proxyOpts) : (socket) => accept(socket),
    );
    mqttServer.maxConnections = config.mqtt.maxConnections;
  }

  const tlsFiles = config.tls
    ? { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile), ca: config.tls.clientCaFile ? readFileSync(config.tls.clientCaFile) : undefined }
    : undefined;
  let mqttsServer: net.Server | null = null;
  let tlsServer: tls.Server | null = null;
  if (tlsFiles) {
    let sourceOf: (s: net.Socket) => { address: string } | null = () => null;
    tlsServer = tls.createServer(
      {
        ...tlsContext(tlsFiles, config.crl ? readFileSync(config.crl.file) : undefined),
        ...(tlsFiles.ca ? { requestCert: true, rejectUnauthorized: config.mqtt.requireClientCert } : {}),
      },
      (socket) => {
        socket.setNoDelay(true);
        accept(socket, tlsFiles.ca ? certVinOf(socket) : undefined, sourceOf(socket)?.address);
      },
    );
    // Behind a balancer passing TLS through: the PROXY header comes before the handshake.
    if (config.mqtt.proxyProtocol) {
      const entry = proxiedTlsEntry(tlsServer, proxyOpts);
      sourceOf = entry.sourceOf;
      mqttsServer = net.createServer({ noDelay: true }, entry.listener);
    } else {
      mqttsServer = tlsServer;
    }
    mqttsServer.maxConnections = config.mqtt.maxConnections;
    tlsServer.on('tlsClientError', (err) => log.info({ event: 'mqtt_tls_refused', err: err.message }, 'TLS handshake refused'));
  }

  const adminToken = config.adminToken ?? newSecret();
  const signIn = createSignIn(config, apiDb, log);
  const tokens = signIn.authenticator;
  const rights = createRightsRepo(apiDb, changeHooks, apiShards);
  const reads = createReadRepo(apiDb, apiShards);
  const recipients = createRecipientRepo(apiDb);
  const grants = createGrantRepo(apiDb);
  // The readiness probe is shared for READYZ_CACHE_MS: a storm of probes costs one query.
  let probe: { at: number; result: Promise<{ ok: boolean; at: string }> } | null = null;
  const answers = (d: Db) =>
    Promise.race([d.query('SELECT 1').then(() => true, () => false), new Promise<boolean>((r) => setTimeout(() => r(false), 1000).unref())]);
  // With shards the same probe asks every shard too (on the API's pools), in parallel.
  let shardProbe: { at: number; result: Promise<boolean[]> } | null = null;
  const probeDatabase = () => {
    const now = Date.now();
    if (!probe || now - probe.at >= config.api.readyzCacheMs) {
      probe = {
        at: now,
        result: answers(apiDb).then((ok) => ({ ok, at: new Date(now).toISOString() })),
      };
      if (apiShards.sharded) shardProbe = { at: now, result: Promise.all(apiShards.all().map(answers)) };
    }
    return probe.result;
  };
  /** Each shard: up when it answers the probe and its writer is not retrying failed writes. */
  const shardHealth = async (): Promise<{ shard: string; up: boolean; pendingRows: number }[]> => {
    await probeDatabase();
    const answered = (await shardProbe?.result) ?? [];
    return shards.all().map((_, i) => {
      const w = 'shard' in writer ? writer.shard(i) : writer;
      return { shard: String(i), up: (answered[i] ?? false) && !w.degraded, pendingRows: w.pending().rows };
    });
  };
  const app = await buildApp(
    {
      failures: storeFailures,
      readiness: async () => {
        const p = await probeDatabase();
        const broker = (mqttServer ?? mqttsServer)?.listening ?? false;
        if (!shards.sharded) return { broker, database: p.ok && !writer.degraded, databaseCheckedAt: p.at, instance };
        // Sharded: ready while the control database and at least one shard answer (README
        // "Sharding": every instance shares the shards, so taking instances out of rotation
        // for one shard would stop every vehicle instead of that shard's); the shards that
        // are down are named in x-shards-down.
        const h = await shardHealth();
        const down = h.filter((s) => !s.up).map((s) => s.shard);
        return { broker, database: p.ok && down.length < h.length, databaseCheckedAt: p.at, instance, shardsDown: down.length ? down.join(',') : 'none' };
      },
      admin: {
        adminToken,
        secretCost: config.secretScryptCost,
        vehicles: createVehicleRepo(apiDb),
        tokens: signIn.tokens,
        tokenTtlS: config.tokenTtlS,
        rights,
        mintedTokens: signIn.mintedTokens,
        onRevoked: signIn.onRevoked,
        accounts: signIn.accounts,
        recipients,
        onSecretRotated: (vin) => broker.closeSecretSessions(vin),
      },
      vehicles: { tokens, consents: consentRepo, rights },
      cardata: { tokens, consents: consentRepo, rights, reads, grants, obfcmReport: config.obfcmReport, exportsPerCaller: config.api.exportsPerCaller },
      grants: {
        tokens,
        recipients,
        grants,
        checkins: createCheckinRepo(apiDb),
        consents: consentRepo,
        rights,
        reads,
        exportsPerCaller: config.api.exportsPerCaller,
        limits: { grantMaxDays: config.grants.maxDays, checkinCodeTtlS: config.grants.checkinCodeTtlS, visitMaxHours: config.grants.visitMaxHours },
      },
      portal: { tokens, rights, series: createSeriesRepo(db, shards) },
      // The portal signs in against the configured issuer, else the embedded provider on its own origin.
      web: { oidc: { issuer: config.oidc.issuer ?? null, clientId: 'cardata-portal' } },
      // With METRICS_PORT, /metrics is served only there (see README "Metrics listener").
      ...(config.metricsListener ? {} : { metrics: { text: () => prom.text(), contentType: prom.contentType } }),
      stream: {
        tokens,
        rights,
        consents: consentRepo,
        feed: hub,
        positions: live.positions,
        grants,
        keepAliveMs: config.stream.keepAliveMs,
        bufferBytes: config.stream.bufferBytes,
        maxPerCaller: config.stream.maxPerCaller,
        fromWindowMs: config.stream.logRetentionDays * 86_400_000,
        fromMarginMs: config.ingest.maxClockSkewMs + 60_000,
        stats: streamStats,
      },
      oidc: { provider: signIn.provider },
    },
    {
      loggerInstance: log,
      ...(config.http.trustProxy.length ? { trustProxy: [...config.http.trustProxy] } : {}),
      requestTimeoutMs: config.api.requestTimeoutMs,
      headersTimeoutMs: config.api.headersTimeoutMs,
      ...(tlsFiles ? { https: { cert: tlsFiles.cert, key: tlsFiles.key } } : {}),
    },
  );
  const metricsServer = config.metricsListener
    ? http.createServer((req, res) => {
        if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
          return;
        }
        prom.text().then(
          (text) => res.writeHead(200, { 'content-type': prom.contentType }).end(text),
          () => res.writeHead(500).end(),
        );
      })
    : null;
  opened.push('HTTP app', () => app.close());
  return { config, log, instance, db, apiDb, shards, apiShards, metricsServer, opened, prom, writer, consents, vehicleChanged, ingest, broker, mqttServer, mqttsServer, tlsServer, tlsFiles, app, adminToken, signIn, live: { ...live, stats: streams } };
}

/**
 * Starts what was built: schema, consent feed, MQTT, HTTP, retention. Each listener is
 * pushed on `gw.opened` as it opens; when a step fails, everything opened is closed in
 * reverse order (the database last) and the error is rethrown.
 */
export async function startBuilt(gw: BuiltGateway): Promise<RunningGateway> {
  const { config, log, instance, db, opened, consents, vehicleChanged, mqttServer, mqttsServer, app, live } = gw;
  try {
    const mig = await migrate(db);
    log.info({ event: 'migrations_applied', applied: mig.applied, timescaledb: mig.timescaledb }, 'database schema up to date');
    const storage = config.databaseUrl
      ? `${db.kind} at ${redactUrl(config.databaseUrl)}`
      : `embedded PostgreSQL (PGlite) in ${path.resolve(config.dataDir)}`;

    await live.hub.start();
    opened.push('stream tail', () => live.hub.stop());
    // While the change feed is down, open streams check their terms every second.
    let streamRecheck: NodeJS.Timeout | null = null;
    const stopConsentFeed = await db.listen(
      CONSENT_CHANNEL,
      vehicleChanged,
      {
        // Changes may be missed while the feed is down: trust nothing cached until it is back.
        onDown: () => {
          consents.setTrusted(false);
          live.holdRows(false);
          streamRecheck ??= setInterval(() => live.hub.invalidateAll(), 1000);
          log.warn({ event: 'consent_feed_down' }, 'consent change feed lost; reading consent from the database until it is back');
        },
        onUp: () => {
          consents.invalidateAll();
          consents.setTrusted(true);
          live.holdRows(true);
          if (streamRecheck) clearInterval(streamRecheck);
          streamRecheck = null;
          live.hub.invalidateAll();
          log.info({ event: 'consent_feed_up' }, 'consent change feed restored; cache reloaded');
        },
      },
    );
    // Commits of other instances wake this one's stream tail.
    const stopStreamWake = await live.listen();
    // A revoked or ended grant (payload: its id) ends the streams through it.
    const stopGrantFeed = await db.listen(GRANT_CHANNEL, (id) => live.hub.invalidateGrant(id), { onUp: () => live.hub.invalidateAll(), role: 'stream-grants' });
    const stopListening = async (): Promise<void> => {
      if (streamRecheck) clearInterval(streamRecheck);
      await live.hub.stop();
      await stopGrantFeed();
      await stopStreamWake();
      await stopConsentFeed();
    };
    opened.push('consent feed', stopListening);
    await gw.signIn.open();
    opened.push('sign-in', () => gw.signIn.close());
    // A secret rotated anywhere (another instance, the CLI) closes the old secret's sessions here.
    const stopSecretFeed = await db.listen(SECRET_CHANNEL, (vin) => gw.broker.closeSecretSessions(vin));
    opened.push('secret rotation feed', stopSecretFeed);

    if (mqttServer) {
      await listen(mqttServer, config.mqtt.port, config.mqtt.host);
      opened.push('MQTT listener', () => closeServer(mqttServer));
    }
    let stopCrl = () => {};
    if (mqttsServer) {
      await listen(mqttsServer, config.mqtt.tlsPort, config.mqtt.host);
      opened.push('MQTTS listener', () => closeServer(mqttsServer));
      const files = gw.tlsFiles;
      const tlsServer = gw.tlsServer;
      if (config.crl && files && tlsServer) {
        // A revoked certificate stops working without a restart: new handshakes use the new
        // list; sessions already open keep running until they reconnect.
        stopCrl = watchCrl(config.crl.file, config.crl.checkIntervalMs, { apply: (crl) => tlsServer.setSecureContext(tlsContext(files, crl)), log });
        opened.push('CRL watch', stopCrl);
      }
    }
    const mqttPort = mqttServer ? (mqttServer.address() as net.AddressInfo).port : null;
    const mqttsPort = mqttsServer ? (mqttsServer.address() as net.AddressInfo).port : null;

    await app.listen({ port: config.http.port, host: config.http.host });
    const httpPort = (app.server.address() as net.AddressInfo).port;
    await gw.signIn.start({ scheme: gw.tlsFiles ? 'https' : 'http', host: config.http.host, port: httpPort });
    let metricsPort: number | null = null;
    const ms = gw.metricsServer;
    if (ms && config.metricsListener) {
      await listen(ms, config.metricsListener.port, config.metricsListener.host);
      opened.push('metrics listener', () => closeServer(ms));
      metricsPort = (ms.address() as net.AddressInfo).port;
    }

    // Once per RETENTION_INTERVAL_MS across all processes on this database (scheduled_runs
    // + an advisory lock); each process asks four times a period, so a period is taken up
    // soon after it begins even when the process that would have run it is gone.
    const retention = () => runRetention(config, gw.apiDb, gw.apiShards, gw.shards, live, instance, log);
    // Under a lock: several processes starting at once set the policies up one at a time.
    // Sharded: on every shard (where the hypertables hold rows).
    for (const d of gw.shards.sharded ? gw.shards.all() : [db]) await runExclusive(d, 'compression_setup', (tx) => enableCompression(tx)).then(
      (on) => on && log.info({ event: 'compression_enabled' }, 'TimescaleDB compression policies enabled'),
      (err: Error) => log.warn({ event: 'compression_failed', err: err.message }, 'could not enable TimescaleDB compression'),
    );
    const retentionTimer = setInterval(() => void retention(), Math.max(100, Math.floor(config.retention.intervalMs / 4)));
    retentionTimer.unref();
    void retention();

    let closing: Promise<void> | null = null;
    const close = (): Promise<void> => (closing ??= stopGateway(gw, { retentionTimer, stopListening, stopSecretFeed, stopCrl }));
    const oidcIssuer = gw.signIn.provider()?.issuer ?? null;
    return { mqttPort, mqttsPort, https: !!gw.tlsFiles, httpPort, metricsPort, adminToken: gw.adminToken, oidcIssuer, storage, db, instance, streams: live.stats, close };
  } catch (err) {
    await opened.unwind();
    throw err;
  }
}

/** Orderly stop: MQTT intake → drain → flush → HTTP (open streams end first) → stream tail and consent feed → database. */
export async function stopGateway(
  gw: BuiltGateway,
  started: { retentionTimer: NodeJS.Timeout; stopListening: () => Promise<void>; stopSecretFeed?: () => Promise<void>; stopCrl?: () => void },
): Promise<void> {
  const { config, log } = gw;
  const t0 = Date.now();
  log.info({ event: 'shutdown_started' }, 'stopping');
  clearInterval(started.retentionTimer);
  started.stopCrl?.();
  gw.mqttServer?.close();
  gw.mqttsServer?.close();
  const d = await gw.broker.drain(config.shutdownGraceMs);
  gw.ingest.close();
  await gw.writer.close(Math.max(0, config.shutdownGraceMs - (Date.now() - t0)));
  await gw.broker.close();
  await gw.app.close();
  await gw.signIn.close();
  if (gw.metricsServer?.listening) await closeServer(gw.metricsServer);
  await started.stopListening();
  await started.stopSecretFeed?.();
  await gw.apiShards.close();
  await gw.shards.close();
  if (gw.apiDb !== gw.db) await gw.apiDb.close();
  await gw.db.close();
  log.info({ event: 'shutdown_complete', drained: d.drained, left_unacknowledged: d.left, ms: Date.now() - t0 }, 'stopped');
}

/** Builds and starts the gateway; a start that fails halfway closes what it opened. */
export async function startGateway(config: Config, log: Logger = createLogger(config.logLevel)): Promise<RunningGateway> {
  const opened = new OpenedStack(log);
  let built: BuiltGateway;
  try {
    built = await buildGateway(config, log, opened);
  } catch (err) {
    await opened.unwind();
    throw err;
  }
  return startBuilt(built);
}

async function run(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  const log = createLogger(config.logLevel);
  let gw: RunningGateway;
  try {
    gw = await startGateway(config, log);
  } catch (err) {
    console.error(`cardata-gateway: cannot start: ${(err as Error).message}`);
    process.exit(1);
  }
  const host = (h: string) => (h === '0.0.0.0' ? '127.0.0.1' : h);
  const lines = [
    '',
    'cardata-gateway is running',
    `  instance: ${gw.instance}`,
    `  storage:  ${gw.storage}`,
    ...(gw.mqttPort !== null ? [`  MQTT:     mqtt://${host(config.mqtt.host)}:${gw.mqttPort}`] : ['  MQTT:     plain port closed (client certificates required)']),
    ...(gw.mqttsPort !== null ? [`  MQTTS:    mqtts://${host(config.mqtt.host)}:${gw.mqttsPort}${config.tls?.clientCaFile ? ' (client certificates: CN = VIN)' : ''}`] : []),
    `  HTTP:     ${gw.https ? 'https' : 'http'}://${host(config.http.host)}:${gw.httpPort}  (portal at /, GET /readyz, docs at /docs)`,
    ...(gw.oidcIssuer ? [`  sign-in:  ${gw.oidcIssuer}  (embedded OpenID Provider; accounts: POST /v1/admin/accounts)`] : []),
    ...(config.oidc.issuer ? [`  tokens of: ${config.oidc.issuer}`] : []),
  ];
  if (!config.adminToken) lines.push(`  admin token (generated, shown once): ${gw.adminToken}`);
  lines.push(
    '  try the simulator:',
    `    ADMIN_TOKEN=${config.adminToken ? '<your ADMIN_TOKEN>' : gw.adminToken} npm run simulate -- --vehicles 10 --rate 1 --duration 30 --http http://127.0.0.1:${gw.httpPort} --mqtt mqtt://127.0.0.1:${gw.mqttPort}`,
    '',
  );
  process.stdout.write(lines.join('\n') + '\n');
  let stopping = false;
  const stop = (signal: string) => {
    log.info({ event: 'signal', signal }, 'signal received');
    // Repeated while stopping (a wrapper that relays the signal again, e.g. tsx when the
    // child's acknowledgement is late on a loaded machine): the stop under way goes on.
    // With `once`, the second one met the default action and killed the process mid-stop.
    if (stopping) return;
    stopping = true;
    gw.close().then(
      () => process.exit(0),
      (err: Error) => {
        log.error({ event: 'shutdown_failed', err: err.message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void run();
