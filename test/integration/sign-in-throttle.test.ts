// Issue 23, finding 3: password guessing at the embedded provider's sign-in form, through
// the real gateway (HTTP sign-in pages, real MQTT vehicles), all traffic to 127.0.0.1.
// 1. Failures are counted per (account, source) and per source (IPv6 by /64): slowed,
//    then refused with 429 and a page saying why and until when; a success resets only
//    the (account, source) count; the owner signs in from elsewhere meanwhile. Sources
//    are told apart with X-Forwarded-For (HTTP_TRUST_PROXY=127.0.0.1).
// 2. Password hashing has its own bounded queue (and low-priority threads, not libuv's
//    pool): with 50 concurrent wrong-password sign-ins from one address, vehicles'
//    CONNECT → CONNACK p99 stays under 100 ms. Before, with every check straight on the
//    pool, the same measurement gave p50 ~9.6 s and half the connections timed out (10 s).
//    Needs a machine not saturated by other work: with both cores of a 2-core machine busy
//    elsewhere, vehicles' p99 is over 100 ms with no sign-in at all.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { api, provision, startTestGateway, testVin } from '../helpers/gateway.ts';
import { TEST_REDIRECT_URI } from '../helpers/oidc.ts';
import type { RunningGateway } from '../../app/gateway.ts';

