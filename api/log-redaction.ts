// What a log line may say of a request: its path and query with the values of secret
// parameters (tokens, codes, hints, passwords) replaced, and nothing JWT-shaped anywhere.
// Used by the request serializer (api/app.ts) and by the logger's last pass over every
// line it writes (app/logger.ts).

/** Written in place of a secret. */
export const REDACTED = '[redacted]';

/** A JWT (or a JWE): base64url parts separated by dots, the first a JSON header (`{"` → `eyJ`). */
const JWT_SHAPED = /eyJ[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){2,4}/g;

/** Query parameters whose values are secrets (OAuth 2.0 / OpenID Connect and our own). */
const SECRET_PARAMS = new Set([
  'id_token_hint',
  'id_token',
  'logout_hint',
  'login_hint_token',
  'code',
  'state',
  'token',
  'refresh_token',
  'access_token',
  'client_secret',
  'client_assertion',
  'assertion',
  'subject_token',
  'actor_token',
  'request',
  'device_code',
  'user_code',
  'code_verifier',
  'password',
  'secret',
  'xsrf',
]);

/** `text` with every JWT-shaped run replaced. */
export function scrubJwts(text: string): string {
  return text.includes('eyJ') ? text.replace(JWT_SHAPED, REDACTED) : text;
}

function paramName(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' ')).toLowerCase();
  } catch {
    return raw.toLowerCase();
  }
}

/**
 * A request URL for the log: the path as sent, each query parameter kept in its place,
 * the value of a secret one replaced (`id_token_hint=[redacted]`), any JWT-shaped value
 * replaced too. Operators still see which endpoint was called with which parameters.
 */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q === -1) return scrubJwts(url);
  const query = url
    .slice(q + 1)
    .split('&')
    .map((part) => {
      const eq = part.indexOf('=');
      if (eq === -1) return scrubJwts(part);
      return SECRET_PARAMS.has(paramName(part.slice(0, eq))) ? `${part.slice(0, eq)}=${REDACTED}` : scrubJwts(part);
    })
    .join('&');
  return `${scrubJwts(url.slice(0, q))}?${query}`;
}
