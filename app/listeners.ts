// The gateway's sockets: the MQTT listener, MQTTS (TLS, with client certificates and a
// revocation list when configured), either one behind a load balancer's PROXY header, and
// the separate /metrics listener. Built here, opened and closed by app/gateway.ts.
import net from 'node:net';
import http from 'node:http';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import { certVinOf } from '../identity/cert.ts';
import { proxiedTlsEntry, proxyProtocolListener, type ProxyHeaderError } from '../gateway/proxy-protocol.ts';

export function listen(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Resolves once the server stopped listening and its last connection ended. */
export function closeServer(server: net.Server): Promise<void> {
  return new Promise<void>((resolve) => server.close(() => resolve()));
}

export function portOf(server: net.Server): number {
  return (server.address() as net.AddressInfo).port;
}

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
}

/** The MQTTS server's secure context: certificate, key, client CA and revocation list. */
export function tlsContext(files: TlsFiles, crl?: Buffer): tls.SecureContextOptions {
  return { cert: files.cert, key: files.key, minVersion: 'TLSv1.2', ...(files.ca ? { ca: files.ca } : {}), ...(crl ? { crl } : {}) };
}

export function readTlsFiles(config: Config): TlsFiles | undefined {
  return config.tls
    ? { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile), ca: config.tls.clientCaFile ? readFileSync(config.tls.clientCaFile) : undefined }
    : undefined;
}

export interface MqttListeners {
  /** null when client certificates are required: the plain port stays closed. */
  mqttServer: net.Server | null;
  /** The TLS server, or behind a balancer (MQTT_PROXY_PROTOCOL) the TCP listener in front of it. */
  mqttsServer: net.Server | null;
  /** The TLS server itself (its secure context is replaced when the CRL changes). */
  tlsServer: tls.Server | null;
}

/**
 * `accept` takes every socket once it is known who it is: the VIN of its client certificate
 * (MQTTS with a client CA), and the client's address from a PROXY header when behind a
 * load balancer (else the peer's).
 */
export function createMqttListeners(
  config: Config,
  tlsFiles: TlsFiles | undefined,
  accept: (socket: net.Socket, certVin?: string | null, remote?: string) => void,
  deps: { log: Logger; refused: (code: string) => void },
): MqttListeners {
  const { log } = deps;
  const proxyOpts = {
    timeoutMs: config.mqtt.connectTimeoutMs,
    onError: (err: ProxyHeaderError, socket: net.Socket) => {
      deps.refused(err.code);
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
  if (!tlsFiles) return { mqttServer, mqttsServer: null, tlsServer: null };

  let sourceOf: (s: net.Socket) => { address: string } | null = () => null;
  const tlsServer = tls.createServer(
    {
      ...tlsContext(tlsFiles, config.crl ? readFileSync(config.crl.file) : undefined),
      ...(tlsFiles.ca ? { requestCert: true, rejectUnauthorized: config.mqtt.requireClientCert } : {}),
    },
    (socket) => {
      socket.setNoDelay(true);
      accept(socket, tlsFiles.ca ? certVinOf(socket) : undefined, sourceOf(socket)?.address);
    },
  );
  let mqttsServer: net.Server = tlsServer;
  // Behind a balancer passing TLS through: the PROXY header comes before the handshake.
  if (config.mqtt.proxyProtocol) {
    const entry = proxiedTlsEntry(tlsServer, proxyOpts);
    sourceOf = entry.sourceOf;
    mqttsServer = net.createServer({ noDelay: true }, entry.listener);
  }
  mqttsServer.maxConnections = config.mqtt.maxConnections;
  tlsServer.on('tlsClientError', (err) => log.info({ event: 'mqtt_tls_refused', err: err.message }, 'TLS handshake refused'));
  return { mqttServer, mqttsServer, tlsServer };
}

/** GET /metrics on a listener of its own (METRICS_PORT); everything else 404. */
export function createMetricsServer(prom: { text(): Promise<string>; contentType: string }): http.Server {
  return http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    prom.text().then(
      (text) => res.writeHead(200, { 'content-type': prom.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
}
