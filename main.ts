// The composition root: reads the configuration, builds each part, wires them, starts
// them, and stops them in order. Nothing else in the code base creates a connection.
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { pino, type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from './config/index.ts';
import { createPgDb, type Db } from './storage/db.ts';
import { migrate } from './storage/migrate.ts';
import { storeFailures } from './storage/errors.ts';
import { createBatchWriter, type BatchWriter } from './storage/writer.ts';
import { createVehicleRepo } from './storage/vehicles.ts';
import { createConsentRepo, CONSENT_CHANNEL } from './storage/consent.ts';
import { createConsentCache, type ConsentCache } from './gateway/consent-cache.ts';
import { createIngest, type Ingest } from './gateway/ingest.ts';
import { createBroker, type Broker, type ConnectionInfo } from './gateway/broker.ts';
import { certVinOf } from './identity/cert.ts';
import { guardSocket } from './gateway/packet-guard.ts';
import { createMetrics } from './metrics/index.ts';
import { buildApp } from './api/app.ts';
import { newSecret } from './identity/secrets.ts';
import { createPgliteDb } from './storage/pglite.ts';
import { createRightsRepo } from './storage/rights.ts';
import { createReadRepo } from './storage/reads.ts';
import { createStreamLogRepo, STREAM_CHANNEL, type StreamLogRepo } from './storage/stream-log.ts';
import { coalesced, createStreamHub, type StreamHub } from './stream/hub.ts';
import type { StreamStats } from './api/routes/stream.ts';
import { createCheckinRepo, createGrantRepo, createRecipientRepo, GRANT_CHANNEL } from './storage/grants.ts';
import { applyRetention, enableCompression } from './storage/retention.ts';
import { createSignIn, type SignIn } from './sign-in.ts';
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
  readonly mqttPort: number;
  /** MQTT over TLS port, when TLS is configured. */
  readonly mqttsPort: number | null;
  readonly https: boolean;
  readonly httpPort: number;
  readonly adminToken: string;
  /** Issuer of the embedded OpenID Provider, when it runs. */
  readonly oidcIssuer: string | null;
  readonly storage: string;
  readonly db: Db;
  /** Open live streams and what they hold (README "Live CarData"). */
  streams(): StreamStats;
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
  readonly db: Db;
  readonly opened: OpenedStack;
  readonly prom: ReturnType<typeof createMetrics>;
  readonly writer: BatchWriter;
  readonly consents: ConsentCache;
  readonly ingest: Ingest;
  readonly broker: Broker;
  readonly mqttServer: net.Server;
  readonly mqttsServer: tls.Server | null;
  readonly tlsFiles: { cert: Buffer; key: Buffer; ca: Buffer | undefined } | undefined;
  readonly app: FastifyInstance;
  readonly adminToken: string;
  /** Live streams: the tailer, the stream log, whether commits are announced by NOTIFY. */
  readonly live: { hub: StreamHub; log: StreamLogRepo; announce: boolean; stats: () => StreamStats };
  readonly signIn: SignIn;
}

/**
 * Builds every part and wires them; opens only the database (the pool connects lazily;
 * PGlite opens its files). Nothing listens yet. What it opens is on `opened`.
 */
