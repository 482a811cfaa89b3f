// What a bearer-token check answers, shared by the gateway's own tokens and every
// OpenID Provider's: the caller, or one specific reason for the refusal.
import { errors } from 'jose';
import type { Principal } from './tokens.ts';

export type TokenError =
  /** Not a compact JWS/JWT, or a claim of the wrong type. */
  | 'TOKEN_MALFORMED'
  /** The signature does not match the content (tampered, or another key). */
  | 'TOKEN_BAD_SIGNATURE'
  /** Signed with a key (`kid`) the issuer does not publish. */
  | 'TOKEN_UNKNOWN_KEY'
  /** An algorithm this issuer's tokens may not use ("none", HS256 for an OpenID Provider …). */
  | 'TOKEN_ALGORITHM'
  | 'TOKEN_EXPIRED'
  | 'TOKEN_NOT_YET_VALID'
  /** `iss` is no trusted issuer, or not the one whose key signed it. */
  | 'TOKEN_ISSUER'
  /** `aud` does not name this API. */
  | 'TOKEN_AUDIENCE'
  /** Verified, but without a subject or a recognised role. */
  | 'TOKEN_CLAIMS'
  /** exp - iat longer than the gateway allows. */
  | 'TOKEN_LIFETIME'
  /** Revoked: its `jti`, its subject (before it was issued) or its sign-in session. */
  | 'TOKEN_REVOKED'
  /** Not an access token (`typ` is not `at+jwt`, RFC 9068 §2.1): an ID token, say. */
  | 'TOKEN_TYPE'
  /** The issuer's discovery document or JWKS cannot be fetched: nothing can be verified. */
  | 'IDP_UNAVAILABLE';

export type VerifyResult = { ok: true; principal: Principal } | { ok: false; error: TokenError };

/** Thrown by key resolvers when the issuer cannot be reached (never a token's fault). */
export class IdpUnavailable extends Error {
  override readonly name = 'IdpUnavailable';
}

/** Maps a failure of jose's jwtVerify to a reason. Anything unforeseen refuses the token as malformed. */
export function classifyJoseError(err: unknown): TokenError {
  if (err instanceof IdpUnavailable) return 'IDP_UNAVAILABLE';
  if (err instanceof errors.JWTExpired) return 'TOKEN_EXPIRED';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return 'TOKEN_ISSUER';
    if (err.claim === 'typ') return 'TOKEN_TYPE';
    if (err.claim === 'aud') return 'TOKEN_AUDIENCE';
    if (err.claim === 'nbf' || (err.claim === 'iat' && err.reason === 'check_failed')) return 'TOKEN_NOT_YET_VALID';
    if (err.reason === 'missing') return 'TOKEN_CLAIMS';
    return 'TOKEN_MALFORMED';
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) return 'TOKEN_ALGORITHM';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'TOKEN_BAD_SIGNATURE';
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return 'TOKEN_UNKNOWN_KEY';
  return 'TOKEN_MALFORMED';
}

/**
 * Whether the token's signature is written the one way its bytes encode to. Base64url
 * decoders are lenient (unused low bits, "=" padding), so a changed signature could
 * decode to the same bytes: such a token was never issued, and is refused.
 */
export function hasCanonicalSignature(token: string): boolean {
  const parts = token.split('.');
  if (parts.length !== 3) return true; // not a JWS at all: the verifier calls it malformed
  const sig = parts[2]!;
  return /^[A-Za-z0-9_-]*$/.test(sig) && Buffer.from(sig, 'base64url').toString('base64url') === sig;
}
