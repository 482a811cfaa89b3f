// The composition root: reads the configuration, builds each part, wires them, starts
// them, and stops them in order. Nothing else in the code base creates a connection.
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { pino, type Logger } from 'pino';
import { loadConfig, type Config } from './config/index.ts';
import { createPgDb, type Db } from './storage/db.ts';
import { migrate } from './storage/migrate.ts';
import { createBatchWriter } from './storage/writer.ts';
import { createVehicleRepo } from './storage/vehicles.ts';
import { createConsentRepo, CONSENT_CHANNEL } from './storage/consent.ts';
import { createConsentCache } from './gateway/consent-cache.ts';
import { createIngest } from './gateway/ingest.ts';
import { createBroker, type ConnectionInfo } from './gateway/broker.ts';
import { isValidVin } from './identity/vin.ts';
import { guardSocket } from './gateway/packet-guard.ts';
import { createMetrics } from './metrics/index.ts';
import { buildApp } from './api/app.ts';
import { newSecret } from './identity/secrets.ts';
import { createPgliteDb } from './storage/pglite.ts';
import { createRightsRepo } from './storage/rights.ts';
import { createReadRepo } from './storage/reads.ts';
import { createStreamLogRepo, STREAM_CHANNEL } from './storage/stream-log.ts';
import { coalesced, createStreamHub } from './stream/hub.ts';
import type { StreamStats } from './api/routes/stream.ts';
import { applyRetention, enableCompression } from './storage/retention.ts';
import { createTokenService, parseKeys, randomKey } from './identity/tokens.ts';
import path from 'node:path';

