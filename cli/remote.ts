// The command line as a client of a gateway's public API (README "Device sign-in (CLI)"):
// `login` signs a person in with the OAuth 2.0 Device Authorization Grant (RFC 8628) at the
// gateway's embedded provider, through openid-client; the tokens are kept in a file only the
// user can read, refreshed when needed (each refresh rotates the refresh token), and used by
// `grants`, `cardata` and `stream`, which are thin HTTP clients of the API: no rule of the
// API is re-implemented here, the gateway decides and these commands print what it answers.
import { mkdir, readFile, rename, rm, writeFile, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as oidc from 'openid-client';

/** The public client the embedded provider keeps for tools without a browser (identity/provider.ts CLI_CLIENT_ID). */
export const CLI_CLIENT_ID = 'cardata-cli';
const SCOPE = 'openid cardata';
/** A token this close to its expiry is refreshed before use, ms (at most a quarter of its lifetime). */
const REFRESH_MARGIN_MS = 30_000;
/** When a token of `lifetimeS` seconds from now is due for a refresh, ms since the epoch. */
const refreshAt = (lifetimeS: number, now = Date.now()): number => now + lifetimeS * 1000 - Math.min(REFRESH_MARGIN_MS, (lifetimeS * 1000) / 4);

export class RemoteError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

export interface StoredTokens {
  gateway: string;
  issuer: string;
  clientId: string;
  accessToken: string;
  refreshToken: string | null;
  /** ms since the epoch. */
  expiresAt: number;
  /** When the access token is refreshed before use, ms since the epoch (shortly before expiresAt). */
  refreshAt?: number;
}

/** Where the tokens are kept: $XDG_CONFIG_HOME/cardata-gateway/tokens.json (default ~/.config). */
export function tokenFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(os.homedir(), '.config');
  return path.join(base, 'cardata-gateway', 'tokens.json');
}

async function save(t: StoredTokens): Promise<void> {
  const file = tokenFile();
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  // Written whole under another name, readable by the user only from its first byte, then renamed over the old one.
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(t, null, 2)}\n`, { mode: 0o600, flag: 'w' });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

async function load(): Promise<StoredTokens> {
  let text: string;
  try {
    text = await readFile(tokenFile(), 'utf8');
  } catch {
    throw new RemoteError(1, `not signed in: run 'npm run cli -- login --gateway <URL>' first (no ${tokenFile()})`);
  }
  const t = JSON.parse(text) as StoredTokens;
  if (typeof t.accessToken !== 'string' || typeof t.gateway !== 'string') throw new RemoteError(1, `${tokenFile()} is not a token file of this CLI: run login again`);
  return t;
}

/** The gateway's base URL, checked: http only to a loopback address (tokens travel in it). */
export function gatewayUrl(raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new RemoteError(2, `--gateway ${JSON.stringify(raw)} is not a URL`);
  }
  const loopback = u.hostname === 'localhost' || u.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(u.hostname);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback)) throw new RemoteError(2, `--gateway must be https:// (http:// only for a loopback address): ${raw}`);
  u.pathname = u.pathname.replace(/\/+$/, '');
  u.search = '';
  u.hash = '';
  return u;
}

async function configFor(gateway: URL): Promise<oidc.Configuration> {
  const issuer = new URL(`${gateway.href.replace(/\/$/, '')}/oidc`);
  const insecure = gateway.protocol === 'http:';
  try {
    return await oidc.discovery(issuer, CLI_CLIENT_ID, undefined, oidc.None(), insecure ? { execute: [oidc.allowInsecureRequests] } : {});
  } catch (err) {
    throw new RemoteError(1, `the gateway's sign-in at ${issuer.href} did not answer as an OpenID Provider (is it the gateway's public address, PUBLIC_URL?): ${(err as Error).message}`);
  }
}

