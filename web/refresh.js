// Keeping a session's access token fresh with its refresh token (RFC 6749 §6): when to
// refresh, one refresh at a time, and what a stream's end asks for. No I/O and no browser
// globals here (auth.js hands in the token endpoint, the storage and the clock), so it is
// tested on its own (test/unit/portal-refresh.test.ts).

/** Share of the access token's lifetime after which it is refreshed. */
export const REFRESH_AT = 0.8;
/** Waits before a refresh that failed (no answer, 5xx) is tried again, ms. */
export const RETRY_MS = [1000, 2000, 5000, 10_000, 30_000];

/**
 * The session after a token response (a sign-in's code exchange or a refresh), at `now`.
 * A response without a refresh token or an ID token keeps the earlier ones.
 * @param {{ access_token: string, refresh_token?: unknown, id_token?: unknown, expires_in?: unknown }} tok
 * @param {Session | null} prev the session refreshed, null at sign-in
 * @param {number} now ms since epoch
 * @param {string | null} subject
 * @returns {Session}
 */
export function sessionFrom(tok, prev, now, subject) {
  const ttlMs = (Number(tok.expires_in) || 300) * 1000;
  /** @type {Session} */
  const s = {
    accessToken: tok.access_token,
    refreshToken: typeof tok.refresh_token === 'string' ? tok.refresh_token : (prev?.refreshToken ?? null),
    idToken: typeof tok.id_token === 'string' ? tok.id_token : (prev?.idToken ?? null),
    expiresAt: now + ttlMs,
    refreshAt: now + Math.round(ttlMs * REFRESH_AT),
    subject: prev?.subject ?? subject,
  };
  if (prev?.role) s.role = prev.role;
  return s;
}

/**
 * When `s` is to be refreshed, ms since epoch (null: it cannot be, it has no refresh token).
 * @param {Session} s
 */
export function refreshTime(s) {
  if (!s.refreshToken) return null;
  return s.refreshAt ?? s.expiresAt - 60_000;
}

/** @typedef {'ok' | 'ended' | 'failed'} RefreshResult ended: the session is over (invalid_grant); failed: no answer, try again later */

/**
 * One refresh at a time in this tab, and the next one planned: at REFRESH_AT of the access
 * token's lifetime; after a failure, again after RETRY_MS; never once the session ended.
 * When it ends (or there is none to refresh), onEnded is called, once per refresh asked for.
 * @param {{
 *   read: () => Session | null,
 *   exchange: (s: Session) => Promise<RefreshResult>,
 *   onEnded: () => void,
 *   now?: () => number,
 *   setTimer?: (fn: () => void, ms: number) => unknown,
 *   clearTimer?: (t: unknown) => void,
 * }} deps read: the stored session; exchange: one call of the token endpoint, which stores the new session itself
 */
export function createRefresher(deps) {
  const now = deps.now ?? Date.now;
  const setTimer = deps.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
  const clearTimer = deps.clearTimer ?? ((t) => clearTimeout(/** @type {number} */ (t)));
  /** @type {Promise<RefreshResult> | null} */
  let inflight = null;
  /** @type {unknown} */
  let timer = null;
  let failures = 0;

  const stop = () => {
    if (timer !== null) clearTimer(timer);
    timer = null;
  };

  /** Plans the next refresh of the stored session (none without one). */
  function schedule() {
    stop();
    const s = deps.read();
    const at = s && refreshTime(s);
    if (at === null || at === undefined) return;
    const wait = failures > 0 ? RETRY_MS[Math.min(failures - 1, RETRY_MS.length - 1)] : Math.max(0, at - now());
    timer = setTimer(() => {
      timer = null;
      void refresh();
    }, wait);
  }

  /**
   * Refreshes the stored session; callers meanwhile share the refresh in flight. With
   * `usedToken` (the access token a refused call carried): when the stored session has
   * another one, still valid, it was refreshed meanwhile and is not refreshed again.
   * @param {string} [usedToken]
   * @returns {Promise<RefreshResult>}
   */
  function refresh(usedToken) {
    if (inflight) return inflight;
    const s = deps.read();
    if (!s || !s.refreshToken) {
      // Nothing to refresh with (signed out, or signed in with an API token): over.
      stop();
      deps.onEnded();
      return Promise.resolve(/** @type {RefreshResult} */ ('ended'));
    }
    if (usedToken !== undefined && s.accessToken !== usedToken && now() < s.expiresAt) return Promise.resolve(/** @type {RefreshResult} */ ('ok'));
    const run = (async () => {
      /** @type {RefreshResult} */
      let r;
      try {
        r = await deps.exchange(s);
      } catch {
        r = 'failed';
      }
      failures = r === 'failed' ? failures + 1 : 0;
      return r;
    })();
    inflight = run;
    void run.then((r) => {
      inflight = null;
      if (r === 'ended') {
        stop();
        deps.onEnded();
      } else schedule();
    });
    return run;
  }

  /**
   * The stored session with an access token to use now: refreshed first when it is due
   * (a timer of a background tab may not have fired). Null: signed out, or the session ended.
   * @returns {Promise<Session | null>}
   */
  async function fresh() {
    const s = deps.read();
    if (!s) return null;
    const at = refreshTime(s);
    if (at === null || now() < at) return s;
    const r = await refresh();
    const next = deps.read();
    if (r === 'ended' || !next) return null;
    // Not refreshed (no answer): the token it has, while it lasts.
    return now() < next.expiresAt ? next : null;
  }

  return { refresh, fresh, schedule, stop, inflight: () => inflight };
}

/**
 * What a stream's `end` event asks of the client.
 * - token_expired: a fresh token (refresh), then resume from `resumeFrom` at once;
 * - token_revoked: one refresh (only that access token may have been revoked), then resume;
 *   when it ends again so right after (the session itself is revoked): sign in again;
 * - any other reason: reconnect as after a drop (with backoff, from the last cursor).
 * @param {string} data the end event's data
 * @param {boolean} revokedJustBefore the previous connection ended with token_revoked and sent no record since
 * @returns {{ action: 'refresh' | 'sign-in' | 'reconnect', reason: string | null, resumeFrom: string | null }}
 */
export function endReaction(data, revokedJustBefore) {
  /** @type {{ reason?: unknown, resumeFrom?: unknown }} */
  let d = {};
  try {
    d = JSON.parse(data) ?? {};
  } catch {
    // not JSON: an end without a known reason
  }
  const reason = typeof d.reason === 'string' ? d.reason : null;
  const resumeFrom = typeof d.resumeFrom === 'string' && d.resumeFrom !== '' ? d.resumeFrom : null;
  if (reason === 'token_expired') return { action: 'refresh', reason, resumeFrom };
  if (reason === 'token_revoked') return { action: revokedJustBefore ? 'sign-in' : 'refresh', reason, resumeFrom };
  return { action: 'reconnect', reason, resumeFrom };
}
