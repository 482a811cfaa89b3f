// The portal's live stream (web/stream.js followStream, a browser module whose I/O is
// handed in) against a scripted server: how it reacts to each end of a stream, above all
// to the end of its access token: a fresh token and a resume from the end's cursor at once,
// every record once.
import { describe, expect, it } from 'vitest';

type Ev = { id: string | null; event: string; data: string };
type Mode = 'live' | 'retrying' | 'off';
type Result = 'ok' | 'ended' | 'failed';
interface StreamModule {
  BACKOFF_MS: number[];
  followStream(
    path: string,
    handlers: { onEvent: (ev: Ev) => void; onState?: (mode: Mode, status: number | undefined, resumed: boolean) => void },
    deps: {
      fetch: (url: string, init: RequestInit) => Promise<Response>;
      token: () => Promise<string | null>;
      refresh: (usedToken: string) => Promise<Result>;
      signedOut: () => void;
      sleep?: (ms: number) => Promise<void>;
    },
  ): () => void;
}
const load = async (): Promise<StreamModule> => (await import(new URL('../../web/stream.js', import.meta.url).href)) as StreamModule;

const rec = (seq: number) => `id: c${seq}\nevent: record\ndata: {"seq":${seq}}\n\n`;
const end = (reason: string, resumeFrom: string | null, id: string | null = resumeFrom) =>
  `${id ? `id: ${id}\n` : ''}event: end\ndata: ${JSON.stringify({ reason, resumeFrom })}\n\n`;

/** One answer of the scripted server: the SSE text (then closed, unless `open`), or a refusal. */
type Answer = { sse: string; open?: boolean } | { status: number; code: string };

/** A server answering the stream's connections in turn, and a session whose token refresh the test decides. */
function harness(answers: Answer[], refreshAnswers: Result[] = []) {
  const conns: { token: string | undefined; lastEventId: string | undefined }[] = [];
  const records: number[] = [];
  const ends: string[] = [];
  const states: string[] = [];
  const sleeps: number[] = [];
  const refreshes: string[] = [];
  let signedOut = 0;
  let n = 0;
  let token: string | null = 'at0';
  const deps = {
    fetch: (_url: string, init: RequestInit): Promise<Response> => {
      const h = init.headers as Record<string, string>;
      conns.push({ token: h['authorization'], lastEventId: h['last-event-id'] });
      const a = answers.shift() ?? { sse: '', open: true };
      if ('status' in a) return Promise.resolve(new Response(JSON.stringify({ status: a.status, code: a.code }), { status: a.status, headers: { 'content-type': 'application/problem+json' } }));
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new TextEncoder().encode(a.sse));
          if (!a.open) c.close();
          else init.signal?.addEventListener('abort', () => c.error(new Error('aborted')));
        },
      });
      return Promise.resolve(new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } }));
    },
    token: () => Promise.resolve(token),
    refresh: (used: string): Promise<Result> => {
      refreshes.push(used);
      const r = refreshAnswers.shift() ?? 'ok';
      if (r === 'ok') token = `at${++n}`;
      if (r === 'ended') token = null;
      return Promise.resolve(r);
    },
    signedOut: () => void signedOut++,
    sleep: (ms: number) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
  };
  return {
    deps,
    conns,
    records,
    ends,
    states,
    sleeps,
    refreshes,
    signedOut: () => signedOut,
    handlers: {
      onEvent: (ev: Ev) => {
        if (ev.event === 'record') records.push((JSON.parse(ev.data) as { seq: number }).seq);
        if (ev.event === 'end') ends.push((JSON.parse(ev.data) as { reason: string }).reason);
      },
      onState: (mode: Mode, status: number | undefined, resumed: boolean) => void states.push(`${mode}${status ? ` ${status}` : ''}${resumed ? ' resumed' : ''}`),
    },
  };
}

const poll = <T>(fn: () => T) => expect.poll(fn, { timeout: 2000, interval: 5 });

