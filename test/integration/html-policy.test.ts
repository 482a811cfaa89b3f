/// <reference lib="dom" />
// Every HTML answer carries a policy (issue 23, finding 8): a Content-Security-Policy that
// forbids framing (frame-ancestors 'none') and X-Frame-Options DENY on /docs (Swagger UI),
// the embedded provider's pages (sign-out, signed out, its error pages, form_post) and
// the sign-in and portal pages. Then Debian's Chromium shows the policies break nothing:
// /docs renders, and a sign-in answered by form_post and a sign-out run their course,
// without a single policy violation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import type { Page } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { api, startTestGateway } from '../helpers/gateway.ts';
import { signInWithCode } from '../helpers/oidc.ts';
import { launchBrowser, type TestBrowser } from '../helpers/browser.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let gw: RunningGateway;
let base: string;
let tb: TestBrowser;
const PASSWORD = 'html-policy-password-0123';

beforeAll(async () => {
  db = await createTestDatabase();
  // The portal's default redirect URI (<this origin>/portal/callback): same origin as the provider.
  gw = await startTestGateway(db.url, { JWT_KEYS: 'hp1:html-policy-test-key-0123456789abcdef0123' });
  base = `http://127.0.0.1:${gw.httpPort}`;
  for (const username of ['html-http', 'html-browser']) {
    expect((await api(gw, 'POST', '/v1/admin/accounts', { username, password: PASSWORD, role: 'customer' })).status).toBe(201);
  }
}, 120_000);
afterAll(async () => {
  await tb?.close();
  await gw?.close();
  await db?.drop();
});

/** The directives of a Content-Security-Policy header. */
function directives(csp: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const d of csp.split(';')) {
    const [name, ...values] = d.trim().split(/\s+/);
    if (name) out.set(name.toLowerCase(), values);
  }
  return out;
}

/** An HTML answer with a policy that forbids framing and allows no inline script but by hash. */
function expectPolicy(res: Response, what: string): Map<string, string[]> {
  expect(res.headers.get('content-type'), what).toMatch(/^text\/html/);
  const csp = res.headers.get('content-security-policy');
  expect(csp, `${what}: content-security-policy`).toBeTruthy();
  const d = directives(csp!);
  expect(d.get('frame-ancestors'), `${what}: ${csp}`).toEqual(["'none'"]);
  const scripts = d.get('script-src') ?? d.get('default-src') ?? [];
  expect(scripts, `${what}: ${csp}`).not.toContain("'unsafe-inline'");
  expect(scripts, `${what}: ${csp}`).not.toContain("'unsafe-eval'");
  expect(scripts, `${what}: ${csp}`).not.toContain('*');
  expect(d.has('default-src'), `${what}: ${csp}`).toBe(true);
  expect(res.headers.get('x-frame-options'), what).toBe('DENY');
  return d;
}

const get = (path: string, headers: Record<string, string> = {}) => fetch(new URL(path, base), { headers, redirect: 'manual' });

describe('HTML answers carry a policy', () => {
  it('/docs (Swagger UI), with and without the trailing slash', async () => {
    for (const path of ['/docs', '/docs/']) {
      const res = await get(path);
      expect(res.status, path).toBe(200);
      expect(await res.text()).toContain('swagger-ui');
      expectPolicy(res, path);
    }
  });

  it('the portal and the sign-in page', async () => {
    const portal = await get('/');
    expect(portal.status).toBe(200);
    expectPolicy(portal, 'portal /');
    const callback = await get('/portal/callback?code=x&state=y');
    expectPolicy(callback, 'portal /portal/callback');
    // The sign-in page the provider sends a browser to.
    const q = new URLSearchParams({ client_id: 'cardata-portal', response_type: 'code', redirect_uri: `${base}/portal/callback`, scope: 'openid cardata', code_challenge: createHash('sha256').update('v'.repeat(43)).digest('base64url'), code_challenge_method: 'S256' });
    const auth = await get(`/oidc/auth?${q.toString()}`);
    expect(auth.status).toBe(303);
    const cookie = auth.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const login = await get(auth.headers.get('location')!, { cookie });
    expect(login.status).toBe(200);
    expect(await login.text()).toContain('name="password"');
    expectPolicy(login, 'sign-in page');
  });

  it("the provider's error pages", async () => {
    for (const path of ['/oidc/auth?client_id=no-such-client&response_type=code&scope=openid', '/oidc/auth', '/oidc/session/end?id_token_hint=not-a-token', '/oidc/no-such-page']) {
      const res = await get(path, { accept: 'text/html' });
      expect(res.status, path).toBeGreaterThanOrEqual(400);
      const html = await res.text();
      if (!/^text\/html/.test(res.headers.get('content-type') ?? '')) continue;
      expect(html, path).toMatch(/<html/);
      expectPolicy(res, path);
    }
    // At least the first is a page (the unknown client cannot be redirected to).
    expectPolicy(await get('/oidc/auth?client_id=no-such-client&response_type=code&scope=openid'), 'error page');
  });

  it('the sign-out page (GET /oidc/session/end with the ID token as hint) and the signed-out page', async () => {
    const s = await signInWithCode(base, { username: 'html-http', password: PASSWORD, redirectUri: `${base}/portal/callback` });
    const q = new URLSearchParams({ client_id: 'cardata-portal', id_token_hint: s.idToken! });
    const page = await get(`/oidc/session/end?${q.toString()}`, { cookie: s.cookies });
    const html = await page.text();
    expect(page.status, html).toBe(200);
    expect(html).toContain('op.logoutForm');
    expectPolicy(page, 'sign-out page');
    const action = /<form id="op\.logoutForm" method="post" action="([^"]+)"/.exec(html)![1]!;
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)![1]!;
    const done = await fetch(new URL(action, base), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: s.cookies }, body: new URLSearchParams({ xsrf, logout: 'yes' }).toString(), redirect: 'manual' });
    await done.body?.cancel();
    expect(done.status).toBe(303);
    const success = await get(done.headers.get('location')!, { cookie: s.cookies });
    expect(await success.text()).toContain('Signed out');
    expectPolicy(success, 'signed-out page');
  });
});

