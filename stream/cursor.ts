// The resume cursor of a stream event, as clients see it: opaque, URL- and header-safe.
// Inside: the record's position (writing transaction id, place in its entry), a tag of the
// vehicle, so a cursor of one vehicle's stream is refused by another's (positions are per
// vehicle: taken elsewhere, one would skip records silently), and with sharded storage the
// shard whose log the position is in (after a move, another shard's log cannot continue it).
import { createHash } from 'node:crypto';
import type { StreamPos } from '../proto/stream.ts';

const PATTERN = /^1\.([0-9a-z]{1,11})\.([0-9a-z]{1,11})\.([A-Za-z0-9_-]{6})(?:\.([0-9a-z]{1,4}))?$/;

/** A cursor's content: the position, and the shard it counts in (sharded storage only). */
export interface DecodedCursor extends StreamPos {
  shard?: number;
}

function tag(vin: string): string {
  return createHash('sha256').update(vin).digest('base64url').slice(0, 6);
}

export function encodeCursor(vin: string, p: StreamPos, vinTag = tag(vin), shard?: number): string {
  return `1.${p.tx.toString(36)}.${p.ord.toString(36)}.${vinTag}${shard === undefined ? '' : `.${shard.toString(36)}`}`;
}

/** Makes encodeCursor cheap for one vehicle's many events (`shard`: sharded storage, the VIN's shard). */
export function cursorEncoder(vin: string, shard?: number): (p: StreamPos) => string {
  const t = tag(vin);
  return (p) => encodeCursor(vin, p, t, shard);
}

/**
 * encodeCursor's text written as bytes into `out` at `at` (returns where it ends): a stream
 * writes one per event, and a string per event was a string more to build, join and encode.
 */
export function cursorWriter(vin: string, shard?: number): (out: Buffer, at: number, p: StreamPos) => number {
  const tail = Buffer.from(`.${tag(vin)}${shard === undefined ? '' : `.${shard.toString(36)}`}`, 'latin1');
  return (out, at, p) => {
    out[at++] = 49; // 1
    out[at++] = 46; // .
    at = putBase36(out, at, p.tx);
    out[at++] = 46;
    at = putBase36(out, at, p.ord);
    out.set(tail, at);
    return at + tail.length;
  };
}

/** A non-negative safe integer in base 36, as Number#toString(36) writes it. */
function putBase36(out: Buffer, at: number, n: number): number {
  let digits = 1;
  for (let t = n; t >= 36; t = Math.floor(t / 36)) digits++;
  const end = at + digits;
  for (let i = end - 1; i >= at; i--) {
    const q = Math.floor(n / 36);
    const d = n - q * 36;
    out[i] = d < 10 ? 48 + d : 87 + d; // 0-9, a-z
    n = q;
  }
  return end;
}

/** The position, or null when the text is not a cursor of this vehicle's streams. */
export function decodeCursor(vin: string, text: string): DecodedCursor | null {
  const m = PATTERN.exec(text);
  if (!m || m[3] !== tag(vin)) return null;
  const tx = parseInt(m[1]!, 36);
  const ord = parseInt(m[2]!, 36);
  if (!Number.isSafeInteger(tx) || !Number.isSafeInteger(ord)) return null;
  return m[4] === undefined ? { tx, ord } : { tx, ord, shard: parseInt(m[4], 36) };
}
