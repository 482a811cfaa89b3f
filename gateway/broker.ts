// The embedded MQTT broker: aedes with the gateway's identity rules and the ingest
// pipeline in its hooks. It never listens by itself; app/ (or a test) hands it sockets.
import { Aedes, type AedesPublishPacket, type Client, type Connection, type PublishPacket, type Subscription } from 'aedes';
import { isValidVin } from '../identity/vin.ts';
import { telemetryTopic } from '../proto/index.ts';
import { createSecretVerifier } from '../identity/secrets.ts';
import type { ConsentCache } from './consent-cache.ts';
import { GW_ERR } from './errors.ts';
import type { Ingest } from './ingest.ts';
import type { ConnectivitySink, CredentialSource, GatewayMetrics } from './ports.ts';
import type { DisconnectReason } from '../proto/connectivity.ts';
import { randomUUID } from 'node:crypto';
import { createAuthLimiter } from './auth-limiter.ts';
import { addressGroup } from '../identity/address.ts';

export interface BrokerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface BrokerDeps {
  ingest: Ingest;
  credentials: CredentialSource;
  consents: ConsentCache;
  metrics: GatewayMetrics;
  log: BrokerLogger;
  /** Told of every connection's start and end (connectivity); none: not recorded. */
  connectivity?: ConnectivitySink;
}

export interface BrokerOptions {
  /** CONNECT must arrive within this many ms of the TCP connection. Default 10000. */
  connectTimeoutMs?: number;
  /** Failed authentications per source address (IPv6: per /64) before its attempts are refused unchecked. Default 100. */
  authFailuresMax?: number;
  /** Failed authentications per (source address, VIN) before that pair is refused unchecked. Default 5. */
  authFailuresPerVinMax?: number;
  /** Window (and cool-down) of both limits, ms. Default 60000. */
  authFailureWindowMs?: number;
  /** scrypt checks of secrets running at once. Default 2. */
  authConcurrency?: number;
  /** scrypt N of the stand-in check for unknown VINs (SECRET_SCRYPT_COST). Default 4096. */
  secretScryptCost?: number;
  /** Mutual TLS required: a login without a verified client certificate is refused. Default false. */
  requireClientCert?: boolean;
}

/** What the transport knows about a connection, handed in with it. */
export interface ConnectionInfo {
  remoteAddress: string;
  /**
   * VIN named by a verified client certificate (mutual TLS), or undefined without one.
   * null: a certificate was presented and verified but names no valid VIN.
   */
  certVin?: string | null;
  /** Called once the connection has authenticated (its pre-authentication budget ends). */
  onAuthenticated?: () => void;
}

export interface Broker {
  /** Hands a connection to the broker (net.Server's connection listener). */
  handle(conn: Connection, info?: ConnectionInfo): void;
  /** Vehicles connected now. */
  connectedCount(): number;
  /** Publishes in flight (received, not yet acknowledged). */
  inFlight(): number;
  /**
   * Stops taking new publishes (they are refused, not acknowledged: vehicles resend
   * them elsewhere or later), then waits up to graceMs for those in flight.
   */
  drain(graceMs: number): Promise<{ drained: boolean; left: number }>;
  /** Closes the sessions of a VIN that authenticated with a secret (not by certificate); how many. */
  closeSecretSessions(vin: string): number;
  close(): Promise<void>;
}

const NOT_AUTHORIZED = 5; // CONNACK return code, MQTT-3.2.2.3 table 3.1

function authError(msg: string): Error & { returnCode: number } {
  return Object.assign(new Error(msg), { returnCode: NOT_AUTHORIZED });
}


/** A filter is allowed when it stays under v1/vehicles/{vin}/ (MQTT-4.7.1: '#' also matches the parent). */
export function subscriptionAllowed(vin: string, filter: string): boolean {
  const levels = filter.split('/');
  if (levels[0] !== 'v1' || levels[1] !== 'vehicles' || levels[2] !== vin) return false;
  return true;
}

