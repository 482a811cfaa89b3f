// One entry for every bearer token the API sees: the token's (unverified) `iss` picks the
// verifier of that issuer, which then checks everything, `iss` included; a revoked token
// (its jti, its subject or its sign-in session) is refused afterwards. Tokens of an issuer
// nobody configured are refused as such.
import { decodeJwt } from 'jose';
import type { Principal } from './tokens.ts';
import type { VerifyResult } from './verify.ts';

export interface IssuerVerifier {
  readonly issuer: string;
  verify(token: string): Promise<VerifyResult>;
}

export interface AuthenticatorDeps {
  /** Trusted issuers: the gateway's own minted tokens and each OpenID Provider. */
  verifiers: readonly IssuerVerifier[];
  /** Whether a verified token was revoked (deny list: its id, its subject, its session). */
  isRevoked(p: Principal): Promise<boolean> | boolean;
}

export interface Authenticator {
  verify(token: string): Promise<VerifyResult>;
  /** Trusts one more issuer (the embedded provider, known once the HTTP server listens). */
  trust(v: IssuerVerifier): void;
}

export function createAuthenticator(deps: AuthenticatorDeps): Authenticator {
  const byIssuer = new Map(deps.verifiers.map((v) => [v.issuer, v]));
  return {
    trust(v) {
      byIssuer.set(v.issuer, v);
    },
    async verify(token) {
      let iss: unknown;
      try {
        iss = decodeJwt(token).iss;
      } catch {
        return { ok: false, error: 'TOKEN_MALFORMED' };
      }
      const v = typeof iss === 'string' ? byIssuer.get(iss) : undefined;
      if (!v) return { ok: false, error: 'TOKEN_ISSUER' };
      const r = await v.verify(token);
      if (r.ok && (await deps.isRevoked(r.principal))) return { ok: false, error: 'TOKEN_REVOKED' };
      return r;
    },
  };
}
