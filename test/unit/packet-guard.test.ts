// gateway/packet-guard.ts: the packet scanner on byte streams cut at every place, and
// guardSocket on an in-memory Duplex standing for the socket: what passes through, what
// is refused, and that a full reader stops the socket being read.
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createPacketScanner, guardSocket, type PacketTooLargeError } from '../../gateway/packet-guard.ts';
import { settle, until } from './fakes/wait.ts';
import { remainingLength } from '../helpers/raw-mqtt.ts';

/** A packet of `total` bytes in all (fixed header included), type PUBLISH QoS 0. */
function packet(total: number, fill = 0x61): Buffer {
  for (let body = total - 2; body >= 0; body--) {
    const h = [0x30, ...remainingLength(body)];
    if (h.length + body === total) return Buffer.concat([Buffer.from(h), Buffer.alloc(body, fill)]);
  }
  throw new Error(`no packet of ${total} bytes`);
}
const PINGREQ = Buffer.from([0xc0, 0x00]);

describe('packet scanner', () => {
  it('packets up to the limit pass, whatever the chunking (cut at every byte)', () => {
    const stream = Buffer.concat([packet(100), PINGREQ, packet(128 + 3), packet(200), PINGREQ]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const scan = createPacketScanner(200);
      expect(scan(stream.subarray(0, cut))).toBeNull();
      expect(scan(stream.subarray(cut))).toBeNull();
    }
    const scan = createPacketScanner(200);
    for (const b of stream) expect(scan(Buffer.from([b]))).toBeNull();
  });

  it('a header announcing a packet over the limit is refused as soon as its length is known', () => {
    // 0x30, then a Remaining Length of 198 in two bytes: known at the header's 3rd byte.
    const big = packet(201);
    expect(big.subarray(0, 3)).toEqual(Buffer.from([0x30, 0xc6, 0x01]));
    for (let cut = 1; cut < 3; cut++) {
      const scan = createPacketScanner(200);
      expect(scan(Buffer.concat([packet(50), big.subarray(0, cut)]))).toBeNull();
      if (cut < 2) expect(scan(big.subarray(cut, 2))).toBeNull();
      const err = scan(big.subarray(2, 3));
      expect(err).not.toBeNull();
      expect(err!.code).toBe('GW_ERR_PACKET_TOO_LARGE');
      expect(err!.size).toBe(201);
      expect(err!.limit).toBe(200);
    }
  });

  it('an announced size of hundreds of MB is refused from the header alone (the body never needs to arrive)', () => {
    const scan = createPacketScanner(1 << 20);
    const err = scan(Buffer.from([0x30, ...remainingLength(256 * 1024 * 1024 - 1)]));
    expect(err?.size).toBe(256 * 1024 * 1024 - 1 + 5);
  });

  it('a Remaining Length of more than 4 bytes (malformed, MQTT-2.2.3) is refused', () => {
    const scan = createPacketScanner(1 << 30);
    // The first packet (the CONNECT) has its own code; the same header later is a packet too large.
    expect(scan(Buffer.from([0x10, 0x80, 0x80, 0x80, 0x80, 0x01]))?.code).toBe('GW_ERR_CONNECT_TOO_LARGE');
    const later = createPacketScanner(1 << 30);
    expect(later(Buffer.from([0x10, 0x02, 0x00, 0x00]))).toBeNull();
    expect(later(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]))?.code).toBe('GW_ERR_PACKET_TOO_LARGE');
  });

  it('counts bodies: a body byte that looks like a header does not start a packet', () => {
    // Body full of 0xff: were it read as headers, lengths would be huge.
    const scan = createPacketScanner(300);
    expect(scan(Buffer.concat([packet(300, 0xff), packet(300, 0xff)]))).toBeNull();
    expect(scan(packet(301))).not.toBeNull();
  });
});

/** An in-memory stand-in for the client's socket: the test pushes what the client sends; writes are kept. */
class FakeSocket extends Duplex {
  sent: Buffer[] = [];
  constructor() {
    super();
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.sent.push(chunk);
    cb();
  }
}

function collect(s: Duplex): { data: Buffer[]; bytes: () => Buffer } {
  const data: Buffer[] = [];
  s.on('data', (d: Buffer) => data.push(d));
  return { data, bytes: () => Buffer.concat(data) };
}

describe('guardSocket', () => {
  it('passes packets within the limit through unchanged, and writes back to the socket', async () => {
    const sock = new FakeSocket();
    const refused: PacketTooLargeError[] = [];
    const g = guardSocket(sock, 500, (e) => refused.push(e));
    const got = collect(g);
    const stream = Buffer.concat([packet(300), PINGREQ, packet(500)]);
    sock.push(stream.subarray(0, 7));
    sock.push(stream.subarray(7));
    await until(() => got.bytes().length === stream.length, 'all bytes through');
    expect(got.bytes().equals(stream)).toBe(true);
    g.write(Buffer.from([0xd0, 0x00]));
    await settle();
    expect(Buffer.concat(sock.sent)).toEqual(Buffer.from([0xd0, 0x00]));
    expect(refused).toEqual([]);
    expect(sock.destroyed).toBe(false);
  });

  it('closes the socket when a header announces an oversized packet; nothing of that packet reaches the reader', async () => {
    const sock = new FakeSocket();
    const refused: PacketTooLargeError[] = [];
    const g = guardSocket(sock, 500, (e) => refused.push(e));
    g.on('error', () => {});
    const got = collect(g);
    const ok = packet(100);
    sock.push(ok);
    await until(() => got.bytes().length === ok.length, 'first packet through');
    sock.push(Buffer.concat([Buffer.from([0x30, ...remainingLength(10_000)]), Buffer.alloc(100, 0x62)]));
    await until(() => sock.destroyed && g.destroyed, 'socket and guard destroyed');
    expect(refused.map((e) => [e.code, e.size, e.limit])).toEqual([['GW_ERR_PACKET_TOO_LARGE', 10_003, 500]]);
    expect(got.bytes().equals(ok)).toBe(true);
  });

  it('stops reading the socket while the reader is full, and reads on once it drains (backpressure)', async () => {
    const sock = new FakeSocket();
    const g = guardSocket(sock, 2000, () => {});
    const one = packet(1000);
    // 64 packets of 1000 bytes: far above the guard's readable buffer (16 KiB).
    for (let i = 0; i < 64; i++) sock.push(one);
    await until(() => sock.isPaused(), 'socket paused');
    expect(g.readableLength).toBeGreaterThan(0);
    expect(g.readableLength).toBeLessThan(64 * 1000);
    const got = collect(g);
    await until(() => got.bytes().length === 64 * 1000, 'everything read once the reader drains');
    expect(sock.isPaused()).toBe(false);
  });

  it('the end of the socket ends the guarded stream', async () => {
    const sock = new FakeSocket();
    const g = guardSocket(sock, 500, () => {});
    const got = collect(g);
    let ended = false;
    g.on('end', () => (ended = true));
    sock.push(PINGREQ);
    sock.push(null);
    await until(() => ended, 'guarded stream ended');
    expect(got.bytes()).toEqual(PINGREQ);
  });
});
