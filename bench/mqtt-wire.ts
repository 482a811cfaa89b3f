// MQTT 3.1.1 spoken by hand, just what the load generator needs: CONNECT, CONNACK,
// PUBLISH QoS 1, PUBACK. Telemetry payloads are prebuilt templates whose seq and
// recorded_at_ms varints have a fixed width, so stamping a message is a memcpy plus a
// few byte writes: the load generator stays lean and leaves the CPU to the gateway.
import { TelemetryBatch, TelemetryRecord, type ITelemetryRecord } from '../proto/index.ts';

export const CONNACK = 0x20;
export const PUBACK = 0x40;

function remainingLength(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  const out = Buffer.allocUnsafe(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
}

/** CONNECT, protocol level 4 (3.1.1), clean session, with username and password. */
export function connectPacket(clientId: string, username: string | null, password: string | null, keepaliveS = 0): Buffer {
  let flags = 0x02; // clean session
  const payload = [str(clientId)];
  if (username !== null) {
    flags |= 0x80;
    payload.push(str(username));
  }
  if (password !== null) {
    flags |= 0x40;
    payload.push(str(password));
  }
  const vh = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, flags, (keepaliveS >> 8) & 0xff, keepaliveS & 0xff]);
  const body = Buffer.concat([vh, ...payload]);
  return Buffer.concat([Buffer.from([0x10, ...remainingLength(body.length)]), body]);
}

/** Splits a byte stream into MQTT packets: calls onPacket(firstByte, body). */
export class PacketReader {
  private rest: Buffer | null = null;
  constructor(private readonly onPacket: (first: number, body: Buffer) => void) {}

  push(chunk: Buffer): void {
    const buf = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    this.rest = null;
    let off = 0;
    for (;;) {
      if (buf.length - off < 2) break;
      let len = 0;
      let mul = 1;
      let i = off + 1;
      let complete = false;
      for (let k = 0; k < 4 && i < buf.length; k++, i++) {
        const b = buf[i]!;
        len += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          i++;
          break;
        }
      }
      if (!complete || buf.length - i < len) break;
      this.onPacket(buf[off]!, buf.subarray(i, i + len));
      off = i + len;
    }
    if (off < buf.length) this.rest = Buffer.from(buf.subarray(off));
  }
}

// seq is a 5-byte varint: values in [2^28, 2^35); recorded_at_ms a 6-byte varint:
// [2^35, 2^42) ms, i.e. 1971 to 2109. Fixed widths make every message of a template
// the same length.
export const SEQ_BASE = 2 ** 28;
const SEQ_WIDTH = 5;
const MS_WIDTH = 6;

function writeVarintFixed(buf: Buffer, off: number, v: number, width: number): void {
  for (let i = 0; i < width - 1; i++) {
    buf[off + i] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  if (v > 127) throw new Error('varint does not fit its fixed width');
  buf[off + width - 1] = v;
}

export interface PublishTemplate {
  /** A whole PUBLISH packet (QoS 1) with packet id, seqs and times to be stamped. */
  buf: Buffer;
  idOffset: number;
  seqOffsets: number[];
  msOffsets: number[];
  records: number;
}

/**
 * Builds the PUBLISH of a TelemetryBatch whose records carry the given groups
 * (technical/consumption/location); seq and recorded_at_ms are stamped per message.
 */
export function buildPublishTemplate(vin: string, topic: string, records: readonly Omit<ITelemetryRecord, 'seq' | 'recordedAtMs'>[]): PublishTemplate {
  const parts: Buffer[] = [];
  const vinB = Buffer.from(vin, 'latin1');
  parts.push(Buffer.from([0x0a, vinB.length]), vinB);
  const relSeq: number[] = [];
  const relMs: number[] = [];
  let pos = 2 + vinB.length;
  for (const r of records) {
    const groups = Buffer.from(TelemetryRecord.encode({ technical: r.technical ?? null, consumption: r.consumption ?? null, location: r.location ?? null }).finish());
    const recLen = 1 + SEQ_WIDTH + 1 + MS_WIDTH + groups.length;
    const head = Buffer.from([0x12, ...remainingLength(recLen)]); // protobuf varint = same encoding
    parts.push(head);
    pos += head.length;
    const rec = Buffer.alloc(recLen);
    rec[0] = 0x08; // field 1 (seq), varint
    relSeq.push(pos + 1);
    rec[1 + SEQ_WIDTH] = 0x10; // field 2 (recorded_at_ms), varint
    relMs.push(pos + 2 + SEQ_WIDTH);
    groups.copy(rec, 2 + SEQ_WIDTH + MS_WIDTH);
    parts.push(rec);
    pos += recLen;
  }
  const payload = Buffer.concat(parts);
  const topicB = str(topic);
  const varLen = topicB.length + 2 + payload.length;
  const fixed = Buffer.from([0x32, ...remainingLength(varLen)]);
  const buf = Buffer.concat([fixed, topicB, Buffer.alloc(2), payload]);
  const payloadStart = fixed.length + topicB.length + 2;
  const tpl: PublishTemplate = {
    buf,
    idOffset: fixed.length + topicB.length,
    seqOffsets: relSeq.map((o) => o + payloadStart),
    msOffsets: relMs.map((o) => o + payloadStart),
    records: records.length,
  };
  // Self-check: the stamped bytes must decode to what we meant.
  const probe = stamp(tpl, 1, SEQ_BASE + 12345, Date.now());
  const decoded = TelemetryBatch.decode(probe.subarray(payloadStart));
  if (decoded.vin !== vin || decoded.records.length !== records.length || Number(decoded.records[0]!.seq) !== SEQ_BASE + 12345) {
    throw new Error('publish template does not decode as intended');
  }
  return tpl;
}

/** A fresh buffer: the template with packet id, consecutive seqs from seq0 and time ms. */
export function stamp(tpl: PublishTemplate, id: number, seq0: number, ms: number): Buffer {
  const b = Buffer.allocUnsafe(tpl.buf.length);
  tpl.buf.copy(b);
  b[tpl.idOffset] = id >> 8;
  b[tpl.idOffset + 1] = id & 0xff;
  for (let r = 0; r < tpl.records; r++) {
    writeVarintFixed(b, tpl.seqOffsets[r]!, seq0 + r, SEQ_WIDTH);
    writeVarintFixed(b, tpl.msOffsets[r]!, ms, MS_WIDTH);
  }
  return b;
}
