// Issue 23, finding 3: password guessing at the embedded provider's sign-in form, through
// the real gateway (HTTP sign-in pages, real MQTT vehicles), all traffic to 127.0.0.1.
// 1. Failures are counted per (account, source) and per source (IPv6 by /64): slowed,
//    then refused with 429 and a page saying why and until when; a success resets only
//    the (account, source) count; the owner signs in from elsewhere meanwhile. Sources
//    are told apart with X-Forwarded-For (HTTP_TRUST_PROXY=127.0.0.1).
// 2. Password hashing has its own bounded queue: test/solo/sign-in-latency.test.ts measures
//    what that keeps for the vehicles (a latency figure, run with the machine to itself).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { TEST_REDIRECT_URI } from '../helpers/oidc.ts';
import { Browser, account } from '../helpers/sign-in-browser.ts';
import type { RunningGateway } from '../../app/gateway.ts';


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
