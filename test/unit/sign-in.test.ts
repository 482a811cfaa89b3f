// Pure parts of sign-in with fakes that honour their ports: the issuer dispatch and deny
// list of identity/authenticate.ts, the in-memory revocation list of identity/revocations.ts.
import { describe, expect, it } from 'vitest';
import { createAuthenticator, type IssuerVerifier } from '../../identity/authenticate.ts';
import { createRevocationList, type RevocableToken, type RevocationSource } from '../../identity/revocations.ts';
import type { SessionRevocation, SubjectRevocation } from '../../proto/sign-in.ts';
import { hasCanonicalSignature, type VerifyResult } from '../../identity/verify.ts';

const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = (payload: Record<string, unknown>) => `${enc({ alg: 'ES256', typ: 'JWT' })}.${enc(payload)}.c2ln`;

function fakeIssuer(issuer: string, answer: (token: string) => VerifyResult): IssuerVerifier & { calls: string[] } {
  const calls: string[] = [];
  return {
    issuer,
    calls,
    async verify(t) {
      calls.push(t);
      return answer(t);
    },
  };
}
const okAs = (issuer: string, jti: string | null) => (): VerifyResult => ({ ok: true, principal: { role: 'customer', subject: 's', jti, expiresAt: Date.now() + 60_000, issuer, issuedAt: Date.now(), sessionId: null } });

describe('createAuthenticator', () => {
  it('hands a token to the verifier of its iss, and to no other', async () => {
    const a = fakeIssuer('https://a.example', okAs('https://a.example', 'j1'));
    const b = fakeIssuer('https://b.example', okAs('https://b.example', 'j2'));
    const auth = createAuthenticator({ verifiers: [a, b], isRevoked: () => false });
    const t = jwt({ iss: 'https://b.example' });
    expect((await auth.verify(t)).ok).toBe(true);
    expect(b.calls).toEqual([t]);
    expect(a.calls).toEqual([]);
  });

  it('an unknown, missing or non-string iss → TOKEN_ISSUER without asking any verifier; not a JWT → TOKEN_MALFORMED', async () => {
    const a = fakeIssuer('https://a.example', okAs('https://a.example', null));
    const auth = createAuthenticator({ verifiers: [a], isRevoked: () => false });
    for (const p of [{ iss: 'https://c.example' }, {}, { iss: 42 }, { iss: 'https://a.example/' }]) expect(await auth.verify(jwt(p))).toEqual({ ok: false, error: 'TOKEN_ISSUER' });
    for (const t of ['', 'abc', 'a.b', `${enc({ alg: 'none' })}.not-json.`]) expect(await auth.verify(t)).toEqual({ ok: false, error: 'TOKEN_MALFORMED' });
    expect(a.calls).toEqual([]);
  });

  it('a verified token whose jti is revoked → TOKEN_REVOKED; a refused token is not looked up; trust() adds an issuer', async () => {
    const asked: string[] = [];
    const a = fakeIssuer('https://a.example', okAs('https://a.example', 'gone'));
    const auth = createAuthenticator({ verifiers: [], isRevoked: (p) => (asked.push(p.jti ?? ''), p.jti === 'gone') });
    expect(await auth.verify(jwt({ iss: 'https://a.example' }))).toEqual({ ok: false, error: 'TOKEN_ISSUER' });
    auth.trust(a);
    expect(await auth.verify(jwt({ iss: 'https://a.example' }))).toEqual({ ok: false, error: 'TOKEN_REVOKED' });
    const expired = fakeIssuer('https://e.example', () => ({ ok: false, error: 'TOKEN_EXPIRED' }));
    auth.trust(expired);
    expect(await auth.verify(jwt({ iss: 'https://e.example' }))).toEqual({ ok: false, error: 'TOKEN_EXPIRED' });
    expect(asked).toEqual(['gone']);
  });
});

