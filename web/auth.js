// Sign-in with OpenID Connect: Authorization Code with PKCE (RFC 7636) as a public client
// (RFC 8252 §8.1: no client secret in a browser). The access token is kept in
// sessionStorage only: it ends with the tab, and no cookie carries it to the API.

import { SESSION, currentSession } from './boot.js';

export { currentSession };
const PENDING = 'cardata.pkce';
const RETURN_TO = 'cardata.returnTo';

/** @param {ArrayBuffer | Uint8Array} bytes */
const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
/** Where the provider sends the browser back (the embedded provider's default redirect URI for `cardata-portal`). */
export const redirectUri = () => `${location.origin}/portal/callback`;

const random = (n = 32) => b64url(crypto.getRandomValues(new Uint8Array(n)));

/**
 * The OpenID Provider's issuer URL. Where `config` names none: the gateway's embedded provider.
 * @param {PortalConfig} config
 */
export function issuerOf(config) {
  return (config.oidc.issuer ?? `${location.origin}/oidc`).replace(/\/$/, '');
}

/**
 * The provider's metadata (OpenID Connect Discovery 1.0), the parts used here.
 * @typedef {{ authorization_endpoint: string, token_endpoint: string, end_session_endpoint?: string }} OidcMetadata
 */
/** @type {Promise<OidcMetadata> | null} */
let discoveryCache = null;
/**
 * @param {PortalConfig} config
 * @returns {Promise<OidcMetadata>}
 */
export async function discover(config) {
  discoveryCache ??= fetch(`${issuerOf(config)}/.well-known/openid-configuration`).then((r) => {
    if (!r.ok) throw new Error(`discovery answered ${r.status}`);
    return r.json();
  });
  try {
    return await discoveryCache;
  } catch (e) {
    discoveryCache = null;
    throw e;
  }
}

/** @param {Session} s */
export function saveSession(s) {
  sessionStorage.setItem(SESSION, JSON.stringify(s));
}

/** Ends the session locally and remembers the page, to come back to it after signing in again. */
export function expireSession() {
  sessionStorage.removeItem(SESSION);
  sessionStorage.setItem(RETURN_TO, location.hash || '#/');
}

export function takeReturnTo() {
  const r = sessionStorage.getItem(RETURN_TO);
  sessionStorage.removeItem(RETURN_TO);
  return r && r.startsWith('#/') ? r : null;
}

/**
 * Sends the browser to the provider's authorization endpoint; its pages speak `lang` (ui_locales).
 * @param {PortalConfig} config
 * @param {string} [lang]
 */
export async function startSignIn(config, lang) {
  const d = await discover(config);
  const verifier = random(48);
  const challenge = b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  const state = random(16);
  const nonce = random(16);
  const returnTo = sessionStorage.getItem(RETURN_TO) ?? (location.hash || '#/');
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, nonce, returnTo }));
  const u = new URL(d.authorization_endpoint);
  /** @type {Record<string, string>} */
  const params = {
    response_type: 'code',
    client_id: config.oidc.clientId,
    redirect_uri: redirectUri(),
    scope: config.oidc.scope,
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  };
  // OpenID Connect Core 1.0 §3.1.2.1: the sign-in page in the portal's language.
  if (lang) params.ui_locales = lang;
  if (config.oidc.resource) params.resource = config.oidc.resource;
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  location.assign(u.toString());
}

/**
 * On return from the provider (?code=…&state=…): exchanges the code for tokens and
 * stores the session. Returns the hash to show next, or null when this is no callback.
 * @param {PortalConfig} config
 * @returns {Promise<string | null>}
 */
export async function completeSignIn(config) {
  const q = new URLSearchParams(location.search);
  if (location.pathname === '/portal/callback' && !q.has('code') && !q.has('error')) {
    // Back from signing out at the provider.
    history.replaceState(null, '', '/#/');
    return null;
  }
  if (!q.has('code') && !q.has('error')) return null;
  /** What startSignIn kept for the way back. */
  const pending = /** @type {{ verifier: string, state: string, nonce: string, returnTo: string } | null} */ (JSON.parse(sessionStorage.getItem(PENDING) ?? 'null'));
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, '', '/' + (pending?.returnTo ?? '#/'));
  if (q.has('error')) throw new Error(q.get('error_description') || /** @type {string} */ (q.get('error')));
  if (!pending || q.get('state') !== pending.state) throw new Error('sign-in answer does not match the request (state)');
  const d = await discover(config);
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    // There is one: not an error answer, and not no answer.
    code: /** @type {string} */ (q.get('code')),
    redirect_uri: redirectUri(),
    client_id: config.oidc.clientId,
    code_verifier: pending.verifier,
  });
  if (config.oidc.resource) body.set('resource', config.oidc.resource);
  const r = await fetch(d.token_endpoint, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
  /** The token response (RFC 6749 §5.1), or its error (§5.2). */
  const tok = /** @type {{ access_token?: unknown, id_token?: string, expires_in?: unknown, error?: string, error_description?: string }} */ (await r.json().catch(() => ({})));
  if (!r.ok || typeof tok.access_token !== 'string') throw new Error(tok.error_description || tok.error || `token endpoint answered ${r.status}`);
  saveSession({
    accessToken: tok.access_token,
    idToken: tok.id_token ?? null,
    expiresAt: Date.now() + (Number(tok.expires_in) || 300) * 1000,
    subject: claims(tok.id_token ?? tok.access_token).sub ?? null,
  });
  sessionStorage.removeItem(RETURN_TO);
  return pending.returnTo;
}

/**
 * Signs out here and, when the provider offers it, there too (its page in `lang`).
 * @param {PortalConfig} config
 * @param {string} [lang]
 */
export async function signOut(config, lang) {
  const s = currentSession();
  sessionStorage.removeItem(SESSION);
  sessionStorage.removeItem(RETURN_TO);
  try {
    const d = await discover(config);
    if (d.end_session_endpoint && s?.idToken) {
      const u = new URL(d.end_session_endpoint);
      u.searchParams.set('id_token_hint', s.idToken);
      u.searchParams.set('post_logout_redirect_uri', redirectUri());
      u.searchParams.set('client_id', config.oidc.clientId);
      // RP-Initiated Logout 1.0 §2.
      if (lang) u.searchParams.set('ui_locales', lang);
      location.assign(u.toString());
      return;
    }
  } catch {
    // No provider reachable: signed out here, which is what the person asked for.
  }
}

/**
 * The claims of a JWT, unverified: for display only (the API verifies every token).
 * @param {string} jwt
 * @returns {{ sub?: string, exp?: number }}
 */
export function claims(jwt) {
  try {
    const p = jwt.split('.')[1];
    return JSON.parse(atob(p.replace(/-/g, '+').replace(/_/g, '/')));
  } catch {
    return {};
  }
}
