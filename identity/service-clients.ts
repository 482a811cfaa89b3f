// Service clients at the embedded OpenID Provider (README "For recipients"): how a stored
// client (proto/service-clients.ts) becomes oidc-provider client metadata, the `sid` its
// tokens carry (so that deleting the client ends them through the session revocations every
// instance already follows), and the checks on the public keys of a private_key_jwt client.
import { randomBytes } from 'node:crypto';
import { importJWK, type JWK } from 'jose';
import { ASYMMETRIC_ALGS } from './oidc.ts';
import type { ServiceClientCredentials } from '../proto/service-clients.ts';

/** The recipient a client signs in as, and its role: client metadata the provider keeps with the client (extraClientMetadata). */
export const RECIPIENT_METADATA = 'cardata_recipient';
export const RECIPIENT_ROLE_METADATA = 'cardata_recipient_role';

/**
 * The `sid` of every token a service client holds. A colon never appears in the provider's
 * own session ids (nanoid's alphabet), so no sign-in session can share it.
 */
export const serviceClientSid = (clientId: string): string => `client:${clientId}`;

/** A new client id: 128 random bits, with a prefix saying what it is. */
export const newServiceClientId = (): string => `svc_${randomBytes(16).toString('base64url')}`;

/** Client ids as the store accepts them (migration 013). */
export const SERVICE_CLIENT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** oidc-provider client metadata (RFC 7591 §2) of a stored service client: client credentials only. */
export function serviceClientMetadata(c: ServiceClientCredentials): Record<string, unknown> {
  return {
    client_id: c.clientId,
    client_name: `service client of ${c.recipientId}`,
    token_endpoint_auth_method: c.authMethod,
    // The hash stands where the provider expects the secret: the comparison is replaced by
    // a scrypt check (createEmbeddedIdp), and no HMAC algorithm is allowed that would use it as a key.
    ...(c.secretHash !== null ? { client_secret: c.secretHash } : {}),
    ...(c.jwks !== null ? { jwks: c.jwks } : {}),
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    [RECIPIENT_METADATA]: c.recipientId,
    [RECIPIENT_ROLE_METADATA]: c.recipientRole,
  };
}

/** Most keys one client may register (room for a rotation or two). */
export const CLIENT_JWKS_MAX_KEYS = 5;
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/**
 * Checks a private_key_jwt client's JWK Set (RFC 7517 §5): 1 to CLIENT_JWKS_MAX_KEYS public
 * signing keys of an asymmetric type that jose can import, each with its `alg` (when given)
 * among the asymmetric ones. Null when fine, else what is wrong (naming the key's index).
 */
export async function checkClientJwks(jwks: unknown): Promise<string | null> {
  if (typeof jwks !== 'object' || jwks === null || !Array.isArray((jwks as { keys?: unknown }).keys)) return 'must be a JWK Set: {"keys": [...]}';
  const keys = (jwks as { keys: unknown[] }).keys;
  if (keys.length < 1 || keys.length > CLIENT_JWKS_MAX_KEYS) return `keys: must hold 1 to ${CLIENT_JWKS_MAX_KEYS} keys`;
  for (const [i, k] of keys.entries()) {
    if (typeof k !== 'object' || k === null || Array.isArray(k)) return `keys[${i}]: must be a JWK object`;
    const jwk = k as JWK;
    if (!['RSA', 'EC', 'OKP'].includes(String(jwk.kty))) return `keys[${i}].kty: must be RSA, EC or OKP (a public key; symmetric keys are refused)`;
    const priv = PRIVATE_MEMBERS.find((m) => m in jwk);
    if (priv) return `keys[${i}].${priv}: private key material; register the public key only`;
    if (jwk.use !== undefined && jwk.use !== 'sig') return `keys[${i}].use: must be "sig"`;
    if (jwk.alg !== undefined && !(ASYMMETRIC_ALGS as readonly string[]).includes(jwk.alg)) return `keys[${i}].alg: must be one of ${ASYMMETRIC_ALGS.join(', ')}`;
    if (jwk.kty === 'RSA' && typeof jwk.n === 'string' && Buffer.from(jwk.n, 'base64url').length < 256) return `keys[${i}].n: RSA keys must have at least 2048 bits`;
    const alg = jwk.alg ?? (jwk.kty === 'RSA' ? 'RS256' : jwk.kty === 'OKP' ? 'EdDSA' : jwk.crv === 'P-384' ? 'ES384' : jwk.crv === 'P-521' ? 'ES512' : 'ES256');
    try {
      await importJWK(jwk, alg);
    } catch (err) {
      return `keys[${i}]: not a usable ${String(jwk.kty)} public key (${(err as Error).message})`;
    }
  }
  return null;
}
