// Access tokens of an OpenID Provider (the embedded one under /oidc, or an external one such
// as a car maker's customer identity): JWTs verified with `jose` against the keys the
// issuer publishes. The JWKS address comes from discovery (OpenID Connect Discovery 1.0 §4);
// keys are cached and fetched again when a token names a key not yet seen (rotation).
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, errors, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { isRole, type Role } from './tokens.ts';
import { IdpUnavailable, classifyJoseError, hasCanonicalSignature, type VerifyResult } from './verify.ts';

/** Only asymmetric algorithms: a symmetric one would let anyone holding the "key" (here: the public key) sign (RFC 8725 §3.1, §2.1). */
export const ASYMMETRIC_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

export interface OidcVerifierOptions {
  /** The issuer identifier, exactly as in the tokens' `iss` and the discovery document. */
  issuer: string;
  /** The `aud` a token must carry to be meant for this API. */
  audience: string;
  /** Where to fetch the discovery document. Default: `${issuer}/.well-known/openid-configuration`. */
  discoveryUrl?: string;
  /** Claim holding the caller's subject (a dotted path reaches into objects). Default `sub`. */
  subjectClaim?: string;
  /**
   * Put before every subject of this issuer (default none): keeps its people apart from
   * another issuer's whose subjects could be the same strings.
   */
  subjectPrefix?: string;
  /** Claim holding the role: a string, or an array with exactly one recognised role. Default `cardata_role`. */
  roleClaim?: string;
  /** Timeout of one discovery or JWKS fetch, ms. Default 3000. */
  fetchTimeoutMs?: number;
  /** Least time between two JWKS fetches caused by unknown key ids, ms. Default 30000. */
  jwksCooldownMs?: number;
  /** Keys are fetched again after this long even when nothing asks, ms. Default 600000. */
  jwksMaxAgeMs?: number;
  /** Tolerated clock difference for exp/nbf, seconds. Default 30. */
  clockToleranceS?: number;
  /**
   * Whether access tokens must say they are (`typ: at+jwt`, RFC 9068 §2.1). Default true:
   * an ID token of the same issuer, whose audience may equal a client id, is then no access
   * token here. False only for an issuer known not to send it.
   */
  requireAccessTokenType?: boolean;
  /** After a failed discovery, wait this long before trying again, ms. Default 1000. */
  retryAfterMs?: number;
  onDiscoveryError?: (err: Error) => void;
}

export interface OidcVerifier {
  readonly issuer: string;
  verify(token: string): Promise<VerifyResult>;
}

