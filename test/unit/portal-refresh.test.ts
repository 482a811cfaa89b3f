// The portal's refresh of its session (web/refresh.js, a browser module without I/O): when
// a refresh is planned, one at a time however many callers ask, what a failure and the end
// of the session do, and what a stream's end event asks for.
import { describe, expect, it } from 'vitest';

interface Session {
  accessToken: string;
  refreshToken?: string | null;
  idToken: string | null;
  expiresAt: number;
  refreshAt?: number;
  subject: string | null;
  role?: 'customer' | 'recipient';
}
type Result = 'ok' | 'ended' | 'failed';
interface Refresher {
  refresh(usedToken?: string): Promise<Result>;
  fresh(): Promise<Session | null>;
  schedule(): void;
  stop(): void;
  inflight(): Promise<Result> | null;
}
interface RefreshModule {
  REFRESH_AT: number;
  RETRY_MS: number[];
  sessionFrom(tok: { access_token: string; refresh_token?: unknown; id_token?: unknown; expires_in?: unknown }, prev: Session | null, now: number, subject: string | null): Session;
  refreshTime(s: Session): number | null;
  createRefresher(deps: {
    read: () => Session | null;
    exchange: (s: Session) => Promise<Result>;
    onEnded: () => void;
    now?: () => number;
    setTimer?: (fn: () => void, ms: number) => unknown;
    clearTimer?: (t: unknown) => void;
  }): Refresher;
  endReaction(data: string, revokedJustBefore: boolean): { action: 'refresh' | 'sign-in' | 'reconnect'; reason: string | null; resumeFrom: string | null };
}
const load = async (): Promise<RefreshModule> => (await import(new URL('../../web/refresh.js', import.meta.url).href)) as RefreshModule;

