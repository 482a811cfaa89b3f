// A browser at the embedded provider's sign-in form, for the sign-in throttle's tests: a
// cookie jar, an Authorization Code + PKCE interaction, optionally the address a trusted
// proxy says it comes from.
import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { api } from './gateway.ts';
import { CookieJar, TEST_REDIRECT_URI } from './oidc.ts';
import type { RunningGateway } from '../../app/gateway.ts';

const base = (g: RunningGateway) => `http://127.0.0.1:${g.httpPort}`;

/** One browser: a cookie jar and, optionally, the address a trusted proxy says it has. */
export class Browser {
  private readonly cookies = new CookieJar();
  private readonly verifier = randomBytes(32).toString('base64url');
  action = '';
  constructor(
    private readonly gw: RunningGateway,
    private readonly forwardedFor?: string,
  ) {}

  async go(url: string, init: RequestInit = {}): Promise<Response> {
    const headers: Record<string, string> = { ...(init.headers as Record<string, string>), cookie: this.cookies.header() };
    if (this.forwardedFor) headers['x-forwarded-for'] = this.forwardedFor;
    const res = await fetch(new URL(url, base(this.gw)), { ...init, redirect: 'manual', headers });
    this.cookies.take(res);
    return res;
  }

  /** GET /oidc/auth (Authorization Code + PKCE) and its redirects, up to the sign-in form. */
  async open(): Promise<void> {
    const params = new URLSearchParams({
      client_id: 'cardata-portal',
      response_type: 'code',
      redirect_uri: TEST_REDIRECT_URI,
      scope: 'openid cardata',
      state: 's',
      code_challenge: createHash('sha256').update(this.verifier).digest('base64url'),
      code_challenge_method: 'S256',
    });
    let res = await this.go(`/oidc/auth?${params.toString()}`);
    for (let hop = 0; hop < 5 && res.status >= 300 && res.status < 400; hop++) {
      await res.body?.cancel();
      res = await this.go(res.headers.get('location')!);
    }
    const html = await res.text();
    const action = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1];
    if (res.status !== 200 || !action) throw new Error(`no sign-in form: HTTP ${res.status} ${html.slice(0, 200)}`);
    this.action = action;
  }

  /** POSTs the form; the response with its body read. */
  async login(username: string, password: string, extra: Record<string, string> = {}, signal?: AbortSignal): Promise<{ status: number; html: string; headers: Headers; location: string | null }> {
    const res = await this.go(this.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username, password, ...extra }).toString(),
      ...(signal ? { signal } : {}),
    });
    return { status: res.status, html: await res.text(), headers: res.headers, location: res.headers.get('location') };
  }

  /** After a successful login: follows the redirects to the portal's redirect URI; the code. */
  async code(location: string): Promise<string | null> {
    let loc: string | null = location;
    for (let hop = 0; hop < 8 && loc; hop++) {
      if (loc.startsWith(TEST_REDIRECT_URI)) return new URL(loc).searchParams.get('code');
      const res = await this.go(loc);
      await res.body?.cancel();
      loc = res.headers.get('location');
    }
    return null;
  }
}

export async function account(gw: RunningGateway, username: string, password: string): Promise<void> {
  const r = await api(gw, 'POST', '/v1/admin/accounts', { username, password, role: 'customer', subject: `subj-${username}` });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
}