function claimAt(payload: JWTPayload, path: string): unknown {
  let v: unknown = payload;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

function roleOf(v: unknown): Role | null {
  if (isRole(v)) return v;
  if (Array.isArray(v)) {
    const known = v.filter(isRole);
    // Two roles in one token would make the access decision ambiguous: refuse.
    return known.length === 1 ? known[0]! : null;
  }
  return null;
}

export function createOidcVerifier(opts: OidcVerifierOptions): OidcVerifier {
  const issuer = opts.issuer;
  const discoveryUrl = opts.discoveryUrl ?? `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  const timeoutMs = opts.fetchTimeoutMs ?? 3000;
  const subjectClaim = opts.subjectClaim ?? 'sub';
  const roleClaim = opts.roleClaim ?? 'cardata_role';
  let jwks: Promise<JWTVerifyGetKey> | null = null;
  let failedAt = 0;
  let lastError: Error | null = null;

  async function discover(): Promise<JWTVerifyGetKey> {
    let res: Response;
    try {
      res = await fetch(discoveryUrl, { headers: { accept: 'application/json' }, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      throw new IdpUnavailable(`discovery ${discoveryUrl}: ${(err as Error).message}`, { cause: err });
    }
    if (res.status !== 200) throw new IdpUnavailable(`discovery ${discoveryUrl}: HTTP ${res.status}`);
    let doc: { issuer?: unknown; jwks_uri?: unknown };
    try {
      doc = (await res.json()) as typeof doc;
    } catch (err) {
      throw new IdpUnavailable(`discovery ${discoveryUrl}: not JSON`, { cause: err });
    }
    // OpenID Connect Discovery 1.0 §4.3: the document's issuer must be the one asked for.
    if (doc.issuer !== issuer) throw new IdpUnavailable(`discovery ${discoveryUrl}: issuer ${JSON.stringify(doc.issuer)} is not ${issuer}`);
    if (typeof doc.jwks_uri !== 'string' || !/^https?:\/\//.test(doc.jwks_uri)) throw new IdpUnavailable(`discovery ${discoveryUrl}: no http(s) jwks_uri`);
    return createRemoteJWKSet(new URL(doc.jwks_uri), {
      timeoutDuration: timeoutMs,
      cooldownDuration: opts.jwksCooldownMs ?? 30_000,
      cacheMaxAge: opts.jwksMaxAgeMs ?? 600_000,
    });
  }

  /** The issuer's key set, discovered once; a failed discovery is retried after retryAfterMs. */
  function keySet(): Promise<JWTVerifyGetKey> {
    if (jwks) return jwks;
    if (lastError && Date.now() - failedAt < (opts.retryAfterMs ?? 1000)) return Promise.reject(lastError);
    const p = discover();
    jwks = p;
    p.then(
      () => (lastError = null),
      (err: Error) => {
        jwks = null;
        failedAt = Date.now();
        lastError = err;
        opts.onDiscoveryError?.(err);
      },
    );
    return p;
  }

  const getKey: JWTVerifyGetKey = async (header, token) => {
    const set = await keySet();
    try {
      return await set(header, token);
    } catch (err) {
      // The token's fault: no such key, or a key of another type than its alg.
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys || err instanceof errors.JOSENotSupported || err instanceof errors.JWKInvalid) throw err;
      // Anything else is the issuer not answering (timeout, refused, not 200, not JSON).
      throw new IdpUnavailable(`JWKS of ${issuer}: ${(err as Error).message}`, { cause: err });
    }
  };

  return {
    issuer,
    async verify(token) {
      if (token.length > 16_384) return { ok: false, error: 'TOKEN_MALFORMED' };
      if (!hasCanonicalSignature(token)) return { ok: false, error: 'TOKEN_BAD_SIGNATURE' };
      let alg: unknown;
      try {
        alg = decodeProtectedHeader(token).alg;
      } catch {
        return { ok: false, error: 'TOKEN_MALFORMED' };
      }
      // Refused before any key is fetched: a forged token cannot make us call the issuer.
      if (!(ASYMMETRIC_ALGS as readonly unknown[]).includes(alg)) return { ok: false, error: 'TOKEN_ALGORITHM' };
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, getKey, {
          issuer,
          audience: opts.audience,
          algorithms: [...ASYMMETRIC_ALGS],
          clockTolerance: opts.clockToleranceS ?? 30,
          requiredClaims: ['exp'],
          // jose compares case-insensitively and accepts "application/at+jwt" too (RFC 9068 §2.1).
          ...(opts.requireAccessTokenType === false ? {} : { typ: 'at+jwt' }),
        }));
      } catch (err) {
        return { ok: false, error: classifyJoseError(err) };
      }
      const subject = claimAt(payload, subjectClaim);
      const role = roleOf(claimAt(payload, roleClaim));
      if (typeof subject !== 'string' || subject === '' || subject.length > 256 || role === null) return { ok: false, error: 'TOKEN_CLAIMS' };
      return {
        ok: true,
        principal: {
          role,
          subject: (opts.subjectPrefix ?? '') + subject,
          jti: typeof payload.jti === 'string' ? payload.jti : null,
          expiresAt: payload.exp! * 1000,
          issuer,
          issuedAt: typeof payload.iat === 'number' ? payload.iat * 1000 : null,
          sessionId: typeof payload.sid === 'string' ? payload.sid : null,
        },
      };
    },
  };
}