export async function buildGateway(config: Config, log: Logger, opened: OpenedStack = new OpenedStack(log)): Promise<BuiltGateway> {
  // No DATABASE_URL: the embedded PostgreSQL (PGlite) keeps its files in DATA_DIR.
  const db = config.databaseUrl
    ? createPgDb(config.databaseUrl, {
        max: config.dbPoolMax,
        onError: (err) => log.warn({ event: 'db_connection_error', err: err.message }, 'database connection error'),
      })
    : await createPgliteDb(path.resolve(config.dataDir));
  opened.push('database', () => db.close());

  const prom = createMetrics();
  const metrics = prom.gateway;
  // Live streams: one tailer of the stream log; commits here wake it at once, commits on
  // other instances by NOTIFY (README "Live CarData").
  const streamLog = createStreamLogRepo(db);
  const hub = createStreamHub({
    store: streamLog,
    pollMs: config.stream.pollMs,
    onError: (err) => log.warn({ event: 'stream_tail_failed', err: err.message }, 'reading the stream log failed; retrying'),
  });
  const announce =
    config.databaseUrl && config.stream.fanout === 'notify'
      ? coalesced(
          () => db.query('SELECT pg_notify($1, $2)', [STREAM_CHANNEL, '']),
          (err) => log.warn({ event: 'stream_notify_failed', err: err.message }, 'could not announce a commit to other instances'),
        )
      : null;
  const writer = createBatchWriter(db, {
    // PGlite runs on this thread: smaller statements keep the event loop responsive.
    batchMaxRows: config.databaseUrl ? config.writer.batchMaxRows : Math.min(config.writer.batchMaxRows, 1000),
    maxPendingRows: config.writer.maxPendingRows,
    concurrency: config.writer.concurrency,
    lingerMs: config.writer.lingerMs,
    lingerRows: config.writer.lingerRows,
    retryMaxMs: config.writer.retryMaxMs,
    onBatch: (stats) => {
      prom.writer.onBatch(stats);
      if (stats.telemetryInserted > 0) {
        hub.wake();
        announce?.();
      }
    },
    onError: (err, willRetry) => {
      prom.writer.onError(willRetry);
      log.warn({ event: 'write_failed', err: (err as Error).message, will_retry: willRetry }, willRetry ? 'write failed, retrying' : 'write refused');
    },
  });
  const streamStats: { get?: () => StreamStats } = {};
  const streams = (): StreamStats => streamStats.get?.() ?? { open: 0, bufferedBytes: 0, maxBufferedBytes: 0, ended: {} };
  prom.setSources({ writerPending: () => writer.pending(), pool: () => db.stats(), streams });
  opened.push('batch writer', () => writer.close(0));
  const vehicles = createVehicleRepo(db);
  // The cache reads through a repository of its own; the one the API writes through tells
  // the cache of each change it commits (declared after the cache it invalidates).
  const consents = createConsentCache({ source: createConsentRepo(db), horizonMs: config.ingest.maxRecordAgeMs, metrics });
  // A change made through this process's API is in force here before the API answers 200;
  // the NOTIFY that follows carries it to every other process.
  const changeHooks = {
    onCommitted: (vin: string) => {
      consents.invalidate(vin);
      hub.invalidate(vin);
    },
  };
  const consentRepo = createConsentRepo(db, changeHooks);
  const ingest = createIngest({
    sink: writer,
    consents,
    limits: config.ingest,
    metrics,
    onQuarantine: (vin, reason, detail) => log.info({ event: 'message_quarantined', vin, reason, detail }, 'message quarantined'),
    onConsentUnavailable: (vin, err) => log.warn({ event: 'consent_unavailable', vin, err: err.message }, 'consent could not be read; the message waits'),
  });
  const broker = await createBroker(
    { connectTimeoutMs: config.mqtt.connectTimeoutMs, authFailuresMax: config.mqtt.authFailuresMax, authFailureWindowMs: config.mqtt.authFailureWindowMs },
    { ingest, credentials: vehicles, consents, metrics, log },
  );
  opened.push('MQTT broker', () => broker.close());

  const accept = (socket: net.Socket, certVin?: string | null) => {
    const info: ConnectionInfo = { remoteAddress: socket.remoteAddress ?? 'unknown' };
    if (certVin !== undefined) info.certVin = certVin;
    broker.handle(
      guardSocket(socket, config.mqtt.maxPacketBytes, (err) => {
        metrics.refused(err.code);
        log.warn({ event: 'mqtt_packet_too_large', size: err.size, limit: err.limit, remote: socket.remoteAddress }, 'connection closed: packet too large');
      }),
      info,
    );
  };
  // noDelay: with acks held for the commit, Nagle would add up to 40 ms per PUBACK.
  const mqttServer = net.createServer({ noDelay: true }, (socket) => accept(socket));
  mqttServer.maxConnections = config.mqtt.maxConnections;

  const tlsFiles = config.tls
    ? { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile), ca: config.tls.clientCaFile ? readFileSync(config.tls.clientCaFile) : undefined }
    : undefined;
  let mqttsServer: tls.Server | null = null;
  if (tlsFiles) {
    mqttsServer = tls.createServer(
      {
        cert: tlsFiles.cert,
        key: tlsFiles.key,
        minVersion: 'TLSv1.2',
        ...(tlsFiles.ca ? { ca: tlsFiles.ca, requestCert: true, rejectUnauthorized: config.mqtt.requireClientCert } : {}),
      },
      (socket) => {
        socket.setNoDelay(true);
        accept(socket, tlsFiles.ca ? certVinOf(socket) : undefined);
      },
    );
    mqttsServer.maxConnections = config.mqtt.maxConnections;
    mqttsServer.on('tlsClientError', (err) => log.info({ event: 'mqtt_tls_refused', err: err.message }, 'TLS handshake refused'));
  }

  const adminToken = config.adminToken ?? newSecret();
  const signIn = createSignIn(config, db, log);
  const tokens = signIn.authenticator;
  const rights = createRightsRepo(db, changeHooks);
  const reads = createReadRepo(db);
  const recipients = createRecipientRepo(db);
  const grants = createGrantRepo(db);
  const app = await buildApp(
    {
      failures: storeFailures,
      readiness: async () => {
        const database = await Promise.race([
          db.query('SELECT 1').then(() => true, () => false),
          new Promise<boolean>((r) => setTimeout(() => r(false), 1000).unref()),
        ]);
        return { broker: mqttServer.listening, database: database && !writer.degraded };
      },
      admin: {
        adminToken,
        secretCost: config.secretScryptCost,
        vehicles,
        tokens: signIn.tokens,
        tokenTtlS: config.tokenTtlS,
        rights,
        mintedTokens: signIn.mintedTokens,
        onRevoked: signIn.onRevoked,
        accounts: signIn.accounts,
        recipients,
      },
      vehicles: { tokens, consents: consentRepo, rights },
      cardata: { tokens, consents: consentRepo, rights, reads, grants, obfcmReport: config.obfcmReport },
      grants: {
        tokens,
        recipients,
        grants,
        checkins: createCheckinRepo(db),
        consents: consentRepo,
        rights,
        reads,
        limits: { grantMaxDays: config.grants.maxDays, checkinCodeTtlS: config.grants.checkinCodeTtlS, visitMaxHours: config.grants.visitMaxHours },
      },
      metrics: { text: prom.text, contentType: prom.contentType },
      stream: {
        tokens,
        rights,
        consents: consentRepo,
        feed: hub,
        positions: streamLog,
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
    { loggerInstance: log, ...(tlsFiles ? { https: { cert: tlsFiles.cert, key: tlsFiles.key } } : {}) },
  );
  opened.push('HTTP app', () => app.close());
  return { config, log, db, opened, prom, writer, consents, ingest, broker, mqttServer, mqttsServer, tlsFiles, app, adminToken, signIn, live: { hub, log: streamLog, announce: announce !== null, stats: streams } };
}

/**
 * Starts what was built: schema, consent feed, MQTT, HTTP, retention. Each listener is
 * pushed on `gw.opened` as it opens; when a step fails, everything opened is closed in
 * reverse order (the database last) and the error is rethrown.
 */
export async function startBuilt(gw: BuiltGateway): Promise<RunningGateway> {
  const { config, log, db, opened, consents, mqttServer, mqttsServer, app, live } = gw;
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
      (vin) => {
        consents.invalidate(vin);
        live.hub.invalidate(vin);
      },
      {
        // Changes may be missed while the feed is down: trust nothing cached until it is back.
        onDown: () => {
          consents.setTrusted(false);
          streamRecheck ??= setInterval(() => live.hub.invalidateAll(), 1000);
          log.warn({ event: 'consent_feed_down' }, 'consent change feed lost; reading consent from the database until it is back');
        },
        onUp: () => {
          consents.invalidateAll();
          consents.setTrusted(true);
          if (streamRecheck) clearInterval(streamRecheck);
          streamRecheck = null;
          live.hub.invalidateAll();
          log.info({ event: 'consent_feed_up' }, 'consent change feed restored; cache reloaded');
        },
      },
    );
    // Commits of other instances wake this one's stream tail.
    const stopStreamWake = live.announce ? await db.listen(STREAM_CHANNEL, () => live.hub.wake(), { onUp: () => live.hub.wake(), role: 'stream-wake' }) : async () => {};
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

    await listen(mqttServer, config.mqtt.port, config.mqtt.host);
    opened.push('MQTT listener', () => closeServer(mqttServer));
    if (mqttsServer) {
      await listen(mqttsServer, config.mqtt.tlsPort, config.mqtt.host);
      opened.push('MQTTS listener', () => closeServer(mqttsServer));
    }
    const mqttPort = (mqttServer.address() as net.AddressInfo).port;
    const mqttsPort = mqttsServer ? (mqttsServer.address() as net.AddressInfo).port : null;

    await app.listen({ port: config.http.port, host: config.http.host });
    const httpPort = (app.server.address() as net.AddressInfo).port;
    await gw.signIn.start({ scheme: gw.tlsFiles ? 'https' : 'http', host: config.http.host, port: httpPort });

    const retention = async () => {
      try {
        const r = { ...(await applyRetention(db, config.retention)), streamLogEntriesDeleted: await live.log.trim(Date.now() - config.stream.logRetentionDays * 86_400_000) };
        log.info({ event: 'retention_applied', ...r }, 'retention applied');
      } catch (err) {
        log.warn({ event: 'retention_failed', err: (err as Error).message }, 'retention failed; retried at the next interval');
      }
    };
    await enableCompression(db).then(
      (on) => on && log.info({ event: 'compression_enabled' }, 'TimescaleDB compression policies enabled'),
      (err: Error) => log.warn({ event: 'compression_failed', err: err.message }, 'could not enable TimescaleDB compression'),
    );
    const retentionTimer = setInterval(() => void retention(), config.retention.intervalMs);
    retentionTimer.unref();
    void retention();

    let closing: Promise<void> | null = null;
    const close = (): Promise<void> => (closing ??= stopGateway(gw, { retentionTimer, stopListening }));
    const oidcIssuer = gw.signIn.provider()?.issuer ?? null;
    return { mqttPort, mqttsPort, https: !!gw.tlsFiles, httpPort, adminToken: gw.adminToken, oidcIssuer, storage, db, streams: live.stats, close };
  } catch (err) {
    await opened.unwind();
    throw err;
  }
}