declare global {
  interface Window {
    /** The page's policy violations, noted by watchViolations' init script. */
    __violations?: string[];
  }
}

/** Records the page's policy violations (the listener is injected by the driver, outside the page's policy). */
async function watchViolations(page: Page): Promise<() => Promise<string[]>> {
  const console: string[] = [];
  page.on('console', (m) => {
    if (/Content.Security.Policy|Refused to/i.test(m.text())) console.push(m.text());
  });
  await page.addInitScript(() => {
    const seen: string[] = (window.__violations = []);
    document.addEventListener('securitypolicyviolation', (e) => seen.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  return async () => [...console, ...(await page.evaluate(() => window.__violations ?? []).catch(() => []))];
}

describe('in Chromium, the policies break nothing', () => {
  beforeAll(async () => {
    tb = await launchBrowser();
  }, 60_000);

  it('/docs renders the API (Swagger UI) with no policy violation', async () => {
    const ctx = await tb.browser.newContext();
    const page = await ctx.newPage();
    const violations = await watchViolations(page);
    await page.goto(`${base}/docs`);
    await page.locator('.swagger-ui .info .title').filter({ hasText: 'cardata-gateway' }).waitFor({ timeout: 15_000 });
    await page.locator('.opblock-tag').first().waitFor({ timeout: 15_000 });
    expect(await page.locator('.opblock').count()).toBeGreaterThan(10);
    // Styles applied (the stylesheet was allowed): the top bar is not laid out as plain text.
    expect(await page.evaluate(() => getComputedStyle(document.querySelector('.swagger-ui .opblock')!).borderRadius)).not.toBe('0px');
    expect(await violations()).toEqual([]);
    await ctx.close();
  }, 60_000);

  it('a sign-in answered by form_post (the provider\'s inline auto-submit) and a sign-out run through with no violation', async () => {
    const ctx = await tb.browser.newContext();
    const page = await ctx.newPage();
    const violations = await watchViolations(page);
    const redirectUri = `${base}/portal/callback`;
    let posted: URLSearchParams | null = null;
    // The portal takes its code by query; here the form_post answer lands on it as a POST.
    await page.route(redirectUri, async (route) => {
      if (route.request().method() !== 'POST') return route.continue();
      posted = new URLSearchParams(route.request().postData() ?? '');
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'code received' });
    });
    const verifier = randomBytes(32).toString('base64url');
    const q = new URLSearchParams({
      client_id: 'cardata-portal',
      response_type: 'code',
      response_mode: 'form_post',
      redirect_uri: redirectUri,
      scope: 'openid cardata',
      state: 'st-1',
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    });
    await page.goto(`${base}/oidc/auth?${q.toString()}`);
    await page.fill('#username', 'html-browser');
    await page.fill('#password', PASSWORD);
    await page.click('#signin-submit');
    await expect.poll(() => posted, { timeout: 15_000 }).not.toBeNull();
    expect(posted!.get('state')).toBe('st-1');
    const code = posted!.get('code')!;
    expect(code).toBeTruthy();
    const tok = await fetch(`${base}/oidc/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: 'cardata-portal', code_verifier: verifier }).toString(),
    });
    const body = (await tok.json()) as { id_token: string };
    expect(tok.status).toBe(200);

    // Sign-out: the confirmation page, "yes", the signed-out page.
    await page.goto(`${base}/oidc/session/end?${new URLSearchParams({ client_id: 'cardata-portal', id_token_hint: body.id_token }).toString()}`);
    await page.click('button[name="logout"][value="yes"]');
    await page.getByRole('heading', { name: 'Signed out' }).waitFor({ timeout: 15_000 });
    expect(await violations()).toEqual([]);
    await ctx.close();
  }, 60_000);
});
