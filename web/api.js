// The public HTTP API, as any client calls it: bearer token, JSON, problem+json errors.
import { currentSession, expireSession, freshSession, refreshSession } from './auth.js';
import { takeEarly } from './boot.js';
import { followStream } from './stream.js';

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
 * Called when the session is over (the API refuses it, or its refresh token is refused):
 * the app returns to sign-in.
 * @param {() => void} fn
 */
export function setExpiredHandler(fn) {
  onExpired = fn;
}

/** The session is over: cleared here, and the app shows sign-in. */
function ended() {
  expireSession();
  onExpired();
}

/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body] sent as JSON
 * @param {{ signal?: AbortSignal, raw?: boolean }} [opts] raw: the Response itself (its body unread), not its JSON
 * @returns {Promise<any>} the JSON body (null for 204), or with `raw` the Response
 */
export async function request(method, path, body, opts = {}) {
  // Refreshed first when due (a background tab's timer may not have fired).
  const s = await freshSession();
  if (!s) {
    ended();
    throw new ApiProblem(401, { code: 'API_ERR_UNAUTHORIZED', detail: 'signed out' });
  }
  /** @param {string} token */
  const send = (token) => {
    /** @type {Record<string, string>} */
    const h = { authorization: `Bearer ${token}` };
    if (body !== undefined) h['content-type'] = 'application/json';
    return fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), signal: opts.signal });
  };
  // The same read, started while the page's modules loaded (boot.js); asked again if it failed.
  const early = method === 'GET' && !opts.signal ? takeEarly(path, s.accessToken) : null;
  let res = await (early ? early.catch(() => send(s.accessToken)) : send(s.accessToken));
  if (res.status === 401) {
    /** @type {{ detail?: string, code?: string } | null} */
    const problem = await res.json().catch(() => null);
    // Expired on the way: a fresh token (the refresh in flight, if any), and once more.
    const r = problem?.code === 'API_ERR_TOKEN_EXPIRED' ? await refreshSession(s.accessToken) : null;
    const next = r === 'ok' ? currentSession() : null;
    if (next) res = await send(next.accessToken);
    else {
      // Refused at refresh: signed out already (auth.js). No answer from the provider: not
      // signed out, this call fails. Any other 401: the session is over.
      if (r === null) ended();
      throw new ApiProblem(401, problem);
    }
    if (res.status === 401) ended();
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

/**
 * A live stream of the API (Server-Sent Events) read with fetch and a stream reader:
 * EventSource cannot send the bearer token, and a token in the URL would end up in logs.
 * Resumed with Last-Event-ID after a drop, and after the token expired with a fresh one
 * (stream.js followStream has the details). Returns a function that closes it.
 * @param {string} path
 * @param {{ onEvent: (ev: SseEvent) => void, onState?: (mode: 'live' | 'retrying' | 'off', status: number | undefined, resumed: boolean) => void }} handlers
 * @returns {() => void}
 */
export function openStream(path, handlers) {
  return followStream(path, handlers, {
    fetch: (url, init) => fetch(url, init),
    token: async () => (await freshSession())?.accessToken ?? null,
    refresh: refreshSession,
    signedOut: ended,
  });
}