function listen(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * The VIN a verified client certificate names: its subject CN, or a DNS/URI subject
 * alternative name that is a VIN. undefined when no verified certificate; null when
 * verified but naming no VIN.
 */
function certVinOf(socket: tls.TLSSocket): string | null | undefined {
  if (!socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  const cn = cert.subject?.CN;
  const cns = Array.isArray(cn) ? cn : cn ? [cn] : [];
  const sans = (cert.subjectaltname ?? '').split(',').map((x) => x.trim().replace(/^(DNS|URI):/, ''));
  return [...cns, ...sans].find((n) => isValidVin(n)) ?? null;
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

export async function startGateway(config: Config, log: Logger = createLogger(config.logLevel)): Promise<RunningGateway> {
  // No DATABASE_URL: the embedded PostgreSQL (PGlite) keeps its files in DATA_DIR.
  const db = config.databaseUrl
    ? createPgDb(config.databaseUrl, {
        max: config.dbPoolMax,
        onError: (err) => log.warn({ event: 'db_connection_error', err: err.message }, 'database connection error'),
      })
    : await createPgliteDb(path.resolve(config.dataDir));
  const mig = await migrate(db);
  const storage = config.databaseUrl
    ? `${db.kind} at ${redactUrl(config.databaseUrl)}`
    : `embedded PostgreSQL (PGlite) in ${path.resolve(config.dataDir)}`;
  log.info({ event: 'migrations_applied', applied: mig.applied, timescaledb: mig.timescaledb }, 'database schema up to date');

  const prom = createMetrics();
  const metrics = prom.gateway;
  // Live streams: one tailer of the stream log; commits here wake it at once, commits on
  // other instances by NOTIFY (README "Live CarData").
  const streamLog = createStreamLogRepo(db);
  const hub = await createStreamHub({
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
  prom.setSources({ writerPending: () => writer.pending(), pool: () => db.stats() });
  const vehicles = createVehicleRepo(db);
  // A change made through this process's API is in force here before the API answers 200;
  // the NOTIFY that follows carries it to every other process.
  const changeHooks = {
    onCommitted: (vin: string) => {
      consents.invalidate(vin);
      hub.invalidate(vin);
    },
  };
  // While the change feed is down, open streams check their terms every second.
  let streamRecheck: NodeJS.Timeout | null = null;
  const consentRepo = createConsentRepo(db, changeHooks);
  const consents = createConsentCache({ source: consentRepo, horizonMs: config.ingest.maxRecordAgeMs, metrics });
  const stopListening = await db.listen(
    CONSENT_CHANNEL,
    (vin) => {
      consents.invalidate(vin);
      hub.invalidate(vin);
    },
    {
      // Changes may be missed while the feed is down: trust nothing cached until it is back.
      onDown: () => {
        consents.setTrusted(false);
        streamRecheck ??= setInterval(() => hub.invalidateAll(), 1000);
        log.warn({ event: 'consent_feed_down' }, 'consent change feed lost; reading consent from the database until it is back');
      },
      onUp: () => {
        consents.invalidateAll();
        consents.setTrusted(true);
        if (streamRecheck) clearInterval(streamRecheck);
        streamRecheck = null;
        hub.invalidateAll();
        log.info({ event: 'consent_feed_up' }, 'consent change feed restored; cache reloaded');
      },
    },
  );
  const stopStreamListening = announce ? await db.listen(STREAM_CHANNEL, () => hub.wake(), { onUp: () => hub.wake(), role: 'stream-wake' }) : async () => {};
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
  await listen(mqttServer, config.mqtt.port, config.mqtt.host);

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
    await listen(mqttsServer, config.mqtt.tlsPort, config.mqtt.host);
  }
  const mqttPort = (mqttServer.address() as net.AddressInfo).port;
  const mqttsPort = mqttsServer ? (mqttsServer.address() as net.AddressInfo).port : null;

  const adminToken = config.adminToken ?? newSecret();
  if (!config.jwtKeys) log.warn({ event: 'jwt_key_generated' }, 'JWT_KEYS not set: API tokens are signed with a random key and stop working when this process ends');
  const tokens = createTokenService(config.jwtKeys ? parseKeys(config.jwtKeys) : [randomKey()]);
  const rights = createRightsRepo(db, changeHooks);
  const streamStats: { get?: () => StreamStats } = {};
  const app = await buildApp(
    {
      readiness: async () => {
        const database = await Promise.race([
          db.query('SELECT 1').then(() => true, () => false),
          new Promise<boolean>((r) => setTimeout(() => r(false), 1000).unref()),
        ]);
        return { broker: mqttServer.listening, database: database && !writer.degraded };
      },
      admin: { adminToken, secretCost: config.secretScryptCost, vehicles, tokens, tokenTtlS: config.tokenTtlS, rights },
      vehicles: { tokens, consents: consentRepo, rights },
      cardata: { tokens, consents: consentRepo, rights, reads: createReadRepo(db) },
      metrics: { text: prom.text, contentType: prom.contentType },
      stream: {
        tokens,
        rights,
        consents: consentRepo,
        feed: hub,
        positions: streamLog,
        keepAliveMs: config.stream.keepAliveMs,
        bufferBytes: config.stream.bufferBytes,
        maxPerCaller: config.stream.maxPerCaller,
        fromWindowMs: config.stream.logRetentionDays * 86_400_000,
        fromMarginMs: config.ingest.maxClockSkewMs + 60_000,
        stats: streamStats,
      },
    },
    { loggerInstance: log, ...(tlsFiles ? { https: { cert: tlsFiles.cert, key: tlsFiles.key } } : {}) },
  );
  await app.listen({ port: config.http.port, host: config.http.host });
  const httpPort = (app.server.address() as net.AddressInfo).port;

  const retention = async () => {
    try {
      const r = { ...(await applyRetention(db, config.retention)), streamLogEntriesDeleted: await streamLog.trim(Date.now() - config.stream.logRetentionDays * 86_400_000) };
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
  async function close(): Promise<void> {
    closing ??= (async () => {
      const t0 = Date.now();
      log.info({ event: 'shutdown_started' }, 'stopping');
      clearInterval(retentionTimer);
      mqttServer.close();
      mqttsServer?.close();
      const d = await broker.drain(config.shutdownGraceMs);
      ingest.close();
      await writer.close(Math.max(0, config.shutdownGraceMs - (Date.now() - t0)));
      await broker.close();
      await app.close();
      await hub.stop();
      if (streamRecheck) clearInterval(streamRecheck);
      await stopStreamListening();
      await stopListening();
      await db.close();
      log.info({ event: 'shutdown_complete', drained: d.drained, left_unacknowledged: d.left, ms: Date.now() - t0 }, 'stopped');
    })();
    return closing;
  }

  const streams = (): StreamStats => streamStats.get?.() ?? { open: 0, bufferedBytes: 0, maxBufferedBytes: 0, ended: {} };
  prom.setSources({ writerPending: () => writer.pending(), pool: () => db.stats(), streams });
  return { mqttPort, mqttsPort, https: !!tlsFiles, httpPort, adminToken, storage, db, streams, close };
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