const claimsOf = (jwt: string): Record<string, unknown> => {
  try {
    return JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
};

/** RFC 8628 §3.1–3.5: ask for a code, show it, poll until the person confirmed it (or refused, or it expired). */
export async function login(rawGateway: string, out: (line: string) => void): Promise<StoredTokens> {
  const gateway = gatewayUrl(rawGateway);
  const config = await configFor(gateway);
  const da = await oidc.initiateDeviceAuthorization(config, { scope: SCOPE });
  out(`To sign in, open ${da.verification_uri} and enter the code ${da.user_code}`);
  if (da.verification_uri_complete) out(`(or open ${da.verification_uri_complete})`);
  out(`Waiting for you to confirm (the code expires in ${Math.round(da.expires_in / 60)} min) ...`);
  let t;
  try {
    t = await oidc.pollDeviceAuthorizationGrant(config, da);
  } catch (err) {
    const code = (err as { error?: unknown }).error;
    if (code === 'access_denied') throw new RemoteError(1, 'sign-in refused: the code was cancelled on the confirmation page (access_denied)');
    if (code === 'expired_token') throw new RemoteError(1, 'sign-in expired: nobody confirmed the code in time (expired_token); run login again');
    throw new RemoteError(1, `sign-in failed: ${(err as Error).message}`);
  }
  const stored: StoredTokens = {
    gateway: gateway.href.replace(/\/$/, ''),
    issuer: config.serverMetadata().issuer,
    clientId: CLI_CLIENT_ID,
    accessToken: t.access_token,
    refreshToken: t.refresh_token ?? null,
    expiresAt: Date.now() + (t.expires_in ?? 60) * 1000,
    refreshAt: refreshAt(t.expires_in ?? 60),
  };
  await save(stored);
  const c = claimsOf(t.access_token);
  out(`Signed in to ${stored.gateway} as ${String(c.sub)} (${String(c.cardata_role)}); tokens kept in ${tokenFile()}`);
  return stored;
}

/** Deletes the token file; the refresh token is revoked at the gateway first when it answers (RFC 7009). */
export async function logout(out: (line: string) => void): Promise<void> {
  const t = await load().catch(() => null);
  if (t === null) {
    out('not signed in');
    return;
  }
  if (t.refreshToken) {
    try {
      await oidc.tokenRevocation(await configFor(gatewayUrl(t.gateway)), t.refreshToken);
    } catch {
      // The file goes all the same: the token dies with its session or its idle time.
    }
  }
  await rm(tokenFile(), { force: true });
  out(`signed out: ${tokenFile()} deleted`);
}

/** The stored tokens with an access token good for a while: refreshed (and the new pair kept) when needed. */
export async function freshTokens(force = false): Promise<StoredTokens> {
  const t = await load();
  if (!force && (t.refreshAt ?? t.expiresAt - REFRESH_MARGIN_MS) > Date.now()) return t;
  if (!t.refreshToken) throw new RemoteError(1, 'the sign-in has expired: run login again');
  let r;
  try {
    r = await oidc.refreshTokenGrant(await configFor(gatewayUrl(t.gateway)), t.refreshToken);
  } catch (err) {
    throw new RemoteError(1, `the sign-in has ended (${(err as { error?: string }).error ?? (err as Error).message}): run login again`);
  }
  const next: StoredTokens = { ...t, accessToken: r.access_token, refreshToken: r.refresh_token ?? t.refreshToken, expiresAt: Date.now() + (r.expires_in ?? 60) * 1000, refreshAt: refreshAt(r.expires_in ?? 60) };
  await save(next);
  return next;
}

/** An API call with the stored tokens; a 401 once retried after a refresh. */
async function call(pathAndQuery: string, accept = 'application/json'): Promise<Response> {
  let t = await freshTokens();
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${t.gateway}${pathAndQuery}`, { headers: { authorization: `Bearer ${t.accessToken}`, accept } });
    if (res.status === 401 && attempt === 0) {
      await res.body?.cancel();
      t = await freshTokens(true);
      continue;
    }
    if (res.status >= 400) {
      const body = (await res.json().catch(() => ({}))) as { code?: string; detail?: string };
      throw new RemoteError(res.status === 404 ? 4 : 1, `${pathAndQuery}: ${res.status} ${body.code ?? ''} ${body.detail ?? ''}`.trim());
    }
    return res;
  }
}

/** `grants`: the grants made to the caller (a recipient), or with a VIN the grants its owner made. */
export async function grants(vin: string | null, out: (line: string) => void): Promise<void> {
  const res = await call(vin ? `/v1/vehicles/${encodeURIComponent(vin)}/grants` : '/v1/grants');
  out(JSON.stringify(await res.json(), null, 2));
}

/** `cardata`: an export of a vehicle's CarData (its owner) or of a grant's (its recipient), to stdout or a file. */
export async function cardata(o: { vin: string | null; grant: string | null; from?: string; to?: string; format?: string; out?: string }): Promise<void> {
  const q = new URLSearchParams();
  if (o.from) q.set('from', o.from);
  if (o.to) q.set('to', o.to);
  if (o.format) q.set('format', o.format);
  const base = o.grant ? `/v1/grants/${encodeURIComponent(o.grant)}/cardata` : `/v1/vehicles/${encodeURIComponent(o.vin ?? '')}/cardata`;
  const res = await call(`${base}${q.size ? `?${q}` : ''}`, '*/*');
  if (!res.body) return;
  await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), o.out ? createWriteStream(o.out) : process.stdout);
}

interface SseEvent {
  event: string;
  data: string;
  id: string | null;
}

/** Server-sent events of a response body (HTML Living Standard §9.2.6), one at a time. */
async function* events(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buf = '';
  let ev: SseEvent = { event: 'message', data: '', id: null };
  let data: string[] = [];
  for await (const chunk of Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>) as AsyncIterable<Buffer>) {
    buf += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (data.length) yield { ...ev, data: data.join('\n') };
        ev = { event: 'message', data: '', id: null };
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') ev.event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') ev.id = value;
    }
  }
}

/**
 * `stream`: a vehicle's (owner) or a grant's (recipient) live stream, one record per line
 * (NDJSON) on stdout. When the stream ends with its token (token_expired, token_revoked),
 * the tokens are refreshed and the stream resumed from where it ended, without a gap or a
 * duplicate; another end reason, or a refused refresh, ends the command. `count`: stop after
 * that many records.
 */
export async function stream(o: { vin: string | null; grant: string | null; count: number | null }, write: (line: string) => void, log: (line: string) => void): Promise<void> {
  const p = o.grant ? `/v1/grants/${encodeURIComponent(o.grant)}/stream` : `/v1/vehicles/${encodeURIComponent(o.vin ?? '')}/stream`;
  let resumeFrom: string | null = null;
  let seen = 0;
  // Bounded: each round follows a token's end; a session lasts at most its refresh tokens' absolute lifetime.
  for (let round = 0; round < 10_000; round++) {
    const t = await freshTokens(round > 0);
    const res = await fetch(`${t.gateway}${p}`, { headers: { authorization: `Bearer ${t.accessToken}`, accept: 'text/event-stream', ...(resumeFrom ? { 'last-event-id': resumeFrom } : {}) } });
    if (res.status !== 200 || !res.body) {
      const body = (await res.json().catch(() => ({}))) as { code?: string; detail?: string };
      throw new RemoteError(res.status === 404 ? 4 : 1, `${p}: ${res.status} ${body.code ?? ''} ${body.detail ?? ''}`.trim());
    }
    type End = { reason?: string; resumeFrom?: string | null };
    let end = null as End | null;
    log(round === 0 ? `following ${p} (Ctrl-C to stop)` : `resumed ${p}`);
    for await (const e of events(res.body)) {
      if (e.event === 'record') {
        write(e.data);
        if (o.count !== null && ++seen >= o.count) {
          await res.body.cancel().catch(() => {});
          return;
        }
      } else if (e.event === 'end') {
        end = JSON.parse(e.data) as End;
        break;
      }
    }
    await res.body.cancel().catch(() => {});
    if (!end) throw new RemoteError(1, `${p}: the stream closed without an end event`);
    if (end.reason !== 'token_expired' && end.reason !== 'token_revoked') {
      log(`stream ended: ${end.reason ?? 'unknown'}`);
      return;
    }
    log(`stream ended with its token (${end.reason}): refreshing and resuming`);
    resumeFrom = end.resumeFrom ?? resumeFrom;
  }
}
