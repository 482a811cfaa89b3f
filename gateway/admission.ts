// What a socket may cost before it has authenticated. Measured on the unguarded broker:
// 300 sockets each holding 600 KB of a CONNECT announced as 900 KB grew the RSS by
// ~156 MB. Three bounds, checked as bytes arrive, before aedes buffers anything:
//  - the first packet (the CONNECT, MQTT-3.1.0-1) may announce at most maxConnectBytes;
//  - one source address (IPv6: one /64) holds at most maxConnectionsPerAddress sockets;
//  - all unauthenticated sockets together hold at most maxPreauthBytes of received data.
import type { Socket } from 'node:net';
import { guardSocket, type PacketTooLargeError } from './packet-guard.ts';
import { GW_ERR } from './errors.ts';
import { addressGroup } from '../identity/address.ts';
import type { Broker, BrokerLogger, ConnectionInfo } from './broker.ts';
import type { GatewayMetrics } from './ports.ts';

export interface AdmissionOptions {
  /** Largest MQTT packet after CONNECT, bytes (MAX_PACKET_BYTES). */
  maxPacketBytes: number;
  /** Largest first packet (CONNECT), bytes (MQTT_MAX_CONNECT_BYTES). Default 4096. */
  maxConnectBytes: number;
  /** Simultaneous sockets per source address, IPv6 grouped by /64 (MQTT_MAX_CONNECTIONS_PER_ADDRESS). */
  maxConnectionsPerAddress: number;
  /** Bytes all unauthenticated sockets may hold together (MQTT_PREAUTH_MAX_BYTES). */
  maxPreauthBytes: number;
}

export interface Admission {
  /** Takes a new TCP/TLS socket: refuses it or hands it (guarded) to the broker. */
  /** remote: the client's address from a PROXY header (behind a load balancer); default the peer's. */
  accept(socket: Socket, certVin?: string | null, remote?: string): void;
  /** Bytes held now by sockets that have not authenticated. */
  preauthBytes(): number;
  /** Sockets open now from the address group of addr. */
  connectionsFrom(addr: string): number;
}

export function createAdmission(opts: AdmissionOptions, deps: { broker: Broker; metrics: GatewayMetrics; log: BrokerLogger }): Admission {
  const { broker, metrics, log } = deps;
  const perAddress = new Map<string, number>();
  let preauth = 0;
  // One socket may hold its CONNECT and one packet pipelined behind it before CONNACK.
  const perSocketPreauth = opts.maxConnectBytes + opts.maxPacketBytes;

  function refuse(socket: Socket, reason: string, msg: string, extra: object = {}): void {
    metrics.refused(reason);
    log.warn({ event: 'mqtt_connection_refused', reason, remote: socket.remoteAddress, ...extra }, msg);
    socket.destroy();
  }

  return {
    accept(socket, certVin, remote) {
      const address = remote ?? socket.remoteAddress;
      const group = addressGroup(address);
      const open = perAddress.get(group) ?? 0;
      if (open >= opts.maxConnectionsPerAddress) {
        return refuse(socket, GW_ERR.TOO_MANY_CONNECTIONS, 'connection refused: too many connections from this address', { limit: opts.maxConnectionsPerAddress });
      }
      perAddress.set(group, open + 1);
      let held = 0;
      let authenticated = false;
      const release = () => {
        preauth -= held;
        held = 0;
      };
      socket.once('close', () => {
        const n = (perAddress.get(group) ?? 1) - 1;
        if (n <= 0) perAddress.delete(group);
        else perAddress.set(group, n);
        release();
      });
      const info: ConnectionInfo = {
        remoteAddress: address ?? 'unknown',
        onAuthenticated: () => {
          authenticated = true;
          release();
        },
      };
      if (certVin !== undefined) info.certVin = certVin;
      const guarded = guardSocket(
        socket,
        opts.maxPacketBytes,
        (err: PacketTooLargeError) => {
          metrics.refused(err.code);
          log.warn({ event: 'mqtt_packet_too_large', reason: err.code, size: err.size, limit: err.limit, remote: socket.remoteAddress }, 'connection closed: packet too large');
        },
        {
          firstMaxBytes: opts.maxConnectBytes,
          onData: (bytes) => {
            if (authenticated) return true;
            if (held + bytes > perSocketPreauth || preauth + bytes > opts.maxPreauthBytes) {
              metrics.refused(GW_ERR.PREAUTH_BUDGET);
              log.warn({ event: 'mqtt_connection_refused', reason: GW_ERR.PREAUTH_BUDGET, remote: socket.remoteAddress, held_bytes: preauth }, 'connection closed: unauthenticated sockets hold too much');
              return false;
            }
            held += bytes;
            preauth += bytes;
            return true;
          },
        },
      );
      broker.handle(guarded, info);
    },
    preauthBytes: () => preauth,
    connectionsFrom: (addr) => perAddress.get(addressGroup(addr)) ?? 0,
  };
}
