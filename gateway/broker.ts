// The embedded MQTT broker: aedes with the gateway's identity rules and the ingest
// pipeline in its hooks. It never listens by itself; main.ts (or a test) hands it sockets.
import { Aedes, type AedesPublishPacket, type Client, type Connection, type PublishPacket, type Subscription } from 'aedes';
import { isValidVin } from '../identity/vin.ts';
import { telemetryTopic } from '../proto/index.ts';
import { verifySecret } from '../identity/secrets.ts';
import type { ConsentCache } from './consent-cache.ts';
import { GW_ERR } from './errors.ts';
import type { Ingest } from './ingest.ts';
import type { CredentialSource, GatewayMetrics } from './ports.ts';
import { createAuthLimiter } from './auth-limiter.ts';

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
}

export interface BrokerOptions {
  /** CONNECT must arrive within this many ms of the TCP connection. Default 10000. */
  connectTimeoutMs?: number;
  /** Failed authentications per source address before its attempts are refused unchecked. Default 10. */
  authFailuresMax?: number;
  /** Window (and cool-down) of authFailuresMax, ms. Default 60000. */
  authFailureWindowMs?: number;
}

/** What the transport knows about a connection, handed in with it. */
export interface ConnectionInfo {
  remoteAddress: string;
  /**
   * VIN named by a verified client certificate (mutual TLS), or undefined without one.
   * null: a certificate was presented and verified but names no valid VIN.
   */
  certVin?: string | null;
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
async function flushSockets(aedes: Aedes, maxMs: number): Promise<void> {
  const clients = Object.values((aedes as unknown as { clients: Record<string, Client> }).clients ?? {});
  const pendingWrites = clients
    .map((c) => c.conn as unknown as { writableLength?: number; once?: (e: string, f: () => void) => void; destroyed?: boolean })
    .filter((conn) => !conn.destroyed && (conn.writableLength ?? 0) > 0 && typeof conn.once === 'function')
    .map((conn) => new Promise<void>((r) => conn.once!('drain', r)));
  if (pendingWrites.length === 0) return;
  await Promise.race([Promise.all(pendingWrites), new Promise((r) => setTimeout(r, maxMs).unref())]);
}

export async function createBroker(opts: BrokerOptions, deps: BrokerDeps): Promise<Broker> {
  const { ingest, credentials, consents, metrics, log } = deps;
  let accepting = true;
  let inFlight = 0;
  let idleWaiters: (() => void)[] = [];
  const infos = new WeakMap<object, ConnectionInfo>();
  const limiter = createAuthLimiter({ maxFailures: opts.authFailuresMax ?? 10, windowMs: opts.authFailureWindowMs ?? 60_000 });

  const aedes = await Aedes.createBroker({
    connectTimeout: opts.connectTimeoutMs ?? 10_000,
    maxClientsIdLength: 23,

    authenticate(client: Client, username, password, done) {
      const vin = client.id;
      const info = infos.get(client.conn) ?? { remoteAddress: 'unknown' };
      // Counted per source address only. Per VIN would hand anyone who reads a VIN off a
      // windscreen a way to lock that car out; and a 256-bit secret is not guessable per VIN.
      const ipKey = `ip:${info.remoteAddress}`;
      const refuse = (reason: string, msg: string, count = true) => {
        metrics.refused(reason);
        if (count) limiter.failed(ipKey);
        log.warn({ event: 'mqtt_auth_refused', vin: isValidVin(vin) ? vin : undefined, remote: info.remoteAddress, reason }, msg);
        done(authError('not authorized') as never, false);
      };
      if (!limiter.allowed(ipKey)) {
        // Not even checked: repeated failures from this address.
        return refuse(GW_ERR.AUTH_RATE_LIMITED, 'too many failed authentications; refused without checking', false);
      }
      if (!isValidVin(vin) || username !== vin) {
        return refuse(GW_ERR.CLIENT_ID_MISMATCH, 'client id must be the VIN and equal the username');
      }
      if (info.certVin === null || (info.certVin !== undefined && info.certVin !== vin)) {
        return refuse(GW_ERR.CERT_MISMATCH, 'client certificate does not name this VIN');
      }
      const secret = password ? password.toString('utf8') : '';
      credentials
        .getCredentials(vin)
        .then(async (cred) => {
          // A verified client certificate naming the VIN authenticates by itself (mutual
          // TLS); otherwise the secret must match.
          const ok = cred !== null && (info.certVin === vin || (secret.length > 0 && secret.length <= 512 && (await verifySecret(secret, cred.secretHash))));
          if (!ok) return refuse(GW_ERR.BAD_CREDENTIALS, 'unknown vehicle or wrong secret');
          // Consent is loaded before the first message, so the filter never waits for it.
          await consents.load(vin);
          done(null, true);
        })
        .catch((err: Error) => {
          log.warn({ event: 'mqtt_auth_failed', vin, err: err.message }, 'authentication could not be checked');
          // MQTT-3.2.2.3: return code 3, server unavailable (the database did not answer).
          done(Object.assign(new Error('server unavailable'), { returnCode: 3 }) as never, false);
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
      if (!subscriptionAllowed(client.id, sub.topic)) {
        metrics.refused(GW_ERR.SUBSCRIBE_FORBIDDEN);
        log.warn({ event: 'mqtt_subscribe_refused', vin: client.id, reason: GW_ERR.SUBSCRIBE_FORBIDDEN }, 'subscription outside the vehicle\'s topics');
        return done(null, null); // SUBACK 0x80 (MQTT-3.9.3)
      }
      done(null, sub);
    },

    authorizeForward(client: Client, packet: AedesPublishPacket) {
      // Defence in depth: only ever deliver a vehicle's own topics to it.
      return subscriptionAllowed(client.id, packet.topic) ? packet : null;
    },
  });

  aedes.on('client', () => metrics.connected(1));
  aedes.on('clientDisconnect', (client: Client) => {
    metrics.connected(-1);
    consents.forget(client.id);
  });
  aedes.on('clientError', (client: Client, err: Error) => {
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
      await flushSockets(aedes, 500);
      return { drained, left: inFlight };
    },
    close() {
      accepting = false;
      return new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}
