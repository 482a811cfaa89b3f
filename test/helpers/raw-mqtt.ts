// A minimal MQTT 3.1.1 encoder (MQTT-2.2, 3.1, 3.3, 3.6, 3.8) and a raw TCP connection,
// for packets MQTT.js will not send: QoS 2 without PUBREL, partial CONNECTs, floods.
import net from 'node:net';

export function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}
export const u16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
export const str = (s: string | Buffer) => {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([u16(b.length), b]);
};
export const packet = (type: number, flags: number, body: Buffer) => Buffer.concat([Buffer.from([(type << 4) | flags]), remainingLength(body.length), body]);

export interface ConnectOpts {
  clientId: string | Buffer;
  username?: string | Buffer;
  password?: string | Buffer;
  clean?: boolean;
  keepalive?: number;
  /** Protocol name other than "MQTT" (a malformed CONNECT). */
  protocolName?: string;
  /** Protocol level other than 4 (MQTT 3.1.1). */
  level?: number;
  /** Extra bits OR-ed into the computed connect flags. */
  flags?: number;
  /** Connect flags replacing the computed ones. */
  rawFlags?: number;
}
/** The variable header and payload of a CONNECT (without its fixed header). */
export function connectBody(o: ConnectOpts): Buffer {
  let flags = o.clean === false ? 0 : 0x02;
  if (o.username !== undefined) flags |= 0x80;
  if (o.password !== undefined) flags |= 0x40;
  flags |= o.flags ?? 0;
  const parts = [str(o.protocolName ?? 'MQTT'), Buffer.from([o.level ?? 4, o.rawFlags ?? flags]), u16(o.keepalive ?? 0), str(o.clientId)];
  if (o.username !== undefined) parts.push(str(o.username));
  if (o.password !== undefined) parts.push(str(o.password));
  return Buffer.concat(parts);
}
export const connectPacket = (o: ConnectOpts) => packet(1, 0, connectBody(o));
export const publishPacket = (topic: string, payload: Buffer, qos: 0 | 1 | 2, id = 1) =>
  packet(3, qos << 1, Buffer.concat([str(topic), qos ? u16(id) : Buffer.alloc(0), payload]));
export const subscribePacket = (filter: string, qos: 0 | 1 | 2 = 1, id = 1) => packet(8, 2, Buffer.concat([u16(id), str(filter), Buffer.from([qos])]));

export interface Packet {
  type: number;
  flags: number;
  body: Buffer;
}

/** The complete packets at the start of `b` (a trailing partial packet is left out). */
export function parsePackets(b: Buffer): Packet[] {
  const out: Packet[] = [];
  let p = 0;
  while (p + 2 <= b.length) {
    let len = 0;
    let mul = 1;
    let q = p + 1;
    for (;;) {
      if (q >= b.length) return out;
      const x = b[q++]!;
      len += (x & 0x7f) * mul;
      mul *= 128;
      if (!(x & 0x80)) break;
    }
    if (q + len > b.length) return out;
    out.push({ type: b[p]! >> 4, flags: b[p]! & 15, body: b.subarray(q, q + len) });
    p = q + len;
  }
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class Raw {
  readonly openedAt = performance.now();
  private chunks: Buffer[] = [];
  closedAfterMs: number | null = null;
  readonly closed: Promise<number>;
  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => this.chunks.push(d));
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closedAfterMs = performance.now() - this.openedAt;
        resolve(this.closedAfterMs);
      }),
    );
  }
  static open(port: number, localAddress = '127.0.0.1', host = '127.0.0.1'): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port, localAddress, noDelay: true });
      const r = new Raw(s);
      s.once('connect', () => resolve(r));
      s.once('error', reject);
    });
  }
  /** Writes without waiting (a flood, or bytes whose fate the test reads from the replies). */
  write(b: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(b);
  }
  send(b: Buffer): Promise<void> {
    if (this.socket.destroyed) return Promise.resolve();
    return new Promise((r) => this.socket.write(b, () => r()));
  }
  get isClosed(): boolean {
    return this.closedAfterMs !== null;
  }
  async closedWithin(ms: number): Promise<boolean> {
    if (this.isClosed) return true;
    return Promise.race([this.closed.then(() => true), sleep(ms).then(() => false)]);
  }
  packets(): Packet[] {
    const b = Buffer.concat(this.chunks);
    this.chunks = [b];
    return parsePackets(b);
  }
  /** CONNACK return codes received. */
  connacks(): number[] {
    return this.packets().filter((x) => x.type === 2).map((x) => x.body[1]!);
  }
  count(type: number): number {
    return this.packets().filter((x) => x.type === type).length;
  }
  async waitPacket(type: number, ms = 2000): Promise<Packet | null> {
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      const p = this.packets().find((x) => x.type === type);
      if (p) return p;
      if (this.isClosed) return null;
      await sleep(5);
    }
    return null;
  }
  destroy(): void {
    this.socket.destroy();
  }
}

/** Opens a raw connection and sends a CONNECT; the CONNACK return code, or null when closed without one. */
export async function rawConnect(port: number, localAddress: string, o: ConnectOpts, waitMs = 15_000): Promise<{ code: number | null; raw: Raw }> {
  const r = await Raw.open(port, localAddress);
  await r.send(connectPacket(o));
  const p = await r.waitPacket(2, waitMs);
  return { code: p ? p.body[1]! : null, raw: r };
}
