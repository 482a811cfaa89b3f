// The public HTTP API, as any client calls it: bearer token, JSON, problem+json errors.
import { currentSession, expireSession } from './auth.js';
import { takeEarly } from './boot.js';
import { parseEvents } from './sse.js';

export class ApiProblem extends Error {
  /**
   * @param {number} status
   * @param {{ detail?: string, code?: string } | null} body the problem+json body, when there is one
   */
  constructor(status, body) {
    super(body?.detail ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.code ?? null;
  }
}

let onExpired = () => {};
/**
 * Called when the API says the session is over (401): the app returns to sign-in.
 * @param {() => void} fn
 */
export function setExpiredHandler(fn) {
  onExpired = fn;
}

/** @param {Record<string, string>} extra */
function headers(extra = {}) {
  const s = currentSession();
  const h = { ...extra };
  if (s) h.authorization = `Bearer ${s.accessToken}`;
  return h;
}

/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body] sent as JSON
 * @param {{ signal?: AbortSignal, raw?: boolean }} [opts] raw: the Response itself (its body unread), not its JSON
 * @returns {Promise<any>} the JSON body (null for 204), or with `raw` the Response
 */
export async function request(method, path, body, opts = {}) {
  if (!currentSession()) {
    expireSession();
    onExpired();
    throw new ApiProblem(401, { code: 'API_ERR_UNAUTHORIZED', detail: 'signed out' });
  }
  const send = () =>
    fetch(path, {
      method,
      headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: opts.signal,
    });
  // The same read, started while the page's modules loaded (boot.js); asked again if it failed.
  const early = method === 'GET' && !opts.signal ? takeEarly(path, /** @type {Session} */ (currentSession()).accessToken) : null;
  const res = await (early ? early.catch(send) : send());
  if (res.status === 401) {
    expireSession();
    onExpired();
  }
  if (opts.raw) {
    if (!res.ok) throw new ApiProblem(res.status, await res.json().catch(() => null));
    return res;
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiProblem(res.status, data);
  return data;
}

/** @type {(path: string, opts?: { signal?: AbortSignal, raw?: boolean }) => Promise<any>} */
export const get = (path, opts) => request('GET', path, undefined, opts);
/** @type {(path: string, body: unknown) => Promise<any>} */
export const put = (path, body) => request('PUT', path, body);
/** @type {(path: string, body: unknown) => Promise<any>} */
export const post = (path, body) => request('POST', path, body);
/** @type {(path: string) => Promise<any>} */
export const del = (path) => request('DELETE', path);

/** Waits between reconnects, ms: growing, then steady (never giving up while the page is open). */
const BACKOFF_MS = [500, 1000, 2000, 5000, 10_000, 15_000];
/** No byte for this long (the server sends a keep-alive at least every 15 s): the connection is dead. */
const STALL_MS = 45_000;

/**
 * A Server-Sent Events stream read with fetch and a stream reader: EventSource cannot send
 * the bearer token, and a token in the URL would end up in logs. Calls onEvent({ id, event,
 * data }) per event. After a drop (network, server restart, the server ending a stream
 * with an `end` event) it reconnects with Last-Event-ID, so nothing committed meanwhile is
 * missed or sent twice (the stream's resume contract). onState(mode, status, resumed)
 * reports: 'live' (connected; resumed when from a cursor), 'retrying' (down, will
 * reconnect), 'off' (refused for good: no stream here, no access). Returns a function
 * that closes it.
 * @param {string} path
 * @param {{ onEvent: (ev: SseEvent) => void, onState?: (mode: 'live' | 'retrying' | 'off', status: number | undefined, resumed: boolean) => void }} handlers
 * @returns {() => void}
 */
export function openStream(path, { onEvent, onState }) {
  const ctl = new AbortController();
  /** @type {string | null} */
  let lastId = null;
  let failures = 0;
  /** @type {(mode: 'live' | 'retrying' | 'off', status?: number, resumed?: boolean) => void} */
  const state = (mode, status, resumed = false) => {
    if (!ctl.signal.aborted) onState?.(mode, status, resumed);
  };
  void (async () => {
    while (!ctl.signal.aborted) {
      const conn = new AbortController();
      const abort = () => conn.abort();
      ctl.signal.addEventListener('abort', abort);
      /** @type {number | undefined} */
      let stall;
      const arm = () => {
        clearTimeout(stall);
        stall = setTimeout(abort, STALL_MS);
      };
      try {
        if (!currentSession()) {
          expireSession();
          onExpired();
          return state('off', 401);
        }
        const h = headers({ accept: 'text/event-stream' });
        if (lastId) h['last-event-id'] = lastId;
        arm();
        const res = await fetch(path, { headers: h, signal: conn.signal, cache: 'no-store' });
        if (res.status === 401) {
          expireSession();
          onExpired();
          return state('off', 401);
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
            if (ev.data !== '' || ev.event !== 'message') onEvent(ev);
          });
        }
      } catch {
        if (ctl.signal.aborted) return;
      } finally {
        clearTimeout(stall);
        ctl.signal.removeEventListener('abort', abort);
      }
      state('retrying');
      const wait = BACKOFF_MS[Math.min(failures++, BACKOFF_MS.length - 1)];
      await new Promise((r) => setTimeout(r, wait));
    }
  })();
  return () => ctl.abort();
}
