// One webhook POST (docs/webhooks.md "Safety"): to the address checked (webhooks/safety.ts),
// never another (the connection's lookup answers that address only; TLS still verifies
// the certificate against the URL's host name), no redirects followed (a 3xx is a
// failure), bounded in time (connect, then the whole answer) and in what is read of the
// receiver's answer.
import http from 'node:http';
import https from 'node:https';
import type { LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import type { CheckedTarget } from './safety.ts';

export interface SendLimits {
  /** TCP (and TLS) connect timeout, ms. */
  connectTimeoutMs: number;
  /** From the request's start to the answer's end, ms. */
  responseTimeoutMs: number;
  /** Bytes of the answer read at most; beyond, the connection is dropped (the status stands). */
  maxResponseBytes: number;
}

export type SendResult = { ok: true; status: number; ms: number } | { ok: false; status: number | null; reason: string; ms: number; gone?: boolean };

/** Keep-alive agents per (endpoint, address): a connection is reused only to the address it was made to. */
export function createAgents() {
  const agents = new Map<string, http.Agent>();
  return {
    agentFor(key: string, https_: boolean): http.Agent {
      let a = agents.get(key);
      if (!a) {
        a = https_ ? new https.Agent({ keepAlive: true, maxSockets: 8, timeout: 30_000 }) : new http.Agent({ keepAlive: true, maxSockets: 8, timeout: 30_000 });
        if (agents.size > 10_000) {
          for (const x of agents.values()) x.destroy();
          agents.clear();
        }
        agents.set(key, a);
      }
      return a;
    },
    drop(prefix: string): void {
      for (const [k, a] of agents) {
        if (k.startsWith(prefix)) {
          a.destroy();
          agents.delete(k);
        }
      }
    },
    close(): void {
      for (const a of agents.values()) a.destroy();
      agents.clear();
    },
  };
}
export type Agents = ReturnType<typeof createAgents>;

/**
 * The connection's lookup: the checked address, whatever name it is asked for. Node asks
 * with `all: true` (happy eyeballs) and then expects a list: the callback's type is the
 * single-address overload's, so the list form is called through its own signature.
 */
function pinnedLookup(address: string, family: 4 | 6): LookupFunction {
  return (_host, opts, cb) => {
    if (opts.all) (cb as (err: null, addresses: LookupAddress[]) => void)(null, [{ address, family }]);
    else cb(null, address, family);
  };
}

export function post(target: CheckedTarget, headers: Record<string, string>, body: string, limits: SendLimits, agent: http.Agent): Promise<SendResult> {
  const t0 = Date.now();
  const pinned = pinnedLookup(target.address, target.family);
  const isHttps = target.url.protocol === 'https:';
  const mod = isHttps ? https : http;
  return new Promise<SendResult>((resolve) => {
    let done = false;
    const finish = (r: SendResult): void => {
      if (done) return;
      done = true;
      clearTimeout(overall);
      resolve(r);
    };
    const req = mod.request(
      {
        method: 'POST',
        protocol: target.url.protocol,
        hostname: target.url.hostname.startsWith('[') ? target.url.hostname.slice(1, -1) : target.url.hostname,
        port: target.url.port || (isHttps ? 443 : 80),
        path: `${target.url.pathname}${target.url.search}`,
        headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'user-agent': 'cardata-gateway-webhooks/1' },
        lookup: pinned,
        agent,
        ...(isHttps ? { servername: target.url.hostname } : {}),
      },
      (res) => {
        const status = res.statusCode ?? 0;
        let read = 0;
        const settle = (): void => {
          const ms = Date.now() - t0;
          if (status >= 200 && status < 300) finish({ ok: true, status, ms });
          else if (status >= 300 && status < 400) finish({ ok: false, status, reason: `redirect ${status} (not followed)`, ms });
          else finish({ ok: false, status, reason: `HTTP ${status}`, ms, ...(status === 410 ? { gone: true } : {}) });
        };
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          // Past the bound the rest is not read: the status decides, the connection goes.
          if (read > limits.maxResponseBytes) {
            settle();
            res.destroy();
            req.destroy();
          }
        });
        res.on('end', settle);
        res.on('error', () => settle());
        res.on('aborted', () => settle());
      },
    );
    const overall = setTimeout(() => {
      finish({ ok: false, status: null, reason: `no answer within ${limits.responseTimeoutMs} ms`, ms: Date.now() - t0 });
      req.destroy();
    }, limits.responseTimeoutMs);
    req.on('socket', (s) => {
      if (!s.connecting) return;
      const ct = setTimeout(() => {
        finish({ ok: false, status: null, reason: `no connection within ${limits.connectTimeoutMs} ms`, ms: Date.now() - t0 });
        req.destroy();
      }, limits.connectTimeoutMs);
      s.once(isHttps ? 'secureConnect' : 'connect', () => clearTimeout(ct));
      s.once('close', () => clearTimeout(ct));
    });
    req.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, status: null, reason: err.code ?? err.message, ms: Date.now() - t0 }));
    req.end(body);
  });
}
