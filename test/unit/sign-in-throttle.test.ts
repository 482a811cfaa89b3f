// The sign-in throttle (identity/sign-in-throttle.ts) and the password checks' queue
// (identity/secrets.ts createPasswordVerifier): pure counting with the time passed in.
import { describe, expect, it } from 'vitest';
import { createSignInThrottle, delayFor, FIRST_DELAY_MS, FREE_FAILURES, type ThrottleDecision } from '../../identity/sign-in-throttle.ts';
import { addressGroup as sourceGroup } from '../../identity/address.ts';
import { createPasswordVerifier, hashPassword, PasswordChecksBusy } from '../../identity/secrets.ts';

const WINDOW = 60_000;
const opts = { perAccountMax: 5, perSourceMax: 12, windowMs: WINDOW, delayMaxMs: 2000 };

function ok(d: ThrottleDecision) {
  if (!d.ok) throw new Error(`refused until ${d.retryAt} (${d.scope})`);
  return d;
}
/** One attempt with the given outcome; its decision. */
function attempt(t: ReturnType<typeof createSignInThrottle>, account: string, source: string, now: number, outcome: 'success' | 'failure' | 'error' = 'failure'): ThrottleDecision {
  const d = t.begin(account, source, now);
  if (d.ok) d.attempt.settle(outcome, now);
  return d;
}

