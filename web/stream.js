// A live stream (Server-Sent Events read with fetch) kept open across drops and token
// expiry. Its I/O comes in as functions (api.js hands in fetch and the session), so the
// unit tests drive it with a fake server (test/unit/portal-stream.test.ts).
import { parseEvents } from './sse.js';
import { endReaction } from './refresh.js';

/** Waits between reconnects, ms: growing, then steady (never giving up while the page is open). */
export const BACKOFF_MS = [500, 1000, 2000, 5000, 10_000, 15_000];
/** No byte for this long (the server sends a keep-alive at least every 15 s): the connection is dead. */
const STALL_MS = 45_000;

/**
 * @typedef {object} StreamDeps
 * @property {(url: string, init: RequestInit) => Promise<Response>} fetch
 * @property {() => Promise<string | null>} token the access token to connect with (fresh), null when signed out
 * @property {(usedToken: string) => Promise<import('./refresh.js').RefreshResult>} refresh a new access token (the refresh in flight, if any)
 * @property {() => void} signedOut the session is over: back to sign-in
 * @property {(ms: number) => Promise<void>} [sleep]
 */

/**
 * Follows the stream at `path`: onEvent({ id, event, data }) per event. After a drop
 * (network, server restart, the server ending the stream with an `end` event) it
 * reconnects with Last-Event-ID, so nothing committed meanwhile is missed or sent twice
 * (the stream's resume contract). An end for the token (`token_expired`, or
 * `token_revoked` once) is no drop: it refreshes the token and resumes from the end's
 * `resumeFrom` at once, the state staying 'live'. onState(mode, status, resumed) reports:
 * 'live' (connected; resumed when from a cursor), 'retrying' (down, will reconnect), 'off'
 * (refused for good: no stream here, no access, signed out). Returns a function that closes it.
 * @param {string} path
 * @param {{ onEvent: (ev: SseEvent) => void, onState?: (mode: 'live' | 'retrying' | 'off', status: number | undefined, resumed: boolean) => void }} handlers
 * @param {StreamDeps} deps
 * @returns {() => void}
 */
export function followStream(path, { onEvent, onState }, deps) {
  const sleep = deps.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  const ctl = new AbortController();
  /** @type {string | null} */
  let lastId = null;
  let failures = 0;
  /** The previous connection ended with token_revoked, and no record came since. */
  let revoked = false;
  /** A 401 for an expired token was answered with a refresh: a second one in a row is final. */
  let refreshedFor401 = false;
  /** @type {(mode: 'live' | 'retrying' | 'off', status?: number, resumed?: boolean) => void} */
  const state = (mode, status, resumed = false) => {
    if (!ctl.signal.aborted) onState?.(mode, status, resumed);
  };
  const off = () => {
    if (ctl.signal.aborted) return;
    deps.signedOut();
    state('off', 401);
  };
  void (async () => {
    while (!ctl.signal.aborted) {
      const conn = new AbortController();
      const abort = () => conn.abort();
      ctl.signal.addEventListener('abort', abort);
      /** @type {ReturnType<typeof setTimeout> | undefined} */
      let stall;
      const arm = () => {
        clearTimeout(stall);
        stall = setTimeout(abort, STALL_MS);
      };
      /** How this connection ended, when by the token: reconnect at once after a refresh. */
      /** @type {ReturnType<typeof endReaction> | null} */
      let end = null;
      /** The access token this connection was opened with. */
      let used = '';
      try {
        const token = await deps.token();
        if (ctl.signal.aborted) return;
        if (!token) return off();
        used = token;
        /** @type {Record<string, string>} */
        const h = { accept: 'text/event-stream', authorization: `Bearer ${token}` };
        if (lastId) h['last-event-id'] = lastId;
        arm();
        const res = await deps.fetch(path, { headers: h, signal: conn.signal, cache: 'no-store' });
        if (res.status === 401) {
          /** @type {{ code?: string } | null} */
          const problem = await res.json().catch(() => null);
          // Expired on the way (a clock ahead of the server's, a tab asleep): one refresh, then again.
          if (problem?.code === 'API_ERR_TOKEN_EXPIRED' && !refreshedFor401) {
            refreshedFor401 = true;
            const r = await deps.refresh(token);
            if (r === 'ok') continue;
            if (r === 'ended') return off();
            throw new Error('refresh failed');
          }
          return off();
        }
        // A cursor the server no longer keeps (or cannot read): start live again; the
        // page re-reads what is stored when the stream comes back.
        if ((res.status === 400 || res.status === 410) && lastId) {
          lastId = null;
          continue;
        }
        // 429 (too many streams), 5xx and proxies' errors pass; any other refusal is final.
        if (!res.ok && res.status !== 429 && res.status < 500) return state('off', res.status);
        if (!res.ok || !res.body || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) throw new Error(`stream answered ${res.status}`);
        refreshedFor401 = false;
        // Resumed (with a cursor): the server sends what was missed, nothing need be re-read.
        state('live', res.status, lastId !== null && h['last-event-id'] === lastId);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          arm();
          const { value, done } = await reader.read();
          if (done) break;
          // Data flows: the stream is healthy again.
          failures = 0;
          buf = parseEvents(buf + value, (ev) => {
            if (ev.id) lastId = ev.id;
            if (ev.event === 'end') {
              const e = endReaction(ev.data, revoked);
              if (e.action !== 'reconnect') end = e;
            } else if (ev.event === 'record') revoked = false;
            if (ev.data !== '' || ev.event !== 'message') onEvent(ev);
          });
        }
      } catch {
        if (ctl.signal.aborted) return;
      } finally {
        clearTimeout(stall);
        ctl.signal.removeEventListener('abort', abort);
      }
      if (ctl.signal.aborted) return;
      // Set by the parser's callback (which the compiler does not follow).
      const tokenEnd = /** @type {ReturnType<typeof endReaction> | null} */ (end);
      if (tokenEnd) {
        // Never from an older cursor than the one the server named.
        if (tokenEnd.resumeFrom) lastId = tokenEnd.resumeFrom;
        if (tokenEnd.action === 'sign-in') return off();
        revoked = tokenEnd.reason === 'token_revoked';
        // The token the stream was opened with is over: a fresh one (often there already,
        // refreshed ahead of expiry), and back at once: the person notices nothing.
        const r = await deps.refresh(used);
        if (r === 'ok') continue;
        if (r === 'ended') return off();
      }
      state('retrying');
      const wait = BACKOFF_MS[Math.min(failures++, BACKOFF_MS.length - 1)];
      await sleep(wait);
    }
  })();
  return () => ctl.abort();
}