/** A clock and timers the test moves by hand. */
function fakeTime(start = 1_000_000) {
  let now = start;
  let next = 1;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => now,
    setTimer: (fn: () => void, ms: number) => {
      const id = next++;
      timers.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimer: (t: unknown) => void timers.delete(t as number),
    /** When the one pending timer fires, or null. */
    pending: () => [...timers.values()].map((t) => t.at),
    /** Moves the clock to `to`, firing the timers due on the way. */
    advance(to: number) {
      for (;;) {
        const due = [...timers.entries()].filter(([, t]) => t.at <= to).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = to;
    },
  };
}

const flush = () => new Promise((r) => setTimeout(r, 0));

/** A token endpoint stand-in: each call rotates the refresh token, answered when the test says. */
function fakeProvider(time: ReturnType<typeof fakeTime>, ttlS = 10) {
  let store: Session | null = null;
  let n = 0;
  const calls: string[] = [];
  const waiting: (() => void)[] = [];
  let answer: Result = 'ok';
  let hold = false;
  return {
    calls,
    read: () => store,
    set: (s: Session | null) => void (store = s),
    answerWith: (r: Result) => void (answer = r),
    holdAnswers: (h: boolean) => void (hold = h),
    release: () => waiting.splice(0).forEach((f) => f()),
    async exchange(s: Session, sessionFrom: RefreshModule['sessionFrom']): Promise<Result> {
      calls.push(s.refreshToken!);
      if (hold) await new Promise<void>((r) => waiting.push(r));
      if (answer !== 'ok') return answer;
      n++;
      store = sessionFrom({ access_token: `at${n}`, refresh_token: `rt${n}`, expires_in: ttlS }, s, time.now(), s.subject);
      return 'ok';
    },
  };
}

describe('portal session refresh', () => {
  it('builds the session from a token response, keeping what a refresh does not resend', async () => {
    const { sessionFrom, refreshTime, REFRESH_AT } = await load();
    const s0 = sessionFrom({ access_token: 'a0', refresh_token: 'r0', id_token: 'i0', expires_in: 900 }, null, 1000, 'sub-1');
    expect(s0).toEqual({ accessToken: 'a0', refreshToken: 'r0', idToken: 'i0', expiresAt: 1000 + 900_000, refreshAt: 1000 + 900_000 * REFRESH_AT, subject: 'sub-1' });
    expect(REFRESH_AT).toBe(0.8);
    const s1 = sessionFrom({ access_token: 'a1', refresh_token: 'r1', expires_in: 5 }, { ...s0, role: 'customer' }, 2000, 'other');
    // The ID token (for sign-out), the subject and the role stay; the rotated refresh token replaces the old one.
    expect(s1).toEqual({ accessToken: 'a1', refreshToken: 'r1', idToken: 'i0', expiresAt: 7000, refreshAt: 6000, subject: 'sub-1', role: 'customer' });
    expect(refreshTime(s1)).toBe(6000);
    // Signed in with an API token: nothing to refresh with.
    expect(refreshTime({ accessToken: 'x', idToken: null, expiresAt: 5, subject: null })).toBeNull();
  });

  it('refreshes at 80 % of the lifetime, then again for each new token', async () => {
    const { createRefresher, sessionFrom } = await load();
    const time = fakeTime();
    const p = fakeProvider(time, 10);
    p.set(sessionFrom({ access_token: 'at0', refresh_token: 'rt0', expires_in: 10 }, null, time.now(), 's'));
    let ended = 0;
    const r = createRefresher({ read: p.read, exchange: (s) => p.exchange(s, sessionFrom), onEnded: () => ended++, now: time.now, setTimer: time.setTimer, clearTimer: time.clearTimer });
    r.schedule();
    expect(time.pending()).toEqual([1_000_000 + 8000]);
    time.advance(1_000_000 + 7999);
    expect(p.calls).toEqual([]);
    time.advance(1_000_000 + 8000);
    await flush();
    expect(p.calls).toEqual(['rt0']);
    expect(p.read()!.accessToken).toBe('at1');
    // The next one is planned from the new token's lifetime.
    expect(time.pending()).toEqual([1_000_000 + 16_000]);
    time.advance(1_000_000 + 16_000);
    await flush();
    expect(p.calls).toEqual(['rt0', 'rt1']);
    expect(ended).toBe(0);
  });

  it('runs one refresh at a time: concurrent callers wait for the one in flight', async () => {
    const { createRefresher, sessionFrom } = await load();
    const time = fakeTime();
    const p = fakeProvider(time);
    p.set(sessionFrom({ access_token: 'at0', refresh_token: 'rt0', expires_in: 10 }, null, time.now(), 's'));
    const r = createRefresher({ read: p.read, exchange: (s) => p.exchange(s, sessionFrom), onEnded: () => {}, now: time.now, setTimer: time.setTimer, clearTimer: time.clearTimer });
    p.holdAnswers(true);
    const all = [r.refresh('at0'), r.refresh('at0'), r.refresh(), r.fresh().then((s) => s?.accessToken)];
    expect(r.inflight()).not.toBeNull();
    await flush();
    expect(p.calls).toEqual(['rt0']);
    p.release();
    // fresh(): not due yet, it answered with the token it had.
    expect(await Promise.all(all)).toEqual(['ok', 'ok', 'ok', 'at0']);
    expect(p.calls).toEqual(['rt0']);
    expect(r.inflight()).toBeNull();
    // A call refused with the old token after the refresh: the new one is there, no second refresh.
    expect(await r.refresh('at0')).toBe('ok');
    expect(p.calls).toEqual(['rt0']);
    // Refused with the current one: refreshed again (a new call, the rotated token).
    p.holdAnswers(false);
    expect(await r.refresh('at1')).toBe('ok');
    expect(p.calls).toEqual(['rt0', 'rt1']);
  });

  it('fresh(): refreshes first when due, and keeps a token it has while a refresh gets no answer', async () => {
    const { createRefresher, sessionFrom, RETRY_MS } = await load();
    const time = fakeTime();
    const p = fakeProvider(time);
    p.set(sessionFrom({ access_token: 'at0', refresh_token: 'rt0', expires_in: 10 }, null, time.now(), 's'));
    const r = createRefresher({ read: p.read, exchange: (s) => p.exchange(s, sessionFrom), onEnded: () => {}, now: time.now, setTimer: time.setTimer, clearTimer: time.clearTimer });
    // Due (the background tab's timer never fired): refreshed before it is used.
    time.advance(1_000_000 + 8500);
    expect((await r.fresh())?.accessToken).toBe('at1');
    // Due again, the provider does not answer: the token it has, while it lasts; retried soon, then less often.
    p.answerWith('failed');
    time.advance(1_000_000 + 8500 + 8100);
    await flush();
    expect(p.calls).toEqual(['rt0', 'rt1']);
    expect(time.pending()).toEqual([time.now() + RETRY_MS[0]!]);
    expect((await r.fresh())?.accessToken).toBe('at1');
    await flush();
    expect(p.calls).toEqual(['rt0', 'rt1', 'rt1']);
    expect(time.pending()).toEqual([time.now() + RETRY_MS[1]!]);
    // Expired meanwhile and still no answer: no token to use.
    time.advance(1_000_000 + 8500 + 10_100);
    await flush();
    expect(await r.fresh()).toBeNull();
    // The provider is back: the retry refreshes it.
    p.answerWith('ok');
    const at = time.pending()[0]!;
    time.advance(at);
    await flush();
    await flush();
    expect(p.read()!.accessToken).toBe('at2');
  });

  it('a refused refresh (invalid_grant) ends the session once, and plans nothing more', async () => {
    const { createRefresher, sessionFrom } = await load();
    const time = fakeTime();
    const p = fakeProvider(time);
    p.set(sessionFrom({ access_token: 'at0', refresh_token: 'rt0', expires_in: 10 }, null, time.now(), 's'));
    let ended = 0;
    const r = createRefresher({ read: p.read, exchange: (s) => p.exchange(s, sessionFrom), onEnded: () => ended++, now: time.now, setTimer: time.setTimer, clearTimer: time.clearTimer });
    r.schedule();
    p.answerWith('ended');
    p.holdAnswers(true);
    const a = r.refresh('at0');
    const b = r.refresh('at0');
    p.release();
    expect(await Promise.all([a, b])).toEqual(['ended', 'ended']);
    await flush();
    expect(ended).toBe(1);
    expect(time.pending()).toEqual([]);
    // Nothing to refresh with (signed in with an API token, or signed out): over at once.
    p.set({ accessToken: 'x', idToken: null, expiresAt: time.now() + 1000, subject: null });
    expect(await r.refresh('x')).toBe('ended');
    expect(ended).toBe(2);
    expect(p.calls).toEqual(['rt0']);
  });

  it('says what each end of a stream asks for', async () => {
    const { endReaction } = await load();
    const end = (reason: string, resumeFrom: string | null = 'c9') => JSON.stringify({ reason, resumeFrom });
    expect(endReaction(end('token_expired'), false)).toEqual({ action: 'refresh', reason: 'token_expired', resumeFrom: 'c9' });
    // Even right after a revocation: an expiry is no revocation.
    expect(endReaction(end('token_expired'), true).action).toBe('refresh');
    // Revoked: one refresh (only that access token may be); revoked again at once: sign in.
    expect(endReaction(end('token_revoked'), false)).toEqual({ action: 'refresh', reason: 'token_revoked', resumeFrom: 'c9' });
    expect(endReaction(end('token_revoked'), true).action).toBe('sign-in');
    // Every other reason: reconnected as after a drop, as before.
    for (const reason of ['slow_consumer', 'ownership_ended', 'revoked', 'expired', 'restricted', 'shutdown', 'moved', 'error', 'something_new']) {
      expect([reason, endReaction(end(reason), false).action]).toEqual([reason, 'reconnect']);
    }
    expect(endReaction(end('moved', null), false)).toEqual({ action: 'reconnect', reason: 'moved', resumeFrom: null });
    expect(endReaction('not json', false)).toEqual({ action: 'reconnect', reason: null, resumeFrom: null });
  });
});
