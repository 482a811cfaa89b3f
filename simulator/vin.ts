// ISO 3779 vehicle identification numbers for simulated vehicles.
import { randomInt } from 'node:crypto';
import { VIN_PATTERN } from '../identity/vin.ts';

/** The 33 characters a VIN may contain: I, O and Q are excluded (they read as 1 and 0). */
export const VIN_ALPHABET = '0123456789ABCDEFGHJKLMNPRSTUVWXYZ';
export const VIN_LENGTH = 17;
/** Index of the North-American check digit (position 9). */
const CHECK_INDEX = 8;
/** A prefix may not reach the check digit, which is computed from the rest. */
export const MAX_VIN_PREFIX_LENGTH = CHECK_INDEX;

export { VIN_PATTERN };
export const VIN_PREFIX_PATTERN = /^[0-9A-HJ-NPR-Z]{1,8}$/;

// 49 CFR 565.15 transliteration and position weights.
const TRANSLITERATION: Readonly<Record<string, number>> = {
  A: 1, B: 2, C: 3, D: 4, E: 5, F: 6, G: 7, H: 8,
  J: 1, K: 2, L: 3, M: 4, N: 5, P: 7, R: 9,
  S: 2, T: 3, U: 4, V: 5, W: 6, X: 7, Y: 8, Z: 9,
};
const WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2] as const;

function charValue(ch: string): number {
  if (ch >= '0' && ch <= '9') return ch.charCodeAt(0) - 48;
  const v = TRANSLITERATION[ch];
  if (v === undefined) throw new Error(`invalid VIN character ${JSON.stringify(ch)}`);
  return v;
}

/** The check digit ('0'-'9' or 'X') of a 17-character VIN; position 9 itself is ignored. */
export function vinCheckDigit(vin: string): string {
  if (vin.length !== VIN_LENGTH) throw new Error(`a VIN has ${VIN_LENGTH} characters, got ${vin.length}`);
  let sum = 0;
  for (let i = 0; i < VIN_LENGTH; i++) {
    sum += charValue(vin.charAt(i)) * (WEIGHTS[i] ?? 0);
  }
  const r = sum % 11;
  return r === 10 ? 'X' : String(r);
}

/** True when `vin` has the ISO 3779 syntax and a correct North-American check digit. */
export function isValidVin(vin: string): boolean {
  return VIN_PATTERN.test(vin) && vin.charAt(CHECK_INDEX) === vinCheckDigit(vin);
}

/**
 * A fresh random VIN starting with `prefix`, with a correct check digit.
 * Deliberately not drawn from the seeded PRNG: a rerun with the same --seed
 * must still get VINs the gateway has not seen, or provisioning answers 409
 * and the secret is lost.
 */
export function randomVin(prefix = ''): string {
  if (prefix !== '' && !VIN_PREFIX_PATTERN.test(prefix)) {
    throw new Error(`invalid VIN prefix ${JSON.stringify(prefix)}: 1-${MAX_VIN_PREFIX_LENGTH} characters of 0-9, A-Z without I, O, Q`);
  }
  const chars = prefix.split('');
  while (chars.length < VIN_LENGTH) {
    chars.push(VIN_ALPHABET.charAt(randomInt(VIN_ALPHABET.length)));
  }
  chars[CHECK_INDEX] = '0';
  const vin = chars.join('');
  return vin.slice(0, CHECK_INDEX) + vinCheckDigit(vin) + vin.slice(CHECK_INDEX + 1);
}
