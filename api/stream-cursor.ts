// The resume cursor of a stream event, as clients see it: opaque, URL- and header-safe.
// Inside: the record's position (writing transaction id, place in its entry) and a tag of
// the vehicle, so a cursor of one vehicle's stream is refused by another's (positions are
// per vehicle: taken elsewhere, one would skip records silently).
import { createHash } from 'node:crypto';
import type { CursorPos } from './ports.ts';

export type { CursorPos };

const PATTERN = /^1\.([0-9a-z]{1,11})\.([0-9a-z]{1,11})\.([A-Za-z0-9_-]{6})$/;

function tag(vin: string): string {
  return createHash('sha256').update(vin).digest('base64url').slice(0, 6);
}

export function encodeCursor(vin: string, p: CursorPos, vinTag = tag(vin)): string {
  return `1.${p.tx.toString(36)}.${p.ord.toString(36)}.${vinTag}`;
}

/** Makes encodeCursor cheap for one vehicle's many events. */
export function cursorEncoder(vin: string): (p: CursorPos) => string {
  const t = tag(vin);
  return (p) => encodeCursor(vin, p, t);
}

/** The position, or null when the text is not a cursor of this vehicle's streams. */
export function decodeCursor(vin: string, text: string): CursorPos | null {
  const m = PATTERN.exec(text);
  if (!m || m[3] !== tag(vin)) return null;
  const tx = parseInt(m[1]!, 36);
  const ord = parseInt(m[2]!, 36);
  if (!Number.isSafeInteger(tx) || !Number.isSafeInteger(ord)) return null;
  return { tx, ord };
}