describe('sign-in throttle', () => {
  it('refuses an (account, source) at the limit until its oldest failure leaves the window', () => {
    const t = createSignInThrottle(opts);
    for (let i = 0; i < 5; i++) expect(attempt(t, 'alice', '192.0.2.1', 1000 + i).ok).toBe(true);
    const d = t.begin('alice', '192.0.2.1', 2000);
    expect(d).toEqual({ ok: false, retryAt: 1000 + WINDOW, scope: 'account' });
    // One ms before: still refused; at it, one attempt is back.
    expect(t.begin('alice', '192.0.2.1', 1000 + WINDOW - 1).ok).toBe(false);
    expect(attempt(t, 'alice', '192.0.2.1', 1000 + WINDOW).ok).toBe(true);
    expect(t.begin('alice', '192.0.2.1', 1000 + WINDOW)).toMatchObject({ ok: false, retryAt: 1001 + WINDOW });
  });

  it('does not lock the owner out: another source, and another account from this source, still go', () => {
    const t = createSignInThrottle(opts);
    for (let i = 0; i < 5; i++) attempt(t, 'alice', '192.0.2.1', 1000);
    expect(t.begin('alice', '192.0.2.1', 1001).ok).toBe(false);
    expect(ok(t.begin('alice', '198.51.100.7', 1001)).delayMs).toBe(0);
    expect(t.begin('bob', '192.0.2.1', 1001).ok).toBe(true);
  });

  it('counts a source across accounts: at its limit every account is refused from there (scope source)', () => {
    const t = createSignInThrottle(opts);
    for (let i = 0; i < 12; i++) expect(attempt(t, `user${i}`, '192.0.2.1', 1000 + i).ok).toBe(true);
    expect(t.begin('someone-else', '192.0.2.1', 1100)).toEqual({ ok: false, retryAt: 1000 + WINDOW, scope: 'source' });
    expect(t.begin('someone-else', '192.0.2.2', 1100).ok).toBe(true);
  });

  it('a success resets the (account, source) count only, not the source count', () => {
    const t = createSignInThrottle(opts);
    for (let i = 0; i < 4; i++) attempt(t, 'mallory', '192.0.2.1', 1000);
    attempt(t, 'mallory', '192.0.2.1', 1000, 'success');
    // The pair starts again from zero: five more failures before refusal…
    for (let i = 0; i < 5; i++) expect(attempt(t, 'mallory', '192.0.2.1', 1001).ok).toBe(true);
    expect(t.begin('mallory', '192.0.2.1', 1002)).toMatchObject({ ok: false, scope: 'account' });
    // …but the source kept all nine failures: three more (any account) and it is full.
    for (let i = 0; i < 3; i++) expect(attempt(t, `x${i}`, '192.0.2.1', 1002).ok).toBe(true);
    expect(t.begin('victim', '192.0.2.1', 1003)).toMatchObject({ ok: false, scope: 'source' });
  });

  it('an attempt that ends in error (queue full, database down) counts nothing', () => {
    const t = createSignInThrottle(opts);
    for (let i = 0; i < 20; i++) expect(attempt(t, 'alice', '192.0.2.1', 1000, 'error').ok).toBe(true);
    expect(t.size()).toBe(0);
  });

  it('counts attempts in flight: 50 concurrent guesses get no more checks than the limit', () => {
    const t = createSignInThrottle(opts);
    const decisions = Array.from({ length: 50 }, () => t.begin('alice', '192.0.2.1', 1000));
    const admitted = decisions.filter((d) => d.ok);
    expect(admitted).toHaveLength(5);
    // Refused while the five are in flight: retry when they would leave the window if they all failed.
    expect(decisions[5]).toEqual({ ok: false, retryAt: 1000 + WINDOW, scope: 'account' });
    for (const d of admitted) d.attempt.settle('failure', 1200);
    expect(t.begin('alice', '192.0.2.1', 1300)).toEqual({ ok: false, retryAt: 1200 + WINDOW, scope: 'account' });
    // settle twice counts once.
    admitted[0]!.attempt.settle('failure', 1300);
    expect(t.begin('alice', '192.0.2.1', 1200 + WINDOW).ok).toBe(true);
  });

  it('escalates the wait: none for the first failures, then doubling up to the maximum', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 30].map((n) => delayFor(n, 2000))).toEqual([0, 0, 0, 250, 500, 1000, 2000, 2000, 2000]);
    expect(delayFor(10, 0)).toBe(0);
    expect(FREE_FAILURES).toBe(3);
    expect(FIRST_DELAY_MS).toBe(250);
    const t = createSignInThrottle({ ...opts, perAccountMax: 10, perSourceMax: 100 });
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) delays.push(ok(attempt(t, 'alice', '192.0.2.1', 1000)).delayMs);
    expect(delays).toEqual([0, 0, 0, 250, 500, 1000, 2000, 2000, 2000, 2000]);
    // A fresh pair from a source with many failures also waits (the source's count scaled to the account's limit).
    const u = createSignInThrottle({ ...opts, perAccountMax: 10, perSourceMax: 100 });
    for (let i = 0; i < 50; i++) attempt(u, `user${i}`, '192.0.2.9', 1000);
    expect(ok(u.begin('new-user', '192.0.2.9', 1001)).delayMs).toBe(delayFor(5, 2000));
  });

  it('groups IPv6 sources by /64 and IPv4-mapped addresses as IPv4', () => {
    expect(sourceGroup('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(sourceGroup('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(sourceGroup('2001:0db8:0001:0002:0:0:0:9')).toBe('2001:db8:1:2::/64');
    expect(sourceGroup('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(sourceGroup('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(sourceGroup(undefined)).toBe('unknown');
    const t = createSignInThrottle(opts);
    for (let i = 0; i < 5; i++) attempt(t, 'alice', `2001:db8:1:2::${(i + 1).toString(16)}`, 1000);
    expect(t.begin('alice', '2001:db8:1:2:abcd::42', 1001)).toMatchObject({ ok: false, scope: 'account' });
    expect(t.begin('alice', '2001:db8:1:3::1', 1001).ok).toBe(true);
  });

  it('keeps bounded memory: at most maxKeys keys per map, the least recently used forgotten', () => {
    const t = createSignInThrottle({ ...opts, maxKeys: 100 });
    for (let i = 0; i < 1000; i++) attempt(t, `user${i}`, `10.0.${i >> 8}.${i & 255}`, 1000);
    expect(t.size()).toBeLessThanOrEqual(200);
    // Expired keys are dropped when touched: an old failure does not count after the window.
    const u = createSignInThrottle(opts);
    for (let i = 0; i < 5; i++) attempt(u, 'alice', '192.0.2.1', 1000);
    expect(u.begin('alice', '192.0.2.1', 1000 + WINDOW).ok).toBe(true);
  });
});

describe('password checks queue', () => {
  it('runs at most `concurrency` checks, queues `maxWaiting`, and refuses more at once', async () => {
    const stored = await hashPassword('correct horse battery');
    const v = createPasswordVerifier({ concurrency: 1, maxWaiting: 2 });
    const checks = [v.verify('wrong-1', stored), v.verify('correct horse battery', stored), v.verify('wrong-2', null)];
    expect(v.running()).toBe(1);
    expect(v.waiting()).toBe(2);
    await expect(v.verify('x', stored)).rejects.toBeInstanceOf(PasswordChecksBusy);
    expect(await Promise.all(checks)).toEqual([false, true, false]);
    expect(v.running()).toBe(0);
    expect(v.waiting()).toBe(0);
  });
});