const base = (g: RunningGateway) => `http://127.0.0.1:${g.httpPort}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One browser: a cookie jar and, optionally, the address a trusted proxy says it has. */
class Browser {
  private readonly cookies = new Map<string, string>();
  private readonly verifier = randomBytes(32).toString('base64url');
  action = '';
  constructor(
    private readonly gw: RunningGateway,
    private readonly forwardedFor?: string,
  ) {}

  async go(url: string, init: RequestInit = {}): Promise<Response> {
    const headers: Record<string, string> = { ...(init.headers as Record<string, string>), cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
    if (this.forwardedFor) headers['x-forwarded-for'] = this.forwardedFor;
    const res = await fetch(new URL(url, base(this.gw)), { ...init, redirect: 'manual', headers });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair!.indexOf('=');
      const v = pair!.slice(i + 1).trim();
      if (v === '' || /expires=Thu, 01 Jan 1970/i.test(c)) this.cookies.delete(pair!.slice(0, i).trim());
      else this.cookies.set(pair!.slice(0, i).trim(), v);
    }
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

async function account(gw: RunningGateway, username: string, password: string): Promise<void> {
  const r = await api(gw, 'POST', '/v1/admin/accounts', { username, password, role: 'customer', subject: `subj-${username}` });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
}

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('sign-in throttle (finding 3: guessing is bounded, the owner is not locked out)', () => {
  let gw: RunningGateway;
  const PASSWORD = 'owners-real-password-0123';
  beforeAll(async () => {
    gw = await startTestGateway(db.url, {
      OIDC_PORTAL_REDIRECT_URIS: TEST_REDIRECT_URI,
      HTTP_TRUST_PROXY: '127.0.0.1',
      SIGN_IN_FAILURES_PER_ACCOUNT_MAX: '10',
      SIGN_IN_FAILURES_PER_SOURCE_MAX: '20',
      SIGN_IN_FAILURE_WINDOW_MS: '600000',
      SIGN_IN_DELAY_MAX_MS: '600',
    });
    await account(gw, 'owner', PASSWORD);
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('30 wrong passwords on one interaction: slowed, then 429 with a page saying why and until when; the right one is refused from there, accepted from elsewhere', async () => {
    const attacker = new Browser(gw, '203.0.113.5');
    await attacker.open();
    const results: { status: number; ms: number; html: string; retryAfter: string | null }[] = [];
    for (let i = 0; i < 30; i++) {
      const t0 = performance.now();
      const r = await attacker.login('owner', `guess-${i}`);
      results.push({ status: r.status, ms: performance.now() - t0, html: r.html, retryAfter: r.headers.get('retry-after') });
    }
    console.log(`[sign-in throttle] 30 wrong passwords: statuses ${results.map((r) => r.status).join(' ')}; ms ${results.map((r) => Math.round(r.ms)).join(' ')}`);
    // The first ten are checked (401, the form again), the other twenty refused unchecked.
    expect(results.slice(0, 10).map((r) => r.status)).toEqual(Array(10).fill(401));
    expect(results.slice(10).map((r) => r.status)).toEqual(Array(20).fill(429));
    // Slowed: from the 4th failure on each attempt waits (250, 500, then 600 ms) before its check.
    for (const i of [5, 6, 7, 8, 9]) expect(results[i]!.ms, `attempt ${i + 1}`).toBeGreaterThanOrEqual(590);
    // The page says why and until when; Retry-After agrees with it.
    const refused = results[10]!;
    expect(refused.html).toContain('Too many failed sign-ins');
    expect(refused.html).toContain('too many failed sign-ins to this account from your network');
    const until = Date.parse(/<time datetime="([^"]+)">/.exec(refused.html)![1]!);
    const retryAfterS = Number(refused.retryAfter);
    expect(retryAfterS).toBeGreaterThan(500);
    expect(retryAfterS).toBeLessThanOrEqual(600);
    expect(Math.abs(until - (Date.now() + retryAfterS * 1000))).toBeLessThan(30_000);

    // The right password from the same source: refused too, unchecked.
    const right = await attacker.login('owner', PASSWORD);
    expect(right.status).toBe(429);
    expect(right.location).toBeNull();
    // In the person's language (the form's lang field).
    const nl = await attacker.login('owner', PASSWORD, { lang: 'nl' });
    expect(nl.status).toBe(429);
    expect(nl.headers.get('content-language')).toBe('nl');
    expect(nl.html).toContain('Te veel mislukte inlogpogingen');

    // The owner, from their own network, signs in to the same account at once.
    const owner = new Browser(gw, '198.51.100.9');
    await owner.open();
    const t0 = performance.now();
    const ok = await owner.login('owner', PASSWORD);
    expect(ok.status, ok.html.slice(0, 300)).toBe(303);
    expect(await owner.code(ok.location!)).toMatch(/.+/);
    console.log(`[sign-in throttle] owner from another source: signed in in ${Math.round(performance.now() - t0)} ms`);
  }, 90_000);

  it('IPv6 sources in one /64 share a count; the next /64 does not', async () => {
    await account(gw, 'owner6', PASSWORD);
    const a = new Browser(gw, '2001:db8:77:1::1');
    const b = new Browser(gw, '2001:db8:77:1:ffff:ffff:ffff:fffe');
    await a.open();
    await b.open();
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await (i % 2 ? b : a).login('owner6', `guess-${i}`)).status);
    expect(statuses).toEqual(Array(10).fill(401));
    const third = new Browser(gw, '2001:db8:77:1:1234::42');
    await third.open();
    expect((await third.login('owner6', PASSWORD)).status).toBe(429);
    const other = new Browser(gw, '2001:db8:77:2::1');
    await other.open();
    expect((await other.login('owner6', PASSWORD)).status).toBe(303);
  }, 90_000);

  it('a source guessing across accounts is refused at its own limit (counted while in flight); a success resets only the (account, source) count', async () => {
    const src = '192.0.2.77';
    // A guesser with an account of their own: a success must not clear the source's count.
    await account(gw, 'guesser', PASSWORD);
    const g = new Browser(gw, src);
    await g.open();
    for (let i = 0; i < 4; i++) expect((await g.login('guesser', `typo-${i}`)).status).toBe(401);
    expect((await g.login('guesser', PASSWORD)).status).toBe(303);
    // 30 concurrent guesses at 30 accounts: 16 more fill the source's 20; the rest are refused at once.
    const browsers = await Promise.all(
      Array.from({ length: 30 }, async () => {
        const x = new Browser(gw, src);
        await x.open();
        return x;
      }),
    );
    const rs = await Promise.all(browsers.map((x, i) => x.login(`spray-${i}`, 'password123')));
    const count = (s: number) => rs.filter((r) => r.status === s).length;
    expect([count(401), count(429)]).toEqual([16, 14]);
    const refused = rs.find((r) => r.status === 429)!;
    expect(refused.html).toContain('too many failed sign-ins from your network');
    // Now every account is refused from there (the owner's included), and not elsewhere.
    const again = new Browser(gw, src);
    await again.open();
    expect((await again.login('owner6', PASSWORD)).status).toBe(429);
    const elsewhere = new Browser(gw, '192.0.2.78');
    await elsewhere.open();
    expect((await elsewhere.login('spray-0', 'password123')).status).toBe(401);
  }, 90_000);
});

describe('password checks in a queue of their own (finding 3: guessing slows the vehicles)', () => {
  const VEHICLES = 20;
  const ATTACKERS = 50;
  const MEASURE_MS = 10_000;
  let gw: RunningGateway;
  let fleet: { vin: string; secret: string }[];
  beforeAll(async () => {
    gw = await startTestGateway(db.url, {
      OIDC_PORTAL_REDIRECT_URIS: TEST_REDIRECT_URI,
      // The throttle off: every guess reaches the password checks (the throttle is tested above).
      SIGN_IN_FAILURES_PER_ACCOUNT_MAX: '10000',
      SIGN_IN_FAILURES_PER_SOURCE_MAX: '1000000',
      SIGN_IN_DELAY_MAX_MS: '0',
      // All 50 wait their turn (none refused with 503): 50 sign-ins really run concurrently.
      SIGN_IN_HASH_QUEUE_MAX: '64',
    });
    await account(gw, 'victim', 'victims-password-0123456');
    fleet = await Promise.all(Array.from({ length: VEHICLES }, () => provision(gw, testVin())));
  });
  afterAll(async () => {
    await gw?.close();
  });

  /** Connection opened (TCP, then CONNECT) → CONNACK received, ms, of one connection (then closed). */
  async function connectOnce(v: { vin: string; secret: string }): Promise<number> {
    const sent = performance.now();
    const client = mqtt.connect(`mqtt://127.0.0.1:${gw.mqttPort}`, { clientId: v.vin, username: v.vin, password: v.secret, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000, clean: true });
    try {
      return await new Promise<number>((resolve, reject) => {
        client.on('packetreceive', (p) => {
          if (p.cmd === 'connack') resolve(performance.now() - sent);
        });
        client.on('error', reject);
        client.on('close', () => reject(new Error('closed before CONNACK')));
      });
    } finally {
      await client.endAsync();
    }
  }

  /** Every vehicle connects, disconnects, waits 0.5-1.5 s, again, for `ms`; the CONNACK times (a failed connection: its time to fail, counted in `failed`). */
  async function vehicles(ms: number): Promise<number[] & { failed: number }> {
    const out = Object.assign([] as number[], { failed: 0 });
    const until = performance.now() + ms;
    await Promise.all(
      fleet.map(async (v, i) => {
        await sleep((i * 1000) / VEHICLES);
        while (performance.now() < until) {
          const t0 = performance.now();
          out.push(
            await connectOnce(v).catch(() => {
              out.failed++;
              return performance.now() - t0;
            }),
          );
          await sleep(500 + Math.random() * 1000);
        }
      }),
    );
    return out;
  }

  const pct = (xs: number[], p: number) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
  };
  const summary = (xs: number[] & { failed: number }) => `n ${xs.length} failed ${xs.failed} p50 ${pct(xs, 50).toFixed(1)} p99 ${pct(xs, 99).toFixed(1)} max ${Math.max(...xs).toFixed(1)} ms`;

  it(`with ${ATTACKERS} concurrent wrong-password sign-ins from one address, vehicles' CONNECT → CONNACK p99 < 100 ms`, async () => {
    const quiet = await vehicles(3000);

    // 50 attackers from 127.0.0.1, each on its own interaction, each posting a wrong password again as soon as answered.
    const stop = new AbortController();
    const statuses = new Map<number, number>();
    const attackers = Array.from({ length: ATTACKERS }, async (_, i) => {
      const b = new Browser(gw);
      await b.open();
      while (!stop.signal.aborted) {
        const r = await b.login('victim', `wrong-${i}-${Math.random()}`, {}, stop.signal).catch(() => null);
        if (r) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      }
    });
    // The queue is full of password checks.
    await sleep(1500);
    const checkedBefore = statuses.get(401) ?? 0;
    const loaded = await vehicles(MEASURE_MS);
    stop.abort();
    await Promise.all(attackers);
    const checked = (statuses.get(401) ?? 0) - checkedBefore;
    console.log(
      `[sign-in queue] vehicles' CONNECT→CONNACK quiet: ${summary(quiet)}; ` +
        `during ${ATTACKERS} concurrent wrong-password sign-ins: ${summary(loaded)}; sign-in answers ${JSON.stringify(Object.fromEntries(statuses))} (${checked} wrong passwords checked while measured)`,
    );
    // The attack was real: passwords were checked throughout, none refused for want of room.
    expect(checked).toBeGreaterThanOrEqual(10);
    expect(statuses.get(503) ?? 0).toBe(0);
    expect(loaded.length).toBeGreaterThanOrEqual(VEHICLES * 5);
    expect(quiet.failed + loaded.failed).toBe(0);
    expect(pct(loaded, 99)).toBeLessThan(100);
    // Then the queue drains: a person signs in.
    const person = new Browser(gw);
    await person.open();
    const t0 = performance.now();
    let status = 0;
    for (let i = 0; i < 120 && status !== 303; i++) {
      status = (await person.login('victim', 'victims-password-0123456')).status;
      if (status !== 303) await sleep(250);
    }
    expect(status).toBe(303);
    console.log(`[sign-in queue] after the attack, the right password accepted in ${Math.round(performance.now() - t0)} ms (the queue draining)`);
  }, 120_000);
});
