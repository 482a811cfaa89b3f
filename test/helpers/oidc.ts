// Tokens of OpenID Providers, obtained the way a real client does:
// - signInWithCode: the embedded provider's Authorization Code flow with PKCE, driven with
//   fetch and a cookie jar (GET /oidc/auth → login form → POST → consent → code → token);
// - startExternalIdp: a second process on its own port with its own keys
//   (test/fixtures/external-idp.ts) that signs what the test asks for.
import { createHash, randomBytes } from 'node:crypto';
import { spawnChild, type Child } from './proc.ts';

export const TEST_REDIRECT_URI = 'http://127.0.0.1:9/callback';

/** A browser's cookies at the provider: what Set-Cookie gave, sent back on the next request. */
export class CookieJar {
  private readonly cookies = new Map<string, string>();
  take(res: Response): void {
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i).trim();
      const value = pair!.slice(i + 1).trim();
      const gone = attrs.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a) || /^\s*max-age=0\s*$/i.test(a));
      if (gone || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

export interface CodeFlowOptions {
  username: string;
  password: string;
  redirectUri?: string;
  clientId?: string;
  scope?: string;
  /** Send no PKCE challenge (to show the provider refuses that). */
  withoutPkce?: boolean;
}

export interface CodeFlowResult {
  accessToken: string;
  idToken: string | undefined;
  refreshToken: string | undefined;
  expiresIn: number;
  /** The browser's cookies at the provider after the sign-in (its session). */
  cookies: string;
}

/** Thrown when the flow ends anywhere but at a token: the last response is kept. */
export class SignInFailed extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: string,
    readonly location: string | null,
  ) {
    super(message);
  }
}

/** Runs the Authorization Code flow with PKCE against the gateway at `base` (http://host:port). */
export async function signInWithCode(base: string, o: CodeFlowOptions): Promise<CodeFlowResult> {
  const jar = new CookieJar();
  const redirectUri = o.redirectUri ?? TEST_REDIRECT_URI;
  const clientId = o.clientId ?? 'cardata-portal';
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(8).toString('hex');
  const params = new URLSearchParams({ client_id: clientId, response_type: 'code', redirect_uri: redirectUri, scope: o.scope ?? 'openid cardata', state, nonce: randomBytes(8).toString('hex') });
  if (!o.withoutPkce) {
    params.set('code_challenge', createHash('sha256').update(verifier).digest('base64url'));
    params.set('code_challenge_method', 'S256');
  }
  const go = async (url: string, init: RequestInit = {}) => {
    const res = await fetch(new URL(url, base), { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string>), cookie: jar.header() } });
    jar.take(res);
    return res;
  };

  let res = await go(`/oidc/auth?${params.toString()}`);
  let code: string | null = null;
  // Bounded: login, consent and their redirects take about six hops.
  for (let hop = 0; hop < 12 && code === null; hop++) {
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      if (location.startsWith(redirectUri)) {
        const back = new URL(location).searchParams;
        if (back.get('error')) throw new SignInFailed(`sign-in ended with ${back.get('error')}: ${back.get('error_description')}`, res.status, '', location);
        if (back.get('state') !== state) throw new SignInFailed('state mismatch', res.status, '', location);
        code = back.get('code');
        break;
      }
      await res.body?.cancel();
      res = await go(location);
      continue;
    }
    const html = await res.text();
    const action = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1];
    if (res.status === 200 && action) {
      res = await go(action, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username: o.username, password: o.password }).toString(),
      });
      continue;
    }
    throw new SignInFailed(`sign-in stopped at HTTP ${res.status}`, res.status, html, location);
  }
  if (!code) throw new SignInFailed('no authorization code after 12 hops', res.status, '', res.headers.get('location'));

  const tok = await fetch(new URL('/oidc/token', base), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: clientId, code_verifier: verifier }).toString(),
  });
  const body = (await tok.json()) as { access_token?: string; id_token?: string; refresh_token?: string; expires_in?: number; error?: string; error_description?: string };
  if (tok.status !== 200 || !body.access_token) throw new SignInFailed(`token endpoint: ${body.error}: ${body.error_description}`, tok.status, JSON.stringify(body), null);
  return { accessToken: body.access_token, idToken: body.id_token, refreshToken: body.refresh_token, expiresIn: body.expires_in ?? 0, cookies: jar.header() };
}

