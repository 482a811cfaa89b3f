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
import { proxiedTlsEntry, proxyProtocolListener, type ProxyHeaderError } from './gateway/proxy-protocol.ts';
import { createMetrics } from './metrics/index.ts';
import { buildApp } from './api/app.ts';
import { newSecret } from './identity/secrets.ts';
import { createPgliteDb } from './storage/pglite.ts';
import { createRightsRepo } from './storage/rights.ts';
import { createReadRepo } from './storage/reads.ts';
import { applyRetention, enableCompression } from './storage/retention.ts';
import { runExclusive, runOncePerPeriod } from './storage/schedule.ts';
import os from 'node:os';
import { createTokenService, parseKeys, randomKey } from './identity/tokens.ts';
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
  readonly storage: string;
  readonly db: Db;
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
  readonly opened: OpenedStack;
  readonly prom: ReturnType<typeof createMetrics>;
  readonly writer: BatchWriter;
  readonly consents: ConsentCache;
  readonly ingest: Ingest;
  readonly broker: Broker;
  readonly mqttServer: net.Server;
  /** The TLS server, or behind a balancer (MQTT_PROXY_PROTOCOL) the TCP listener in front of it. */
  readonly mqttsServer: net.Server | null;
  readonly tlsFiles: { cert: Buffer; key: Buffer; ca: Buffer | undefined } | undefined;
  readonly app: FastifyInstance;
  readonly adminToken: string;
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

  // The `instance` label only when named (INSTANCE_ID): a lone process keeps plain series.
  const prom = createMetrics(config.instanceId ? { instance } : {});
  const metrics = prom.gateway;
  const writer = createBatchWriter(db, {
    // PGlite runs on this thread: smaller statements keep the event loop responsive.
    batchMaxRows: config.databaseUrl ? config.writer.batchMaxRows : Math.min(config.writer.batchMaxRows, 1000),
    maxPendingRows: config.writer.maxPendingRows,
    concurrency: config.writer.concurrency,
    lingerMs: config.writer.lingerMs,
    lingerRows: config.writer.lingerRows,
    retryMaxMs: config.writer.retryMaxMs,
    onBatch: prom.writer.onBatch,
    onError: (err, willRetry) => {
      prom.writer.onError(willRetry);
      log.warn({ event: 'write_failed', err: (err as Error).message, will_retry: willRetry }, willRetry ? 'write failed, retrying' : 'write refused');
    },
  });
  prom.setSources({ writerPending: () => writer.pending(), pool: () => db.stats() });
  opened.push('batch writer', () => writer.close(0));
  const vehicles = createVehicleRepo(db);
  // The cache reads through a repository of its own; the one the API writes through tells
  // the cache of each change it commits (declared after the cache it invalidates).
  const consents = createConsentCache({ source: createConsentRepo(db), horizonMs: config.ingest.maxRecordAgeMs, metrics });
  // A change made through this process's API is in force here before the API answers 200;
  // the NOTIFY that follows carries it to every other process.
  const changeHooks = { onCommitted: (vin: string) => consents.invalidate(vin) };
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

  // remote: the client's address from a PROXY header (behind a load balancer), else the peer's.
  const accept = (socket: net.Socket, certVin?: string | null, remote?: string) => {
    const info: ConnectionInfo = { remoteAddress: remote ?? socket.remoteAddress ?? 'unknown' };
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
  const proxyOpts = {
    timeoutMs: config.mqtt.connectTimeoutMs,
    onError: (err: ProxyHeaderError, socket: net.Socket) => {
      metrics.refused(err.code);
      log.info({ event: 'mqtt_proxy_header_refused', err: err.message, remote: socket.remoteAddress }, 'connection closed: no valid PROXY header');
    },
  };
  const mqttServer = net.createServer(
    { noDelay: true },
    config.mqtt.proxyProtocol ? proxyProtocolListener((socket, src) => accept(socket, undefined, src?.address), proxyOpts) : (socket) => accept(socket),
  );
  mqttServer.maxConnections = config.mqtt.maxConnections;

  const tlsFiles = config.tls
    ? { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile), ca: config.tls.clientCaFile ? readFileSync(config.tls.clientCaFile) : undefined }
    : undefined;
  let mqttsServer: net.Server | null = null;
  if (tlsFiles) {
    let sourceOf: (s: net.Socket) => { address: string } | null = () => null;
    const tlsServer = tls.createServer(
      {
        cert: tlsFiles.cert,
        key: tlsFiles.key,
        minVersion: 'TLSv1.2',
        ...(tlsFiles.ca ? { ca: tlsFiles.ca, requestCert: true, rejectUnauthorized: config.mqtt.requireClientCert } : {}),
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
  if (!config.jwtKeys) log.warn({ event: 'jwt_key_generated' }, 'JWT_KEYS not set: API tokens are signed with a random key and stop working when this process ends');
  const tokens = createTokenService(config.jwtKeys ? parseKeys(config.jwtKeys) : [randomKey()]);
  const rights = createRightsRepo(db, changeHooks);
  const app = await buildApp(
    {
      failures: storeFailures,
      readiness: async () => {
        const database = await Promise.race([
          db.query('SELECT 1').then(() => true, () => false),
          new Promise<boolean>((r) => setTimeout(() => r(false), 1000).unref()),
        ]);
        return { broker: mqttServer.listening, database: database && !writer.degraded, instance };
      },
      admin: { adminToken, secretCost: config.secretScryptCost, vehicles, tokens, tokenTtlS: config.tokenTtlS, rights },
      vehicles: { tokens, consents: consentRepo, rights },
      cardata: { tokens, consents: consentRepo, rights, reads: createReadRepo(db) },
      metrics: { text: prom.text, contentType: prom.contentType },
    },
    { loggerInstance: log, ...(config.http.trustProxy.length ? { trustProxy: [...config.http.trustProxy] } : {}), ...(tlsFiles ? { https: { cert: tlsFiles.cert, key: tlsFiles.key } } : {}) },
  );
  opened.push('HTTP app', () => app.close());
  return { config, log, instance, db, opened, prom, writer, consents, ingest, broker, mqttServer, mqttsServer, tlsFiles, app, adminToken };
}

/**
 * Starts what was built: schema, consent feed, MQTT, HTTP, retention. Each listener is
 * pushed on `gw.opened` as it opens; when a step fails, everything opened is closed in
 * reverse order (the database last) and the error is rethrown.
 */
export async function startBuilt(gw: BuiltGateway): Promise<RunningGateway> {
  const { config, log, instance, db, opened, consents, mqttServer, mqttsServer, app } = gw;
  try {
    const mig = await migrate(db);
    log.info({ event: 'migrations_applied', applied: mig.applied, timescaledb: mig.timescaledb }, 'database schema up to date');
    const storage = config.databaseUrl
      ? `${db.kind} at ${redactUrl(config.databaseUrl)}`
      : `embedded PostgreSQL (PGlite) in ${path.resolve(config.dataDir)}`;

    const stopListening = await db.listen(
      CONSENT_CHANNEL,
      (vin) => consents.invalidate(vin),
      {
        // Changes may be missed while the feed is down: trust nothing cached until it is back.
        onDown: () => {
          consents.setTrusted(false);
          log.warn({ event: 'consent_feed_down' }, 'consent change feed lost; reading consent from the database until it is back');
        },
        onUp: () => {
          consents.invalidateAll();
          consents.setTrusted(true);
          log.info({ event: 'consent_feed_up' }, 'consent change feed restored; cache reloaded');
        },
      },
    );
    opened.push('consent feed', stopListening);

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

    // Once per RETENTION_INTERVAL_MS across all processes on this database (scheduled_runs
    // + an advisory lock); each process asks four times a period, so a period is taken up
    // soon after it begins even when the process that would have run it is gone.
    const retention = async () => {
      try {
        const r = await runOncePerPeriod(db, 'retention', config.retention.intervalMs, instance, (tx) => applyRetention(tx, config.retention));
        if (r.ran) log.info({ event: 'retention_applied', period_start: r.periodStart.toISOString(), ...r.result }, 'retention applied');
        else log.debug({ event: 'retention_skipped', reason: r.reason, period_start: r.periodStart?.toISOString() }, 'retention of this period done elsewhere');
      } catch (err) {
        log.warn({ event: 'retention_failed', err: (err as Error).message }, 'retention failed; retried at the next interval');
      }
    };
    // Under a lock: several processes starting at once set the policies up one at a time.
    await runExclusive(db, 'compression_setup', (tx) => enableCompression(tx)).then(
      (on) => on && log.info({ event: 'compression_enabled' }, 'TimescaleDB compression policies enabled'),
      (err: Error) => log.warn({ event: 'compression_failed', err: err.message }, 'could not enable TimescaleDB compression'),
    );
    const retentionTimer = setInterval(() => void retention(), Math.max(100, Math.floor(config.retention.intervalMs / 4)));
    retentionTimer.unref();
    void retention();

    let closing: Promise<void> | null = null;
    const close = (): Promise<void> => (closing ??= stopGateway(gw, { retentionTimer, stopListening }));
    return { mqttPort, mqttsPort, https: !!gw.tlsFiles, httpPort, adminToken: gw.adminToken, storage, db, instance, close };
  } catch (err) {
    await opened.unwind();
    throw err;
  }
}

/** Orderly stop: MQTT intake → drain → flush → HTTP → consent feed → database. */
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
    `  instance: ${gw.instance}`,
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