describe('portal live stream: ends and tokens', () => {
  it('token_expired: a fresh token and at once Last-Event-ID = resumeFrom; every record once, no visible drop', async () => {
    const { followStream } = await load();
    const t = harness([{ sse: rec(1) + rec(2) + end('token_expired', 'c2') }, { sse: rec(3) + end('token_expired', 'c3') }, { sse: rec(4), open: true }]);
    const close = followStream('/v1/vehicles/V/stream', t.handlers, t.deps);
    await poll(() => t.records).toEqual([1, 2, 3, 4]);
    close();
    expect(t.conns).toEqual([
      { token: 'Bearer at0', lastEventId: undefined },
      { token: 'Bearer at1', lastEventId: 'c2' },
      { token: 'Bearer at2', lastEventId: 'c3' },
    ]);
    expect(t.refreshes).toEqual(['at0', 'at1']);
    // Never "retrying" (the page would show polling), no backoff wait.
    expect(t.states).toEqual(['live 200', 'live 200 resumed', 'live 200 resumed']);
    expect(t.sleeps).toEqual([]);
    expect(t.signedOut()).toBe(0);
  });

  it('resumes from the end\'s resumeFrom, never from an older cursor', async () => {
    const { followStream } = await load();
    // An end without an id line (and one whose cursor is past the last record sent).
    const t = harness([{ sse: rec(1) + end('token_expired', 'c7', null) }, { sse: rec(8), open: true }]);
    const close = followStream('/s', t.handlers, t.deps);
    await poll(() => t.records).toEqual([1, 8]);
    close();
    expect(t.conns.map((c) => c.lastEventId)).toEqual([undefined, 'c7']);
  });

  it('token_revoked: one refresh, then resumed; revoked again at once: sign in', async () => {
    const { followStream } = await load();
    const t = harness([{ sse: rec(1) + end('token_revoked', 'c1') }, { sse: rec(2) + end('token_revoked', 'c2') }, { sse: end('token_revoked', 'c2') }]);
    followStream('/s', t.handlers, t.deps);
    await poll(() => t.signedOut()).toBe(1);
    // A record between two revocations: that refresh was good; none: the session itself is revoked.
    expect(t.records).toEqual([1, 2]);
    expect(t.refreshes).toEqual(['at0', 'at1']);
    expect(t.conns.map((c) => c.lastEventId)).toEqual([undefined, 'c1', 'c2']);
    expect(t.states).toEqual(['live 200', 'live 200 resumed', 'live 200 resumed', 'off 401']);
  });

  it('token_revoked or token_expired with a refused refresh (invalid_grant): sign in', async () => {
    const { followStream } = await load();
    for (const reason of ['token_revoked', 'token_expired']) {
      const t = harness([{ sse: rec(1) + end(reason, 'c1') }], ['ended']);
      followStream('/s', t.handlers, t.deps);
      await poll(() => t.states).toEqual(['live 200', 'off 401']);
      expect([reason, t.signedOut(), t.conns.length]).toEqual([reason, 1, 1]);
    }
  });

  it('token_expired while the provider does not answer: retried after a wait, from the same cursor', async () => {
    const { followStream, BACKOFF_MS } = await load();
    const t = harness([{ sse: rec(1) + end('token_expired', 'c1') }, { sse: rec(2), open: true }], ['failed']);
    const close = followStream('/s', t.handlers, t.deps);
    await poll(() => t.records).toEqual([1, 2]);
    close();
    expect(t.states).toEqual(['live 200', 'retrying', 'live 200 resumed']);
    expect(t.sleeps).toEqual([BACKOFF_MS[0]]);
    expect(t.conns.map((c) => c.lastEventId)).toEqual([undefined, 'c1']);
    expect(t.signedOut()).toBe(0);
  });

  it('other ends are handled as before: shown as a drop, reconnected after a wait from the last cursor', async () => {
    const { followStream, BACKOFF_MS } = await load();
    for (const reason of ['slow_consumer', 'ownership_ended', 'shutdown', 'error', 'revoked', 'expired', 'restricted']) {
      const t = harness([{ sse: rec(1) + end(reason, 'c1') }, { sse: rec(2), open: true }]);
      const close = followStream('/s', t.handlers, t.deps);
      await poll(() => t.records).toEqual([1, 2]);
      close();
      expect([reason, t.ends, t.states, t.sleeps, t.refreshes, t.conns.map((c) => c.lastEventId)]).toEqual([reason, [reason], ['live 200', 'retrying', 'live 200 resumed'], [BACKOFF_MS[0]], [], [undefined, 'c1']]);
    }
    // moved: no cursor to resume from; the old one is refused (410) and the stream starts live again.
    const t = harness([{ sse: rec(1) + end('moved', null) }, { status: 410, code: 'API_ERR_CURSOR_EXPIRED' }, { sse: rec(5), open: true }]);
    const close = followStream('/s', t.handlers, t.deps);
    await poll(() => t.records).toEqual([1, 5]);
    close();
    expect(t.conns.map((c) => c.lastEventId)).toEqual([undefined, 'c1', undefined]);
    expect(t.states.at(-1)).toBe('live 200');
  });

  it('a connection refused for an expired token: one refresh and again; refused again, or revoked: sign in', async () => {
    const { followStream } = await load();
    const t = harness([{ status: 401, code: 'API_ERR_TOKEN_EXPIRED' }, { sse: rec(1), open: true }]);
    const close = followStream('/s', t.handlers, t.deps);
    await poll(() => t.records).toEqual([1]);
    close();
    expect(t.conns.map((c) => c.token)).toEqual(['Bearer at0', 'Bearer at1']);
    expect(t.states).toEqual(['live 200']);

    const twice = harness([{ status: 401, code: 'API_ERR_TOKEN_EXPIRED' }, { status: 401, code: 'API_ERR_TOKEN_EXPIRED' }]);
    followStream('/s', twice.handlers, twice.deps);
    await poll(() => twice.states).toEqual(['off 401']);
    expect([twice.refreshes, twice.signedOut()]).toEqual([['at0'], 1]);

    const revoked = harness([{ status: 401, code: 'API_ERR_TOKEN_REVOKED' }]);
    followStream('/s', revoked.handlers, revoked.deps);
    await poll(() => revoked.states).toEqual(['off 401']);
    expect([revoked.refreshes, revoked.signedOut()]).toEqual([[], 1]);
  });
});