/** `grant_type=refresh_token` at the token endpoint, as the portal does: the status and the body. */
export async function refreshWith(base: string, refreshToken: string, clientId = 'cardata-portal'): Promise<{ status: number; body: { access_token?: string; refresh_token?: string; expires_in?: number; error?: string } }> {
  const r = await fetch(new URL('/oidc/token', base), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId }).toString(),
  });
  return { status: r.status, body: (await r.json()) as { access_token?: string; refresh_token?: string; expires_in?: number; error?: string } };
}

/**
 * RP-initiated logout as the browser does it: the end-session page with the ID token as
 * hint and the session's cookies, then its confirmation form (logout=yes; `confirm` false:
 * the "stay signed in" button). Resolves with the final answer's status.
 */
export async function signOut(base: string, s: CodeFlowResult, clientId = 'cardata-portal', confirm = true): Promise<number> {
  const q = new URLSearchParams({ client_id: clientId, ...(s.idToken ? { id_token_hint: s.idToken } : {}) });
  const page = await fetch(new URL(`/oidc/session/end?${q.toString()}`, base), { headers: { cookie: s.cookies }, redirect: 'manual' });
  const html = await page.text();
  const action = /<form id="op\.logoutForm" method="post" action="([^"]+)"/.exec(html)?.[1];
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1];
  if (!action || !xsrf) throw new SignInFailed(`no logout form (HTTP ${page.status})`, page.status, html, page.headers.get('location'));
  const done = await fetch(new URL(action, base), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: s.cookies },
    // The page's two buttons: "yes" sends logout=yes; "no, stay signed in" sends the form without it.
    body: new URLSearchParams(confirm ? { xsrf, logout: 'yes' } : { xsrf }).toString(),
    redirect: 'manual',
  });
  await done.body?.cancel();
  return done.status;
}

export interface ExternalIdp {
  readonly issuer: string;
  readonly port: number;
  /** A token with exactly these claims, signed by the current key (or the named one). */
  sign(claims: Record<string, unknown>, opts?: { kid?: string; header?: Record<string, unknown> }): Promise<string>;
  /** A new signing key, published and used from now on; `retire` drops the old one from the JWKS. */
  rotate(retire?: boolean): Promise<{ kid: string; retired: string | null }>;
  state(): Promise<{ jwksHits: number; kids: string[]; signing: string; publicJwk: Record<string, unknown> }>;
  stop(): Promise<void>;
  readonly child: Child;
}

export async function startExternalIdp(): Promise<ExternalIdp> {
  const child = spawnChild(process.execPath, ['--import', 'tsx', 'test/fixtures/external-idp.ts'], {});
  const m = await child.waitForOutput(/listening (\d+)/, 20_000);
  const port = Number(m[1]);
  const issuer = `http://127.0.0.1:${port}`;
  const post = async (path: string, body: unknown) => {
    const r = await fetch(`${issuer}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
    return r.json() as Promise<Record<string, unknown>>;
  };
  return {
    issuer,
    port,
    child,
    async sign(claims, opts = {}) {
      return (await post('/control/sign', { claims, ...opts })).token as string;
    },
    async rotate(retire = false) {
      return (await post('/control/rotate', { retire })) as { kid: string; retired: string | null };
    },
    async state() {
      return (await (await fetch(`${issuer}/control/state`)).json()) as Awaited<ReturnType<ExternalIdp['state']>>;
    },
    async stop() {
      child.signal('SIGTERM');
      await child.exited(10_000).catch(() => child.killTree());
    },
  };
}