/** Orderly stop: MQTT intake → drain → flush → HTTP (open streams end first) → stream tail and consent feed → database. */
export async function stopGateway(gw: BuiltGateway, started: { retentionTimer: NodeJS.Timeout; stopListening: () => Promise<void> }): Promise<void> {
  const { config, log } = gw;
  const t0 = Date.now();
  log.info({ event: 'shutdown_started' }, 'stopping');
  clearInterval(started.retentionTimer);
  gw.mqttServer.close();
  gw.mqttsServer?.close();
  const d = await gw.broker.drain(config.shutdownGraceMs);
  gw.ingest.close();
  await gw.writer.close(Math.max(0, config.shutdownGraceMs - (Date.now() - t0)));
  await gw.broker.close();
  await gw.app.close();
  await gw.signIn.close();
  await started.stopListening();
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
    `  storage:  ${gw.storage}`,
    `  MQTT:     mqtt://${host(config.mqtt.host)}:${gw.mqttPort}`,
    ...(gw.mqttsPort !== null ? [`  MQTTS:    mqtts://${host(config.mqtt.host)}:${gw.mqttsPort}${config.tls?.clientCaFile ? ' (client certificates: CN = VIN)' : ''}`] : []),
    `  HTTP:     ${gw.https ? 'https' : 'http'}://${host(config.http.host)}:${gw.httpPort}  (GET /readyz, docs at /docs)`,
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
  const stop = (signal: string) => {
    log.info({ event: 'signal', signal }, 'signal received');
    gw.close().then(
      () => process.exit(0),
      (err: Error) => {
        log.error({ event: 'shutdown_failed', err: err.message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void run();
