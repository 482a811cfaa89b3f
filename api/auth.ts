// Who is calling: the principal from the bearer token, and the ownership checks every
// vehicle route shares.
import type { FastifyRequest } from 'fastify';
import type { Principal, Role, TokenService } from '../identity/tokens.ts';
import { ApiError } from './errors.ts';

export function bearer(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1]! : null;
}

const TOKEN_MESSAGES: Record<string, string> = {
  TOKEN_MALFORMED: 'malformed bearer token',
  TOKEN_BAD_SIGNATURE: 'invalid token signature',
  TOKEN_UNKNOWN_KEY: 'token signed with an unknown key',
  TOKEN_EXPIRED: 'token expired',
  TOKEN_NOT_YET_VALID: 'token not yet valid',
};

/** The caller, or 401. With `roles`, a caller of another role gets 403. */
export function principal(req: FastifyRequest, tokens: TokenService, roles?: readonly Role[]): Principal {
  const t = bearer(req);
  if (t === null) throw new ApiError(401, 'API_ERR_UNAUTHORIZED', 'missing bearer token');
  const v = tokens.verify(t);
  if (!v.ok) throw new ApiError(401, v.error === 'TOKEN_EXPIRED' ? 'API_ERR_TOKEN_EXPIRED' : 'API_ERR_UNAUTHORIZED', TOKEN_MESSAGES[v.error] ?? 'invalid token');
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
  }
}

/**
 * onRequest hook: a route whose config lists `roles` is refused (401/403) before its
 * body or parameters are even looked at, so an anonymous caller learns nothing from
 * validation errors. The verified caller is kept on the request for the handler.
 */
export function rolesHook(tokens: TokenService) {
  return async (req: FastifyRequest): Promise<void> => {
    const roles = (req.routeOptions.config as { roles?: readonly Role[] } | undefined)?.roles;
    if (roles) req.principal = principal(req, tokens, roles);
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
