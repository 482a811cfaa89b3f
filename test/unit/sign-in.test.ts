// Pure parts of sign-in with fakes that honour their ports: the issuer dispatch and deny
// list of identity/authenticate.ts, the in-memory revocation list of identity/revocations.ts.
import { describe, expect, it } from 'vitest';
import { createAuthenticator, type IssuerVerifier } from '../../identity/authenticate.ts';
import { createRevocationList, type RevocationSource } from '../../identity/revocations.ts';
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
const okAs = (issuer: string, jti: string | null) => (): VerifyResult => ({ ok: true, principal: { role: 'customer', subject: 's', jti, expiresAt: Date.now() + 60_000, issuer } });

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
    const auth = createAuthenticator({ verifiers: [], isRevoked: (jti) => (asked.push(jti), jti === 'gone') });
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
  function source(rows: { jti: string; expiresAt: Date }[]): RevocationSource & { asked: string[] } {
    const asked: string[] = [];
    return {
      asked,
      revokedUnexpired: async () => rows,
      isRevoked: async (jti) => (asked.push(jti), rows.some((r) => r.jti === jti)),
    };
  }

  it('answers from memory once loaded; before that, and while untrusted, from the source', async () => {
    let now = 1_000_000;
    const src = source([{ jti: 'a', expiresAt: new Date(now + 60_000) }]);
    const list = createRevocationList(src, () => now);
    expect(await list.isRevoked('a')).toBe(true); // not loaded: asks
    expect(src.asked).toEqual(['a']);
    await list.reload();
    expect(await list.isRevoked('a')).toBe(true);
    expect(await list.isRevoked('b')).toBe(false);
    expect(src.asked).toEqual(['a']);
    list.setTrusted(false);
    expect(await list.isRevoked('b')).toBe(false);
    expect(src.asked).toEqual(['a', 'b']);
    list.setTrusted(true);
    // An announced revocation counts at once.
    list.add('c');
    expect(await list.isRevoked('c')).toBe(true);
    // Entries past their token's expiry are dropped (the token is refused as expired anyway).
    now += 120_000;
    expect(await list.isRevoked('a')).toBe(false);
  });

  it('a revocation announced while a reload runs is kept', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const list = createRevocationList({ revokedUnexpired: async () => (await gate, []), isRevoked: async () => false });
    const loading = list.reload();
    list.add('late');
    release();
    await loading;
    expect(await list.isRevoked('late')).toBe(true);
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