describe('createRevocationList', () => {
  const MINTED = 'cardata-gateway';
  const tok = (jti: string | null, o: Partial<RevocableToken> = {}): RevocableToken => ({ issuer: MINTED, subject: 's', jti, issuedAt: 1_000_000, sessionId: null, ...o });
  function source(rows: { jti: string; expiresAt: Date }[], subs: SubjectRevocation[] = [], sids: (SessionRevocation & { expiresAt: Date })[] = []): RevocationSource & { asked: string[] } {
    const asked: string[] = [];
    return {
      asked,
      revokedUnexpired: async () => rows,
      isRevoked: async (jti) => (asked.push(jti), rows.some((r) => r.jti === jti)),
      subjects: async () => subs,
      sessions: async () => sids,
      isPrincipalRevoked: async (t) => (asked.push(`p:${t.subject}`), subs.some((x) => x.subject === t.subject && (x.issuer === null || x.issuer === t.issuer) && (t.issuedAt === null || t.issuedAt < x.before.getTime()))),
    };
  }

  it('answers from memory once loaded; before that, and while untrusted, from the source', async () => {
    let now = 1_000_000;
    const src = source([{ jti: 'a', expiresAt: new Date(now + 60_000) }]);
    const list = createRevocationList(src, () => now);
    expect(await list.isRevoked(tok('a'), MINTED)).toBe(true); // not loaded: asks
    expect(src.asked).toEqual(['a']);
    await list.reload();
    expect(await list.isRevoked(tok('a'), MINTED)).toBe(true);
    expect(await list.isRevoked(tok('b'), MINTED)).toBe(false);
    expect(src.asked).toEqual(['a']);
    list.setTrusted(false);
    expect(await list.isRevoked(tok('b'), MINTED)).toBe(false);
    expect(src.asked).toEqual(['a', 'b', 'p:s']);
    list.setTrusted(true);
    // An announced revocation counts at once.
    list.add('c');
    expect(await list.isRevoked(tok('c'), MINTED)).toBe(true);
    // A jti counts for the gateway's own tokens only.
    expect(await list.isRevoked(tok('c', { issuer: 'https://idp.example' }), MINTED)).toBe(false);
    // Entries past their token's expiry are dropped (the token is refused as expired anyway).
    now += 120_000;
    expect(await list.isRevoked(tok('a'), MINTED)).toBe(false);
  });

  it('a revoked subject refuses its tokens issued before the revocation (or without iat), at its issuer or at every issuer; not later ones, not other subjects', async () => {
    const list = createRevocationList(source([], [{ issuer: 'https://idp.example', subject: 'alice', before: new Date(2_000_000) }]));
    await list.reload();
    const at = (issuer: string, subject: string, issuedAt: number | null) => list.isRevoked(tok(null, { issuer, subject, issuedAt }), MINTED);
    expect(await at('https://idp.example', 'alice', 1_999_000)).toBe(true);
    expect(await at('https://idp.example', 'alice', null)).toBe(true);
    expect(await at('https://idp.example', 'alice', 2_000_000)).toBe(false);
    // The same subject at another issuer is another person.
    expect(await at(MINTED, 'alice', 1_000_000)).toBe(false);
    expect(await at('https://idp.example', 'bob', 1_000_000)).toBe(false);
    list.apply({ kind: 'subject', issuer: null, subject: 'alice', before: new Date(3_000_000) });
    expect(await at(MINTED, 'alice', 2_500_000)).toBe(true);
    expect(await at('https://idp.example', 'alice', 2_500_000)).toBe(true);
    expect(await at(MINTED, 'alice', 3_000_000)).toBe(false);
  });

  it('an ended session refuses every token that carries its sid, at its issuer', async () => {
    const list = createRevocationList(source([], [], [{ issuer: 'https://idp.example', sid: 'S1', expiresAt: new Date(Date.now() + 60_000) }]));
    await list.reload();
    expect(await list.isRevoked(tok(null, { issuer: 'https://idp.example', sessionId: 'S1' }), MINTED)).toBe(true);
    expect(await list.isRevoked(tok(null, { issuer: 'https://idp.example', sessionId: 'S2' }), MINTED)).toBe(false);
    expect(await list.isRevoked(tok(null, { issuer: 'https://other.example', sessionId: 'S1' }), MINTED)).toBe(false);
    list.apply({ kind: 'session', issuer: 'https://idp.example', sid: 'S2' });
    expect(await list.isRevoked(tok(null, { issuer: 'https://idp.example', sessionId: 'S2' }), MINTED)).toBe(true);
  });

  it('a load that began before the feed went down again does not make the list trusted', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const src = source([]);
    const list = createRevocationList({ ...src, revokedUnexpired: async () => (await gate, []) });
    const loading = list.reload();
    list.setTrusted(false); // the feed dropped again while loading
    release();
    await loading;
    expect(list.trusted).toBe(false);
    expect(await list.isRevoked(tok('x'), MINTED)).toBe(false);
    expect(src.asked).toEqual(['x', 'p:s']); // asked the store
    await list.reload();
    expect(list.trusted).toBe(true);
  });

  it('an ended session is forgotten once its last token expired; isRevokedNow answers from memory only', async () => {
    let now = 1_000_000;
    const src = source([]);
    const list = createRevocationList(src, () => now);
    list.apply({ kind: 'session', issuer: 'https://idp.example', sid: 'S', expiresAt: new Date(now + 60_000) }, now + 60_000);
    const t = tok(null, { issuer: 'https://idp.example', sessionId: 'S' });
    expect(list.isRevokedNow(t, MINTED)).toBe(true);
    now += 61_000;
    expect(list.isRevokedNow(t, MINTED)).toBe(false);
    expect(src.asked).toEqual([]);
  });

  it('a revocation announced while a reload runs is kept', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const src = source([]);
    const list = createRevocationList({ ...src, revokedUnexpired: async () => (await gate, []) });
    const loading = list.reload();
    list.add('late');
    list.apply({ kind: 'session', issuer: 'https://idp.example', sid: 'late' });
    release();
    await loading;
    expect(await list.isRevoked(tok('late'), MINTED)).toBe(true);
    expect(await list.isRevoked(tok(null, { issuer: 'https://idp.example', sessionId: 'late' }), MINTED)).toBe(true);
  });
});

describe('hasCanonicalSignature', () => {
  it('accepts the one spelling of the bytes; refuses padding, unused bits and foreign characters', () => {
    const sig = Buffer.from('0123456789abcdef0123456789abcdef').toString('base64url'); // 43 chars, 2 unused bits
    expect(hasCanonicalSignature(`h.p.${sig}`)).toBe(true);
    expect(hasCanonicalSignature(`h.p.${sig}=`)).toBe(false);
    const last = sig.at(-1)!;
    const sibling = String.fromCharCode(last.charCodeAt(0) + 1);
    expect(hasCanonicalSignature(`h.p.${sig.slice(0, -1)}${sibling}`)).toBe(false);
    expect(hasCanonicalSignature(`h.p.${sig.slice(0, -1)}+`)).toBe(false);
    expect(hasCanonicalSignature('h.p.')).toBe(true); // empty: left to the verifier (alg none)
  });
});
