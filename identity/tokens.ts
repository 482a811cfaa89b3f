// Bearer tokens the gateway mints itself (POST /v1/admin/tokens, the CLI): JWTs (RFC 7519)
// signed and verified with `jose`, HS256 with the keys of JWT_KEYS. Several keys may be
// configured; the first signs, all verify (by `kid`), so a key is rotated by putting the
// new one first and dropping the old one after the longest TTL. These tokens are for
// machines and tests; people sign in with OpenID Connect (identity/oidc.ts).
import { randomBytes, randomUUID } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, jwtVerify, type CryptoKey, type JWTPayload } from 'jose';
import { classifyJoseError, hasCanonicalSignature, type VerifyResult } from './verify.ts';

export type Role = 'customer' | 'workshop' | 'third_party' | 'authority';
export const ROLES: readonly Role[] = ['customer', 'workshop', 'third_party', 'authority'];

/** The `iss` of every token the gateway mints: never a URL, so never an OpenID Provider's. */
export const MINTED_ISSUER = 'cardata-gateway';

/** Longest lifetime of an API token, seconds (30 days). */
export const MAX_TOKEN_TTL_S = 30 * 24 * 3600;

export function isValidTtl(ttlSeconds: number): boolean {
  return Number.isInteger(ttlSeconds) && ttlSeconds >= 1 && ttlSeconds <= MAX_TOKEN_TTL_S;
}

export interface Principal {
  role: Role;
  subject: string;
  /** Token id (for audit and revocation); null when the issuer sets none. */
  jti: string | null;
  /** Expiry, ms since the epoch. */
  expiresAt: number;
  /** Who issued the token (its `iss`). A person is (issuer, subject): the same subject from two issuers is two callers to revocation. */
  issuer: string;
  /** When it was issued (`iat`), ms since the epoch; null when the issuer sets none (then a revocation of its subject refuses it). */
  issuedAt: number | null;
  /** The sign-in session it was issued in (`sid`), when the issuer says; signing out ends the tokens that carry it. */
  sessionId: string | null;
}

export type { VerifyResult, TokenError } from './verify.ts';

export interface TokenService {
  readonly issuer: string;
  sign(p: { role: Role; subject: string; ttlSeconds: number }): Promise<{ token: string; expiresAt: number; jti: string; issuedAt: number }>;
  verify(token: string): Promise<VerifyResult>;
}

export interface SigningKey {
  kid: string;
  secret: Buffer;
}

export interface TokenServiceOptions {
  /** Longest lifetime a token may have (exp - iat), seconds: longer ones are refused when verified. Default: none. */
  maxTtlS?: number;
  /** Tolerated clock difference for `iat`, seconds. Default 60. */
  clockSkewS?: number;
}

/** Parses "kid1:secret1,kid2:secret2" (secrets taken as UTF-8 text, ≥ 32 bytes; key ids unique). */
export function parseKeys(spec: string): SigningKey[] {
  const seen = new Set<string>();
  return spec.split(',').map((part) => {
    const i = part.indexOf(':');
    if (i <= 0) throw new Error('each key must be "kid:secret"');
    const kid = part.slice(0, i).trim();
    const secret = Buffer.from(part.slice(i + 1).trim(), 'utf8');
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(kid)) throw new Error(`key id ${JSON.stringify(kid)} must be 1-64 characters of A-Z a-z 0-9 . _ -`);
    if (secret.length < 32) throw new Error(`key ${kid}: secret must be at least 32 bytes`);
    if (seen.has(kid)) throw new Error(`key id ${kid} appears twice`);
    seen.add(kid);
    return { kid, secret };
  });
}

export function randomKey(): SigningKey {
  return { kid: `k${randomBytes(4).toString('hex')}`, secret: randomBytes(32) };
}

export function isRole(v: unknown): v is Role {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v);
}

class UnknownKey extends Error {}

export function createTokenService(keys: readonly SigningKey[], now: () => number = Date.now, opts: TokenServiceOptions = {}): TokenService {
  if (keys.length === 0) throw new Error('at least one signing key is needed');
  // Imported as WebCrypto keys once, on first use (about half the cost of each check).
  const imported = new Map<string, Promise<CryptoKey>>();
  const secrets = new Map(keys.map((k) => [k.kid, k.secret]));
  const keyOf = (kid: string): Promise<CryptoKey> | undefined => {
    const secret = secrets.get(kid);
    if (!secret) return undefined;
    let k = imported.get(kid);
    if (!k) {
      k = crypto.subtle.importKey('raw', new Uint8Array(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
      imported.set(kid, k);
    }
    return k;
  };
  const signer = keys[0]!;
  const skew = opts.clockSkewS ?? 60;

  return {
    issuer: MINTED_ISSUER,
    async sign({ role, subject, ttlSeconds }) {
      const iat = Math.floor(now() / 1000);
      const exp = iat + ttlSeconds;
      const jti = randomUUID();
      const token = await new SignJWT({ role })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: signer.kid })
        .setSubject(subject)
        .setIssuer(MINTED_ISSUER)
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .setJti(jti)
        .sign(await keyOf(signer.kid)!);
      return { token, expiresAt: exp * 1000, jti, issuedAt: iat * 1000 };
    },
    async verify(token) {
      if (token.length > 8192) return { ok: false, error: 'TOKEN_MALFORMED' };
      if (!hasCanonicalSignature(token)) return { ok: false, error: 'TOKEN_BAD_SIGNATURE' };
      let payload: JWTPayload;
      try {
        // Only HS256: "alg":"none" or an asymmetric alg is never accepted (RFC 8725 §3.1).
        ({ payload } = await jwtVerify(
          token,
          (header) => {
            const k = typeof header.kid === 'string' ? keyOf(header.kid) : undefined;
            if (!k) throw new UnknownKey();
            return k;
          },
          { algorithms: ['HS256'], issuer: MINTED_ISSUER, requiredClaims: ['sub', 'exp', 'iat', 'jti'], currentDate: new Date(now()) },
        ));
      } catch (err) {
        if (err instanceof UnknownKey) {
          // An unknown kid on a token that does not even claim HS256 is an algorithm problem first.
          try {
            if (decodeProtectedHeader(token).alg !== 'HS256') return { ok: false, error: 'TOKEN_ALGORITHM' };
          } catch {
            return { ok: false, error: 'TOKEN_MALFORMED' };
          }
          return { ok: false, error: 'TOKEN_UNKNOWN_KEY' };
        }
        return { ok: false, error: classifyJoseError(err) };
      }
      if (!isRole(payload.role) || typeof payload.sub !== 'string' || typeof payload.jti !== 'string') return { ok: false, error: 'TOKEN_CLAIMS' };
      const t = now() / 1000;
      const iat = payload.iat!;
      if (iat > t + skew) return { ok: false, error: 'TOKEN_NOT_YET_VALID' };
      if (opts.maxTtlS !== undefined && payload.exp! - iat > opts.maxTtlS) return { ok: false, error: 'TOKEN_LIFETIME' };
      return { ok: true, principal: { role: payload.role, subject: payload.sub, jti: payload.jti, expiresAt: payload.exp! * 1000, issuer: MINTED_ISSUER, issuedAt: iat * 1000, sessionId: null } };
    },
  };
}
