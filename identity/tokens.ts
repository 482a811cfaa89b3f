// Bearer tokens for the HTTP API: compact JWS (RFC 7515/7519) signed with HMAC-SHA256.
// Several keys may be configured; the first signs, all verify (by `kid`), so a key is
// rotated by putting the new one first and dropping the old one after the longest TTL.
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';

export type Role = 'customer' | 'workshop' | 'authority';
export const ROLES: readonly Role[] = ['customer', 'workshop', 'authority'];

/** Longest lifetime of an API token, seconds (30 days). */
export const MAX_TOKEN_TTL_S = 30 * 24 * 3600;

export function isValidTtl(ttlSeconds: number): boolean {
  return Number.isInteger(ttlSeconds) && ttlSeconds >= 1 && ttlSeconds <= MAX_TOKEN_TTL_S;
}

export interface Principal {
  role: Role;
  subject: string;
  /** Token id, for audit. */
  jti: string;
  expiresAt: number;
}

export type TokenError = 'TOKEN_MALFORMED' | 'TOKEN_BAD_SIGNATURE' | 'TOKEN_UNKNOWN_KEY' | 'TOKEN_EXPIRED' | 'TOKEN_NOT_YET_VALID';

export interface TokenService {
  sign(p: { role: Role; subject: string; ttlSeconds: number }): { token: string; expiresAt: number; jti: string };
  verify(token: string): { ok: true; principal: Principal } | { ok: false; error: TokenError };
}

export interface SigningKey {
  kid: string;
  secret: Buffer;
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

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');

export function createTokenService(keys: readonly SigningKey[], now: () => number = Date.now): TokenService {
  if (keys.length === 0) throw new Error('at least one signing key is needed');
  const byKid = new Map(keys.map((k) => [k.kid, k.secret]));
  const signer = keys[0]!;
  const mac = (secret: Buffer, data: string) => createHmac('sha256', secret).update(data).digest();

  return {
    sign({ role, subject, ttlSeconds }) {
      const iat = Math.floor(now() / 1000);
      const exp = iat + ttlSeconds;
      const jti = randomUUID();
      const head = b64({ alg: 'HS256', typ: 'JWT', kid: signer.kid });
      const body = b64({ sub: subject, role, iat, exp, jti, iss: 'cardata-gateway' });
      const sig = mac(signer.secret, `${head}.${body}`).toString('base64url');
      return { token: `${head}.${body}.${sig}`, expiresAt: exp * 1000, jti };
    },
    verify(token) {
      const parts = token.split('.');
      if (parts.length !== 3 || token.length > 4096) return { ok: false, error: 'TOKEN_MALFORMED' };
      const [h, b, s] = parts as [string, string, string];
      let head: { alg?: unknown; kid?: unknown };
      let body: { sub?: unknown; role?: unknown; exp?: unknown; iat?: unknown; jti?: unknown };
      try {
        head = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
        body = JSON.parse(Buffer.from(b, 'base64url').toString('utf8'));
      } catch {
        return { ok: false, error: 'TOKEN_MALFORMED' };
      }
      // Only HS256: "alg":"none" or an asymmetric alg must never be accepted (RFC 8725 §3.1).
      if (!head || head.alg !== 'HS256' || typeof head.kid !== 'string') return { ok: false, error: 'TOKEN_MALFORMED' };
      const secret = byKid.get(head.kid);
      if (!secret) return { ok: false, error: 'TOKEN_UNKNOWN_KEY' };
      // Compared as canonical base64url text: Buffer.from(s, 'base64url') is lenient
      // (padding, unused low bits), so a changed signature could decode to the same bytes.
      const expected = Buffer.from(mac(secret, `${h}.${b}`).toString('base64url'));
      const got = Buffer.from(s);
      if (got.length !== expected.length || !timingSafeEqual(got, expected)) return { ok: false, error: 'TOKEN_BAD_SIGNATURE' };
      if (!body || typeof body.sub !== 'string' || typeof body.exp !== 'number' || typeof body.jti !== 'string') return { ok: false, error: 'TOKEN_MALFORMED' };
      if (!ROLES.includes(body.role as Role)) return { ok: false, error: 'TOKEN_MALFORMED' };
      const t = now() / 1000;
      if (body.exp <= t) return { ok: false, error: 'TOKEN_EXPIRED' };
      if (typeof body.iat === 'number' && body.iat > t + 60) return { ok: false, error: 'TOKEN_NOT_YET_VALID' };
      return { ok: true, principal: { role: body.role as Role, subject: body.sub, jti: body.jti, expiresAt: body.exp * 1000 } };
    },
  };
}