/** Waits (up to maxMs) until every client connection has written out what it buffered. */
async function flushSockets(clients: Iterable<Client>, maxMs: number): Promise<void> {
  const pendingWrites = [...clients]
    .map((c) => c.conn)
    .filter((conn) => !conn.destroyed && conn.writableLength > 0)
    .map((conn) => new Promise<void>((r) => conn.once('drain', r)));
  if (pendingWrites.length === 0) return;
  await Promise.race([Promise.all(pendingWrites), new Promise((r) => setTimeout(r, maxMs).unref())]);
}

export async function createBroker(opts: BrokerOptions, deps: BrokerDeps): Promise<Broker> {
  const { ingest, credentials, consents, metrics, log } = deps;
  let accepting = true;
  let inFlight = 0;
  let idleWaiters: (() => void)[] = [];
  const infos = new WeakMap<object, ConnectionInfo>();
  const windowMs = opts.authFailureWindowMs ?? 60_000;
  const byAddress = createAuthLimiter({ maxFailures: opts.authFailuresMax ?? 100, windowMs });
  const byAddressVin = createAuthLimiter({ maxFailures: opts.authFailuresPerVinMax ?? 5, windowMs });
  const verifier = createSecretVerifier({ concurrency: opts.authConcurrency ?? 2, cost: opts.secretScryptCost ?? 4096 });
  // How each connected client authenticated: a rotated secret closes only 'secret' sessions.
  const authMethod = new WeakMap<Client, 'secret' | 'cert'>();
  // Connectivity: each authenticated connection's session id and start, and why it ended
  // when the broker knows before aedes' clientDisconnect (keep-alive, takeover, our close).
  const sessions = new WeakMap<Client, { id: string; at: Date }>();
  const endReason = new WeakMap<Client, DisconnectReason>();
  let shuttingDown = false;
  // A taken-over connection's end is reported after its successor's start (aedes closes the
  // old one first): the vehicle never looks offline in between. At most a second later
  // when the successor never registers.
  const takenOver = new Map<string, () => void>();

  const aedes = await Aedes.createBroker({
    connectTimeout: opts.connectTimeoutMs ?? 10_000,
    maxClientsIdLength: 23,

    authenticate(client: Client, username, password, done) {
      const vin = client.id;
      const info = infos.get(client.conn) ?? { remoteAddress: 'unknown' };
      // A verified client certificate naming the VIN authenticates by itself: no secret
      // is guessed, so the failed-login limits neither apply nor count (mutual TLS).
      const byCert = info.certVin !== undefined && info.certVin !== null && info.certVin === vin && isValidVin(vin);
      // Counted per source address (IPv6: per /64, what one subscriber holds) and per
      // (address, VIN): one misconfigured vehicle behind a carrier NAT locks only itself
      // out there. Never per VIN alone: knowing a VIN must not let anyone lock that car out.
      const group = addressGroup(info.remoteAddress);
      const ipKey = `ip:${group}`;
      const pairKey = `ipvin:${group}:${isValidVin(vin) ? vin : '-'}`;
      const refuse = (reason: string, msg: string, count = true) => {
        metrics.refused(reason);
        if (count && !byCert) {
          byAddress.failed(ipKey);
          byAddressVin.failed(pairKey);
        }
        log.warn({ event: 'mqtt_auth_refused', vin: isValidVin(vin) ? vin : undefined, remote: info.remoteAddress, reason }, msg);
        done(authError('not authorized'), false);
      };
      if (!byCert && (!byAddress.allowed(ipKey) || !byAddressVin.allowed(pairKey))) {
        // Not even checked: repeated failures from this address (or for this VIN from it).
        return refuse(GW_ERR.AUTH_RATE_LIMITED, 'too many failed authentications; refused without checking', false);
      }
      if (!isValidVin(vin) || username !== vin) {
        return refuse(GW_ERR.CLIENT_ID_MISMATCH, 'client id must be the VIN and equal the username');
      }
      if (info.certVin === null || (info.certVin !== undefined && info.certVin !== vin)) {
        return refuse(GW_ERR.CERT_MISMATCH, 'client certificate does not name this VIN');
      }
      if (opts.requireClientCert && !byCert) {
        return refuse(GW_ERR.CERT_REQUIRED, 'client certificates are required: a secret alone is refused');
      }
      const secret = password ? password.toString('utf8') : '';
      credentials
        .getCredentials(vin)
        .then(async (cred) => {
          let ok: boolean;
          if (byCert) ok = cred !== null;
          // The same scrypt work whether the VIN exists or not (a stand-in hash when not),
          // so the answer's timing does not tell which VINs are provisioned.
          else ok = secret.length <= 512 && (await verifier.verify(secret, cred?.secretHash ?? null)) && secret.length > 0;
          if (!ok) {
            // A provisioned vehicle's failed login is part of its connectivity (an unknown VIN's is nobody's).
            if (cred !== null) deps.connectivity?.refused(vin, new Date());
            return refuse(GW_ERR.BAD_CREDENTIALS, 'unknown vehicle or wrong secret');
          }
          if (!byCert) byAddressVin.succeeded(pairKey);
          // Consent is loaded before the first message, so the filter never waits for it.
          await consents.load(vin);
          authMethod.set(client, byCert ? 'cert' : 'secret');
          // MQTT-3.1.4-2: aedes closes a connection of the same client id before this one registers.
          const old = live.get(vin);
          if (old && old !== client) endReason.set(old, 'taken_over');
          info.onAuthenticated?.();
          done(null, true);
        })
        .catch((err: Error) => {
          log.warn({ event: 'mqtt_auth_failed', vin, err: err.message }, 'authentication could not be checked');
          // MQTT-3.2.2.3: return code 3, server unavailable (the database did not answer).
          done(Object.assign(new Error('server unavailable'), { returnCode: 3 }), false);
        });
    },

    authorizePublish(client: Client | null, packet: PublishPacket, done) {
      if (!client) return done(null); // broker-internal publish
      const vin = client.id;
      if (packet.topic !== telemetryTopic(vin)) {
        metrics.refused(GW_ERR.TOPIC_FORBIDDEN);
        log.warn({ event: 'mqtt_publish_refused', vin, reason: GW_ERR.TOPIC_FORBIDDEN }, 'publish outside the vehicle\'s telemetry topic');
        // MQTT 3.1.1 has no negative PUBACK: the connection is closed (MQTT-3.3.5-2 allows it).
        return done(new Error(`${GW_ERR.TOPIC_FORBIDDEN}: ${vin} may publish only to ${telemetryTopic(vin)}`));
      }
      if (packet.qos === 2) {
        // Telemetry is QoS 0 or 1. A QoS 2 message would be stored until its PUBREL, which
        // a client may withhold (measured: 2,700 × 50 KB held ~180 MB across reconnects).
        metrics.refused(GW_ERR.QOS2_REFUSED);
        log.warn({ event: 'mqtt_publish_refused', vin, reason: GW_ERR.QOS2_REFUSED }, 'QoS 2 publish refused');
        return done(new Error(`${GW_ERR.QOS2_REFUSED}: publish with QoS 0 or 1`));
      }
      if (!accepting) return done(new Error(`${GW_ERR.SHUTTING_DOWN}: not accepting publishes`));
      // Telemetry is not kept as a retained message: it would sit in broker memory per VIN.
      packet.retain = false;
      const t0 = performance.now();
      const qos = packet.qos;
      inFlight++;
      // aedes writes the PUBACK right after this callback: holding it until the rows are
      // committed is what makes "acknowledged" mean "durable".
      ingest
        .handle(vin, packet.payload as Buffer, qos)
        .then(
          () => {
            if (qos > 0) metrics.pubackLatency(performance.now() - t0);
            done(null);
          },
          (err: Error) => done(err),
        )
        .finally(() => {
          inFlight--;
          if (inFlight === 0 && idleWaiters.length) {
            const w = idleWaiters;
            idleWaiters = [];
            for (const f of w) f();
          }
        });
    },

    authorizeSubscribe(client: Client, sub: Subscription, done) {
      // Vehicles have no downlink: nothing is ever delivered to them, so no subscription
      // is kept (each would hold a queue of unacknowledged deliveries in broker memory:
      // measured ~75 MB for one QoS 1 subscriber that never acknowledged). A downlink,
      // when one comes, brings its own bounded queue.
      metrics.refused(GW_ERR.SUBSCRIBE_FORBIDDEN);
      log.warn({ event: 'mqtt_subscribe_refused', vin: client.id, reason: GW_ERR.SUBSCRIBE_FORBIDDEN, own_topic: subscriptionAllowed(client.id, sub.topic) }, 'subscription refused: vehicles have no downlink');
      done(null, null); // SUBACK 0x80 (MQTT-3.9.3)
    },

    authorizeForward(client: Client, packet: AedesPublishPacket) {
      // Defence in depth: only ever deliver a vehicle's own topics to it.
      return subscriptionAllowed(client.id, packet.topic) ? packet : null;
    },
  });

  // The connected clients by id, kept from aedes' public events (its own map is private).
  // A takeover (same id again) replaces the entry before the old client's disconnect comes.
  const live = new Map<string, Client>();
  aedes.on('client', (client: Client) => {
    live.set(client.id, client);
    metrics.connected(1);
    const session = { id: randomUUID(), at: new Date() };
    sessions.set(client, session);
    deps.connectivity?.connected(session.id, client.id, session.at);
    takenOver.get(client.id)?.();
  });
  aedes.on('clientDisconnect', (client: Client) => {
    if (live.get(client.id) === client) live.delete(client.id);
    metrics.connected(-1);
    consents.forget(client.id);
    const session = sessions.get(client);
    if (session) {
      sessions.delete(client);
      // _disconnected: aedes sets it on a DISCONNECT packet (lib/handlers/index.js).
      const clean = (client as Client & { _disconnected?: boolean })._disconnected === true;
      const reason: DisconnectReason = endReason.get(client) ?? (clean ? 'clean' : shuttingDown ? 'shutdown' : 'connection_lost');
      const at = new Date();
      const report = () => deps.connectivity?.disconnected(session.id, client.id, session.at, at, reason);
      if (reason !== 'taken_over') report();
      else {
        takenOver.get(client.id)?.();
        const timer = setTimeout(() => flush(), 1000);
        timer.unref();
        const flush = () => {
          clearTimeout(timer);
          if (takenOver.get(client.id) === flush) takenOver.delete(client.id);
          report();
        };
        takenOver.set(client.id, flush);
      }
    }
  });
  aedes.on('keepaliveTimeout', (client: Client) => {
    if (!endReason.has(client)) endReason.set(client, 'keepalive_timeout');
  });
  aedes.on('clientError', (client: Client, err: Error) => {
    // Our own refusals (a publish outside its topic, QoS 2) close the connection with a GW_ERR code.
    if (!endReason.has(client) && /^GW_ERR_/.test(err.message)) endReason.set(client, 'closed_by_gateway');
    log.info({ event: 'mqtt_client_error', vin: client.id, err: err.message }, 'client connection closed on error');
  });
  aedes.on('connectionError', (_client: Client, err: Error) => {
    log.info({ event: 'mqtt_connection_error', err: err.message }, 'connection closed before CONNECT completed');
  });

  return {
    handle(conn, info) {
      if (info) infos.set(conn, info);
      aedes.handle(conn);
    },
    connectedCount: () => aedes.connectedClients,
    closeSecretSessions(vin) {
      const client = live.get(vin);
      if (!client || authMethod.get(client) !== 'secret') return 0;
      metrics.refused(GW_ERR.SECRET_ROTATED);
      log.info({ event: 'mqtt_session_closed', vin, reason: GW_ERR.SECRET_ROTATED }, 'session of a rotated secret closed');
      endReason.set(client, 'closed_by_gateway');
      client.close();
      return 1;
    },
    inFlight: () => inFlight,
    async drain(graceMs) {
      accepting = false;
      let drained = true;
      if (inFlight > 0) {
        drained = await new Promise<boolean>((resolve) => {
          const t = setTimeout(() => resolve(false), graceMs);
          idleWaiters.push(() => {
            clearTimeout(t);
            resolve(true);
          });
        });
      }
      // The last PUBACKs are written by aedes after our callbacks returned (mqtt-packet
      // defers the write to the next tick): let them reach the sockets before anyone closes them.
      await new Promise((r) => setImmediate(r));
      await flushSockets(live.values(), 500);
      return { drained, left: inFlight };
    },
    close() {
      accepting = false;
      shuttingDown = true;
      return new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}
