// The public HTTP API, as any client calls it: bearer token, JSON, problem+json errors.
import { currentSession, expireSession } from './auth.js';

export class ApiProblem extends Error {
  constructor(status, body) {
    super(body?.detail ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.code ?? null;
  }
}

let onExpired = () => {};
/** Called when the API says the session is over (401): the app returns to sign-in. */
export function setExpiredHandler(fn) {
  onExpired = fn;
}

function headers(extra = {}) {
  const s = currentSession();
  const h = { ...extra };
  if (s) h.authorization = `Bearer ${s.accessToken}`;
  return h;
}

export async function request(method, path, body, opts = {}) {
  if (!currentSession()) {
    expireSession();
    onExpired();
    throw new ApiProblem(401, { code: 'API_ERR_UNAUTHORIZED', detail: 'signed out' });
  }
  const res = await fetch(path, {
    method,
    headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: opts.signal,
  });
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

export const get = (path, opts) => request('GET', path, undefined, opts);
export const put = (path, body) => request('PUT', path, body);
export const post = (path, body) => request('POST', path, body);
export const del = (path) => request('DELETE', path);

/**
 * A Server-Sent Events stream read with fetch (EventSource cannot send a bearer token).
 * Calls onEvent({ id, event, data }) per event; resumes with Last-Event-ID after a drop,
 * at most `maxRetries` times in a row. Returns a function that closes it.
 */
export function openStream(path, { onEvent, onState }) {
  const ctl = new AbortController();
  let lastId = null;
  let retries = 0;
  const maxRetries = 5;
  (async () => {
    while (!ctl.signal.aborted && retries <= maxRetries) {
      try {
        const h = headers({ accept: 'text/event-stream' });
        if (lastId) h['last-event-id'] = lastId;
        const res = await fetch(path, { headers: h, signal: ctl.signal });
        if (!res.ok || !res.body) {
          if (res.status === 401) {
            expireSession();
            onExpired();
          }
          onState?.(false, res.status);
          return;
        }
        onState?.(true);
        retries = 0;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + (buf[i] === '\r' ? 4 : 2));
            const ev = { id: null, event: 'message', data: '' };
            const data = [];
            for (const line of block.split(/\r?\n/)) {
              if (line.startsWith(':')) continue;
              const c = line.indexOf(':');
              const k = c < 0 ? line : line.slice(0, c);
              const v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
              if (k === 'id') ev.id = v;
              else if (k === 'event') ev.event = v;
              else if (k === 'data') data.push(v);
            }
            if (data.length === 0) continue;
            ev.data = data.join('\n');
            if (ev.id) lastId = ev.id;
            onEvent(ev);
          }
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
      }
      onState?.(false);
      retries++;
      await new Promise((r) => setTimeout(r, 1000 * retries));
    }
  })();
  return () => ctl.abort();
}
