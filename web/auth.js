// Sign-in with OpenID Connect: Authorization Code with PKCE (RFC 7636) as a public client
// (RFC 8252 §8.1: no client secret in a browser). The access token is kept in
// sessionStorage only: it ends with the tab, and no cookie carries it to the API.
//
// Sessions go on with the refresh token the code exchange returns (RFC 6749 §6; the
// provider rotates it on each use and binds it to the sign-in session). It is kept where
// the access token is, in the same sessionStorage entry: per tab, gone with the tab, never
// sent anywhere but the token endpoint. Keeping it in memory only would end the session
// at every reload; anything able to read sessionStorage (script in the page, which the
// strict CSP keeps out) could use the access token just as well. The access token is
// refreshed at 80 % of its lifetime and when the API says it expired; one refresh at a
// time per tab (refresh.js), and across tabs holding the same refresh token (a duplicated
// tab copies sessionStorage) one at a time too: a Web Lock named after that token, and
// the tab that refreshed hands the new tokens to the others on a BroadcastChannel
// (using a spent refresh token again would end the whole session). Web Locks exist only in
// a secure context (HTTPS, or http://localhost): a portal served over plain HTTP elsewhere
// has no lock, and two tabs of one session refreshing at the same moment may end it.

import { SESSION, currentSession } from './boot.js';
import { createRefresher, sessionFrom } from './refresh.js';

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
  refresher.schedule();
}

/**
 * Changes the stored session (the one there now: it may have been refreshed meanwhile).
 * @param {Partial<Session>} patch
 */
export function updateSession(patch) {
  const s = currentSession();
  if (s) saveSession({ ...s, ...patch });
}

/** Ends the session locally (its tokens, the refresh token too) and remembers the page, to come back to it after signing in again. */
export function expireSession() {
  refresher.stop();
  sessionStorage.removeItem(SESSION);
  sessionStorage.setItem(RETURN_TO, location.hash || '#/');
}

// Refreshing.

/** @type {(config: PortalConfig) => void} */
let gotConfig = () => {};
/** @type {Promise<PortalConfig>} */
const configured = new Promise((r) => (gotConfig = r));
let onEnded = () => {};

/**
 * Starts keeping the session fresh, with the provider `config` names. `ended`: the session
 * is over (refused at refresh, or signed out in another tab): back to sign-in.
 * @param {PortalConfig} config
 * @param {() => void} [ended]
 */
export function keepFresh(config, ended) {
  gotConfig(config);
  if (ended) onEnded = ended;
  refresher.schedule();
}

/** Tabs of this origin: the new tokens for a refresh token just spent (null: the session ended). */
const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel('cardata.session') : null;
/** @typedef {{ spent: string, session: Session | null }} Handoff */
if (channel) {
  channel.onmessage = (/** @type {MessageEvent<Handoff>} */ e) => {
    const s = currentSession();
    if (!s || !s.refreshToken || e.data?.spent !== s.refreshToken) return;
    if (e.data.session) saveSession({ ...e.data.session, role: s.role ?? e.data.session.role });
    else {
      expireSession();
      onEnded();
    }
  };
}
/** @param {Handoff} h */
const handOff = (h) => channel?.postMessage(h);

/**
 * Runs `fn` holding the lock of refresh token `rt` across this origin's tabs; `waited`:
 * another tab held it first (and may have refreshed it already).
 * @template T
 * @param {string} rt
 * @param {(waited: boolean) => Promise<T>} fn
 * @returns {Promise<T>}
 */
async function withTokenLock(rt, fn) {
  const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
  if (!locks) return fn(false);
  const name = `cardata.refresh.${b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(rt))).slice(0, 22)}`;
  /** @type {{ v: T } | null} */
  const first = await locks.request(name, { ifAvailable: true }, async (lock) => (lock ? { v: await fn(false) } : null));
  if (first) return first.v;
  return locks.request(name, () => fn(true));
}

/**
 * One call of the token endpoint with the stored refresh token; stores the answer.
 * @param {Session} s
 * @returns {Promise<import('./refresh.js').RefreshResult>}
 */
async function exchange(s) {
  const rt = /** @type {string} */ (s.refreshToken);
  const config = await configured;
  return withTokenLock(rt, async (waited) => {
    // Another tab with this refresh token refreshed it: its new tokens come on the channel.
    for (let i = 0; waited && i < 40 && currentSession()?.refreshToken === rt; i++) await new Promise((r) => setTimeout(r, 25));
    const now = currentSession();
    if (!now) return 'ended';
    if (now.refreshToken !== rt) return 'ok';
    const d = await discover(config);
    const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: rt, client_id: config.oidc.clientId });
    if (config.oidc.resource) body.set('resource', config.oidc.resource);
    /** @type {Response} */
    let r;
    try {
      r = await fetch(d.token_endpoint, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
    } catch {
      return 'failed';
    }
    /** The token response (RFC 6749 §5.1), or its error (§5.2). */
    const tok = /** @type {{ access_token?: unknown, refresh_token?: unknown, id_token?: unknown, expires_in?: unknown, error?: string }} */ (await r.json().catch(() => ({})));
    // Signed out, revoked, lifetime over, or a spent token: the session is over.
    if (tok.error === 'invalid_grant' || (r.status === 400 && tok.error)) {
      handOff({ spent: rt, session: null });
      return 'ended';
    }
    if (!r.ok || typeof tok.access_token !== 'string') return 'failed';
    const cur = currentSession();
    if (cur?.refreshToken !== rt) return cur ? 'ok' : 'ended';
    const next = sessionFrom(/** @type {{ access_token: string }} */ (tok), cur, Date.now(), cur.subject);
    sessionStorage.setItem(SESSION, JSON.stringify(next));
    handOff({ spent: rt, session: next });
    return 'ok';
  });
}

const refresher = createRefresher({
  read: currentSession,
  exchange,
  // As an expired session did before refresh tokens: cleared, and back to sign-in.
  onEnded: () => {
    expireSession();
    onEnded();
  },
});

/**
 * A new access token for the session; with `usedToken` (the one a refused call carried),
 * none when the session has another one already. Serialised: one refresh at a time.
 * @type {(usedToken?: string) => Promise<import('./refresh.js').RefreshResult>}
 */
export const refreshSession = (usedToken) => refresher.refresh(usedToken);

/**
 * The session with an access token to use now (refreshed first when due), or null.
 * @returns {Promise<Session | null>}
 */
export const freshSession = () => refresher.fresh();

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
  const tok = /** @type {{ access_token?: unknown, refresh_token?: unknown, id_token?: string, expires_in?: unknown, error?: string, error_description?: string }} */ (await r.json().catch(() => ({})));
  if (!r.ok || typeof tok.access_token !== 'string') throw new Error(tok.error_description || tok.error || `token endpoint answered ${r.status}`);
  // With the refresh token, when the provider gave one (the embedded one does for the portal).
  saveSession(sessionFrom(/** @type {{ access_token: string }} */ (tok), null, Date.now(), claims(tok.id_token ?? tok.access_token).sub ?? null));
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
  // The refresh token goes with the rest (and the provider refuses it from the sign-out on).
  refresher.stop();
  sessionStorage.removeItem(SESSION);
  sessionStorage.removeItem(RETURN_TO);
  // A tab with the same session (a duplicated tab) is signed out too.
  if (s?.refreshToken) handOff({ spent: s.refreshToken, session: null });
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
