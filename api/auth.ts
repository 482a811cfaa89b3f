// Who is calling: the principal from the bearer token, and the ownership checks every
// vehicle route shares.
import type { FastifyRequest } from 'fastify';
import type { Principal, Role } from '../identity/tokens.ts';
import type { TokenError, VerifyResult } from '../identity/verify.ts';
import { ApiError, type ApiErrorCode } from './errors.ts';

/**
 * The caller as limits count it (open streams, export slots, the rate limiter): a person is
 * (issuer, subject), so the same subject at two issuers is two callers.
 */
export function callerKey(p: Pick<Principal, 'issuer' | 'role' | 'subject'>): string {
  return `${p.issuer} ${p.role}:${p.subject}`;
}

export function bearer(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1]! : null;
}

/**
 * What the API needs to know about a bearer token (app/ hands in the authenticator of
 * identity/authenticate.ts: the gateway's own tokens and every trusted OpenID Provider's).
 */
export interface TokenVerifier {
  verify(token: string): Promise<VerifyResult>;
}

/** Each refusal of a token: its status, code and message. An unreachable issuer is our trouble (503), not the caller's. */
const TOKEN_REFUSALS: Record<TokenError, [401 | 503, ApiErrorCode, string]> = {
  TOKEN_MALFORMED: [401, 'API_ERR_TOKEN_INVALID', 'malformed bearer token'],
  TOKEN_BAD_SIGNATURE: [401, 'API_ERR_TOKEN_INVALID', 'invalid token signature'],
  TOKEN_UNKNOWN_KEY: [401, 'API_ERR_TOKEN_INVALID', 'token signed with a key its issuer does not publish'],
  TOKEN_ALGORITHM: [401, 'API_ERR_TOKEN_ALGORITHM', 'token signed with an algorithm not accepted for its issuer'],
  TOKEN_EXPIRED: [401, 'API_ERR_TOKEN_EXPIRED', 'token expired'],
  TOKEN_NOT_YET_VALID: [401, 'API_ERR_TOKEN_NOT_YET_VALID', 'token not yet valid'],
  TOKEN_ISSUER: [401, 'API_ERR_TOKEN_ISSUER', 'token of an issuer this API does not trust'],
  TOKEN_AUDIENCE: [401, 'API_ERR_TOKEN_AUDIENCE', 'token not meant for this API (audience)'],
  TOKEN_CLAIMS: [401, 'API_ERR_TOKEN_CLAIMS', 'token names no subject or no recognised role'],
  TOKEN_LIFETIME: [401, 'API_ERR_TOKEN_INVALID', 'token lifetime longer than this gateway allows'],
  TOKEN_REVOKED: [401, 'API_ERR_TOKEN_REVOKED', 'token revoked'],
  TOKEN_TYPE: [401, 'API_ERR_TOKEN_TYPE', 'not an access token (its typ is not at+jwt): an ID token cannot be used here'],
  IDP_UNAVAILABLE: [503, 'API_ERR_IDP_UNAVAILABLE', 'the token issuer cannot be reached to verify the token; retry later'],
};

/**
 * The verification of this request's bearer token, done once per request (the rate
 * limiter and the route both ask); null without a bearer token.
 */
export function verifyRequest(req: FastifyRequest, tokens: TokenVerifier): Promise<VerifyResult> | null {
  const t = bearer(req);
  if (t === null) return null;
  req.tokenCheck ??= tokens.verify(t);
  return req.tokenCheck;
}

/** The caller, or 401 (503 when the issuer cannot be reached). With `roles`, a caller of another role gets 403. */
export async function principal(req: FastifyRequest, tokens: TokenVerifier, roles?: readonly Role[]): Promise<Principal> {
  const pending = verifyRequest(req, tokens);
  if (pending === null) throw new ApiError(401, 'API_ERR_UNAUTHORIZED', 'missing bearer token');
  const v = await pending;
  if (!v.ok) {
    const [status, code, message] = TOKEN_REFUSALS[v.error];
    throw new ApiError(status, code, message);
  }
  if (roles && !roles.includes(v.principal.role)) {
    throw new ApiError(403, 'API_ERR_FORBIDDEN', `this endpoint is not open to the ${v.principal.role} role`);
  }
  return v.principal;
}

/**
 * The caller must be the vehicle's current owner. Anyone else gets 404, the same answer
 * as for a VIN that does not exist: whether a vehicle is provisioned is not disclosed.
 */
export async function requireOwner(p: Principal, vin: string, currentOwner: (vin: string) => Promise<string | null>): Promise<void> {
  const owner = await currentOwner(vin);
  if (owner === null || owner !== p.subject) throw new ApiError(404, 'API_ERR_NOT_FOUND', `vehicle ${vin} not found`);
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified caller of a route whose config lists `roles`; null elsewhere. */
    principal: Principal | null;
    /** The verification of this request's bearer token, once started (see verifyRequest). */
    tokenCheck: Promise<VerifyResult> | null;
  }
}

/**
 * onRequest hook: a route whose config lists `roles` is refused (401/403) before its
 * body or parameters are even looked at, so an anonymous caller learns nothing from
 * validation errors. The verified caller is kept on the request for the handler.
 */
export function rolesHook(tokens: TokenVerifier) {
  return async (req: FastifyRequest): Promise<void> => {
    const roles = (req.routeOptions.config as { roles?: readonly Role[] } | undefined)?.roles;
    if (roles) req.principal = await principal(req, tokens, roles);
  };
}

/** The caller rolesHook verified (a handler of a route without `roles` has none). */
export function caller(req: FastifyRequest): Principal {
  if (!req.principal) throw new ApiError(401, 'API_ERR_UNAUTHORIZED', 'missing bearer token');
  return req.principal;
}

/** The verified caller, who must be the vehicle's current owner (else 404, see requireOwner). */
export async function ownerCaller(req: FastifyRequest, vin: string, currentOwner: (vin: string) => Promise<string | null>): Promise<Principal> {
  const p = caller(req);
  await requireOwner(p, vin, currentOwner);
  return p;
}
