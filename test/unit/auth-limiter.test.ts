// gateway/auth-limiter.ts (createAuthLimiter): failed authentications per key within a
// sliding window, with an injected clock; bounded memory.
import { describe, expect, it } from 'vitest';
import { createAuthLimiter } from '../../gateway/auth-limiter.ts';

const T = 1_700_000_000_000;

describe('auth limiter', () => {
  it('allows maxFailures failed attempts, then refuses the key until the window has passed', () => {
    const l = createAuthLimiter({ maxFailures: 3, windowMs: 60_000 });
    for (let i = 0; i < 3; i++) {
      expect(l.allowed('10.0.0.1', T + i)).toBe(true);
      l.failed('10.0.0.1', T + i);
    }
    expect(l.allowed('10.0.0.1', T + 10)).toBe(false);
    expect(l.allowed('10.0.0.1', T + 59_999)).toBe(false);
    // The first failure leaves the window at T + 60 000: one more attempt is allowed.
    expect(l.allowed('10.0.0.1', T + 60_000)).toBe(true);
  });

  it('the window slides: failures age out one by one', () => {
    const l = createAuthLimiter({ maxFailures: 2, windowMs: 1000 });
    l.failed('k', T);
    l.failed('k', T + 500);
    expect(l.allowed('k', T + 999)).toBe(false);
    expect(l.allowed('k', T + 1000)).toBe(true);
    l.failed('k', T + 1000);
    expect(l.allowed('k', T + 1001)).toBe(false);
    expect(l.allowed('k', T + 1500)).toBe(true);
    expect(l.allowed('k', T + 2000)).toBe(true);
    expect(l.size()).toBe(0);
  });

  it('keys are independent: one address locked out does not lock out another, nor a VIN', () => {
    const l = createAuthLimiter({ maxFailures: 1, windowMs: 60_000 });
    l.failed('ip:10.0.0.1', T);
    expect(l.allowed('ip:10.0.0.1', T + 1)).toBe(false);
    expect(l.allowed('ip:10.0.0.2', T + 1)).toBe(true);
    expect(l.allowed('vin:WUNIT000000000001', T + 1)).toBe(true);
  });

  it('a success clears the key', () => {
    const l = createAuthLimiter({ maxFailures: 2, windowMs: 60_000 });
    l.failed('k', T);
    l.succeeded('k');
    l.failed('k', T + 1);
    expect(l.allowed('k', T + 2)).toBe(true);
    l.failed('k', T + 3);
    expect(l.allowed('k', T + 4)).toBe(false);
  });

  it('failures go on counting while locked out, but never more than twice the limit per key', () => {
    const l = createAuthLimiter({ maxFailures: 2, windowMs: 1000 });
    for (let i = 0; i < 100; i++) l.failed('k', T + i);
    // Only 4 remembered (T .. T+3), so the lock-out ends once the 3rd ages out, at
    // T+1002; had all 100 been kept, it would last until T+1098.
    expect(l.allowed('k', T + 1001)).toBe(false);
    expect(l.allowed('k', T + 1002)).toBe(true);
  });

  it('memory is bounded by maxKeys: the key seen longest ago is forgotten first', () => {
    const l = createAuthLimiter({ maxFailures: 1, windowMs: 60_000, maxKeys: 3 });
    for (const k of ['a', 'b', 'c', 'd', 'e']) l.failed(k, T);
    expect(l.size()).toBe(3);
    expect(l.allowed('a', T + 1)).toBe(true);
    expect(l.allowed('b', T + 1)).toBe(true);
    expect(['c', 'd', 'e'].map((k) => l.allowed(k, T + 1))).toEqual([false, false, false]);
  });
});
