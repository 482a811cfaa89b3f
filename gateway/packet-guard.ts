// A size limit on MQTT packets, enforced before aedes buffers them: aedes 1.x (through
// mqtt-packet) would otherwise accumulate a packet of up to 256 MB (the MQTT maximum,
// MQTT-2.2.3) in memory before looking at it. The guard reads each fixed header's
// Remaining Length (MQTT-2.2.3, variable byte integer) as bytes pass, and closes the
// connection as soon as a header announces a packet over the limit.
import { Duplex } from 'node:stream';

export class PacketTooLargeError extends Error {
  readonly code: 'GW_ERR_PACKET_TOO_LARGE' | 'GW_ERR_CONNECT_TOO_LARGE';
  constructor(readonly size: number, readonly limit: number, first = false) {
    super(`MQTT ${first ? 'first packet (CONNECT)' : 'packet'} of ${size} bytes exceeds the limit of ${limit}`);
    this.code = first ? 'GW_ERR_CONNECT_TOO_LARGE' : 'GW_ERR_PACKET_TOO_LARGE';
  }
}

/**
 * Incremental scanner of MQTT packet boundaries. The first packet (the CONNECT,
 * MQTT-3.1.0-1) has its own, smaller limit when firstMaxBytes is given: before
 * authentication nobody may make the gateway hold more than a CONNECT needs.
 */
export function createPacketScanner(maxBytes: number, firstMaxBytes = maxBytes): (chunk: Buffer) => PacketTooLargeError | null {
  let first = true;
  let state: 0 | 1 | 2 = 0; // 0: expecting the fixed header's first byte, 1: in Remaining Length, 2: in the body
  let length = 0;
  let multiplier = 1;
  let lengthBytes = 0;
  let skip = 0;
  return (chunk) => {
    let i = 0;
    while (i < chunk.length) {
      if (state === 2) {
        const n = Math.min(skip, chunk.length - i);
        skip -= n;
        i += n;
        if (skip === 0) state = 0;
        continue;
      }
      const b = chunk[i++]!;
      if (state === 0) {
        state = 1;
        length = 0;
        multiplier = 1;
        lengthBytes = 0;
        continue;
      }
      length += (b & 0x7f) * multiplier;
      multiplier *= 128;
      lengthBytes++;
      if (b & 0x80) {
        // More than 4 length bytes is malformed (MQTT-2.2.3): let aedes refuse it, but stop counting.
        if (lengthBytes >= 4) return new PacketTooLargeError(Number.MAX_SAFE_INTEGER, first ? firstMaxBytes : maxBytes, first);
        continue;
      }
      const total = 1 + lengthBytes + length;
      const limit = first ? firstMaxBytes : maxBytes;
      if (total > limit) return new PacketTooLargeError(total, limit, first);
      first = false;
      skip = length;
      state = skip === 0 ? 0 : 2;
    }
    return null;
  };
}

/**
 * Wraps a socket so that aedes reads through the size guard. Any Duplex will do (a
 * net.Socket, a TLS socket, or an in-memory stream in unit tests).
 */
export function guardSocket(
  socket: Duplex,
  maxBytes: number,
  onRefused: (err: PacketTooLargeError) => void,
  opts: { firstMaxBytes?: number; onData?: (bytes: number) => boolean } = {},
): Duplex {
  const scan = createPacketScanner(maxBytes, opts.firstMaxBytes);
  const guarded = new Duplex({
    // What one connection may hold unread before its socket is paused: pinned, because
    // Node 22 raised the default (16 KiB on Node 20) to 64 KiB.
    readableHighWaterMark: 16 * 1024,
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end(cb);
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  socket.on('data', (chunk: Buffer) => {
    const err = scan(chunk);
    if (err) {
      onRefused(err);
      socket.destroy();
      guarded.destroy();
      return;
    }
    // The admission's budget of unauthenticated memory may refuse these bytes.
    if (opts.onData && !opts.onData(chunk.length)) {
      socket.destroy();
      guarded.destroy();
      return;
    }
    if (!guarded.push(chunk)) socket.pause();
  });
  socket.on('end', () => guarded.push(null));
  socket.on('error', (e) => guarded.destroy(e));
  socket.on('close', () => guarded.destroy());
  socket.on('drain', () => guarded.emit('drain'));
  return guarded;
}
