// The embedded OpenID Provider's signing keys, and their rotation. One stored row holds the
// ring, newest first: the newest signs; the ones it replaced keep verifying (they stay in
// the JWKS) until every token they signed has expired, then they are dropped. A row
// written by an earlier version holds a single JWK: it is read as a ring of one.
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK } from 'jose';

/** The row (oidc_keys.name) of the ring; the name the single key of earlier versions had. */
export const SIGNING_KEYS = 'signing-rs256';
/** Lifetime of the provider's ID tokens, s (identity/provider.ts ttl.IdToken). */
export const ID_TOKEN_TTL_S = 3600;
/** Verifiers tolerate this much clock difference past `exp` (identity/oidc.ts clockToleranceS is 30), plus room. */
const CLOCK_MARGIN_S = 60;

export interface StoredSigningKey {
  /** The private JWK (with kid, alg RS256, use sig). */
  jwk: JWK;
  /** When it was made, epoch s (0: unknown, made by an earlier version). */
  createdAt: number;
  /** When a newer key replaced it, epoch s; null: it signs. */
  retiredAt: number | null;
}

/** Newest first; the first signs. */
export interface SigningKeyRing {
  keys: StoredSigningKey[];
}

/** Where the ring is kept (storage/repos/sign-in.ts OidcStore). */
export interface SigningKeyStore {
  keyMaterial<T>(name: string, make: () => Promise<T>): Promise<T>;
  readKeyMaterial(name: string): Promise<unknown>;
  updateKeyMaterial<T>(name: string, next: (current: unknown) => T): Promise<T>;
}

/** How long a replaced key keeps verifying: the longest lifetime of a token it signed (access or ID token), plus the verifiers' clock tolerance. */
export function retirementWindowS(accessTokenTtlS: number): number {
  return Math.max(accessTokenTtlS, ID_TOKEN_TTL_S) + CLOCK_MARGIN_S;
}

export async function newSigningJwk(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: `rs256-${randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' };
}

const isJwk = (v: unknown): v is JWK => v !== null && typeof v === 'object' && typeof (v as JWK).kty === 'string' && typeof (v as JWK).kid === 'string';

/** The ring in a stored value: a ring, or the single JWK of an earlier version. Throws on anything else. */
export function asRing(stored: unknown): SigningKeyRing {
  if (isJwk(stored)) return { keys: [{ jwk: stored, createdAt: 0, retiredAt: null }] };
  const keys = (stored as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => isJwk((k as StoredSigningKey | null)?.jwk))) {
    throw new Error(`the stored ${SIGNING_KEYS} key material is neither a key ring nor a JWK`);
  }
  return { keys: keys as StoredSigningKey[] };
}

/** The keys that verify at `nowS`: the signing one first, then the replaced ones inside their window. */
export function liveKeys(ring: SigningKeyRing, nowS: number, windowS: number): StoredSigningKey[] {
  return ring.keys.filter((k, i) => i === 0 || k.retiredAt === null || k.retiredAt + windowS > nowS);
}

/** The ring after a rotation at `nowS`: `fresh` signs, the previous ones are retired (from now, unless they already were), expired ones dropped. */
export function rotatedRing(ring: SigningKeyRing | null, fresh: JWK, nowS: number, windowS: number): SigningKeyRing {
  const old = (ring?.keys ?? []).map((k) => (k.retiredAt === null ? { ...k, retiredAt: nowS } : k));
  return { keys: liveKeys({ keys: [{ jwk: fresh, createdAt: nowS, retiredAt: null }, ...old] }, nowS, windowS) };
}

/** Kids of the keys, in order. */
export const kidsOf = (keys: readonly StoredSigningKey[]): string[] => keys.map((k) => String(k.jwk.kid));

/**
 * Rotates: a new key signs from now on, the one it replaces verifies until its window
 * ends. Concurrent rotations (several instances, the CLI) run one after the other in the
 * store; each adds a key. Returns the ring stored.
 */
export async function rotateSigningKeys(store: SigningKeyStore, windowS: number, now: () => number = Date.now): Promise<SigningKeyRing> {
  // Made before the row is locked: RSA key generation takes a while.
  const fresh = await newSigningJwk();
  return store.updateKeyMaterial(SIGNING_KEYS, (current) => rotatedRing(current === undefined ? null : asRing(current), fresh, Math.floor(now() / 1000), windowS));
}
