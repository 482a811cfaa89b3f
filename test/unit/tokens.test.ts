// identity/tokens.ts: HS256 JWTs through jose, signed by the first key, verified by any listed
// key (by kid); expiry against an injected clock; tampering and "alg":"none" refused.
import { describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { createTokenService, parseKeys, randomKey, type SigningKey } from '../../identity/tokens.ts';

const SECRET_A = 'a'.repeat(32);
const SECRET_B = 'b'.repeat(40);
const KEY_OLD: SigningKey = { kid: 'old', secret: Buffer.from(SECRET_A) };
const KEY_NEW: SigningKey = { kid: 'new', secret: Buffer.from(SECRET_B) };
const T0 = 1_700_000_000_000;

const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const dec = (s: string) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as Record<string, unknown>;
const hs256 = (secret: Buffer, data: string) => createHmac('sha256', secret).update(data).digest('base64url');

function split(token: string): [string, string, string] {
  const p = token.split('.');
  expect(p).toHaveLength(3);
  return p as [string, string, string];
}

describe('sign / verify', () => {
  it('round-trips role, subject, jti and expiry; the header names HS256 and the signing kid', async () => {
    const svc = createTokenService([KEY_OLD], () => T0);
    const t = (await svc.sign({ role: 'workshop', subject: 'garage-7', ttlSeconds: 600 }));
    expect(t.expiresAt).toBe(T0 + 600_000);
    expect(typeof t.jti).toBe('string');
    const [h, b] = split(t.token);
    expect(dec(h)).toMatchObject({ alg: 'HS256', typ: 'JWT', kid: 'old' });
    expect(dec(b)).toMatchObject({ sub: 'garage-7', role: 'workshop', iat: T0 / 1000, exp: T0 / 1000 + 600, jti: t.jti });
    expect((await svc.verify(t.token))).toEqual({ ok: true, principal: { role: 'workshop', subject: 'garage-7', jti: t.jti, expiresAt: T0 + 600_000, issuer: 'cardata-gateway', issuedAt: T0, sessionId: null } });
  });

  it('gives every token a different jti', async () => {
    const svc = createTokenService([KEY_OLD], () => T0);
    const a = (await svc.sign({ role: 'customer', subject: 's', ttlSeconds: 60 }));
    const b = (await svc.sign({ role: 'customer', subject: 's', ttlSeconds: 60 }));
    expect(a.jti).not.toBe(b.jti);
    expect(a.token).not.toBe(b.token);
  });

  it('signs each role', async () => {
    const svc = createTokenService([KEY_OLD], () => T0);
    for (const role of ['customer', 'workshop', 'third_party', 'authority'] as const) {
      const v = (await svc.verify((await svc.sign({ role, subject: 'x', ttlSeconds: 60 })).token));
      expect(v.ok && v.principal.role).toBe(role);
    }
  });

  it('needs at least one key', async () => {
    expect(() => createTokenService([])).toThrow();
  });

  it('randomKey gives distinct valid keys of at least 32 bytes', async () => {
    const a = randomKey();
    const b = randomKey();
    expect(a.kid).not.toBe(b.kid);
    expect(a.secret.length).toBeGreaterThanOrEqual(32);
    expect(a.kid).toMatch(/^[A-Za-z0-9._-]{1,64}$/);
    const svc = createTokenService([a]);
    expect((await svc.verify((await svc.sign({ role: 'customer', subject: 'x', ttlSeconds: 60 })).token)).ok).toBe(true);
    // another random key does not verify it
    expect((await createTokenService([b]).verify((await svc.sign({ role: 'customer', subject: 'x', ttlSeconds: 60 })).token))).toEqual({ ok: false, error: 'TOKEN_UNKNOWN_KEY' });
  });
});

describe('expiry (injected clock)', () => {
  let now = T0;
  const svc = createTokenService([KEY_OLD], () => now);

  it('valid until the last millisecond before exp, expired from exp on', async () => {
    now = T0;
    const t = (await svc.sign({ role: 'customer', subject: 'c', ttlSeconds: 60 }));
    now = T0 + 59_999;
    expect((await svc.verify(t.token)).ok).toBe(true);
    now = T0 + 60_000;
    expect((await svc.verify(t.token))).toEqual({ ok: false, error: 'TOKEN_EXPIRED' });
    now = T0 + 10 * 86_400_000;
    expect((await svc.verify(t.token))).toEqual({ ok: false, error: 'TOKEN_EXPIRED' });
  });

  it('refuses a token issued more than a minute in the future; tolerates small skew', async () => {
    now = T0 + 120_000;
    const future = (await svc.sign({ role: 'customer', subject: 'c', ttlSeconds: 3600 }));
    now = T0 + 30_000;
    const skewed = (await svc.sign({ role: 'customer', subject: 'c', ttlSeconds: 3600 }));
    now = T0;
    expect((await svc.verify(future.token))).toEqual({ ok: false, error: 'TOKEN_NOT_YET_VALID' });
    expect((await svc.verify(skewed.token)).ok).toBe(true);
  });

  it('an expired token with a valid signature is expired, not unauthorized (the API maps it to API_ERR_TOKEN_EXPIRED)', async () => {
    now = T0 - 7200_000;
    const t = (await svc.sign({ role: 'authority', subject: 'kba', ttlSeconds: 3600 }));
    now = T0;
    const v = (await svc.verify(t.token));
    expect(v).toEqual({ ok: false, error: 'TOKEN_EXPIRED' });
  });
});

describe('key rotation', () => {
  it('a token signed by the old key verifies while the old key is still listed second; new tokens use the new key', async () => {
    const before = createTokenService([KEY_OLD], () => T0);
    const oldToken = (await before.sign({ role: 'customer', subject: 'c', ttlSeconds: 3600 })).token;
    const rotated = createTokenService([KEY_NEW, KEY_OLD], () => T0 + 1000);
    expect((await rotated.verify(oldToken)).ok).toBe(true);
    const newToken = (await rotated.sign({ role: 'customer', subject: 'c', ttlSeconds: 3600 })).token;
    expect(dec(split(newToken)[0]).kid).toBe('new');
    expect((await rotated.verify(newToken)).ok).toBe(true);
    // the not-yet-rotated instance does not know the new key
    expect((await before.verify(newToken))).toEqual({ ok: false, error: 'TOKEN_UNKNOWN_KEY' });
  });

  it('fails with TOKEN_UNKNOWN_KEY once the old key is removed', async () => {
    const before = createTokenService([KEY_OLD], () => T0);
    const oldToken = (await before.sign({ role: 'customer', subject: 'c', ttlSeconds: 3600 })).token;
    const after = createTokenService([KEY_NEW], () => T0 + 1000);
    expect((await after.verify(oldToken))).toEqual({ ok: false, error: 'TOKEN_UNKNOWN_KEY' });
  });

  it('works with keys from parseKeys in the rotation order of JWT_KEYS', async () => {
    const old = createTokenService(parseKeys(`k1:${SECRET_A}`), () => T0);
    const t = (await old.sign({ role: 'customer', subject: 'c', ttlSeconds: 3600 })).token;
    expect((await createTokenService(parseKeys(`k2:${SECRET_B},k1:${SECRET_A}`), () => T0).verify(t)).ok).toBe(true);
    expect((await createTokenService(parseKeys(`k2:${SECRET_B}`), () => T0).verify(t))).toEqual({ ok: false, error: 'TOKEN_UNKNOWN_KEY' });
  });

  it('the same kid with another secret does not verify (signature check, not only kid lookup)', async () => {
    const a = createTokenService([{ kid: 'k', secret: Buffer.from(SECRET_A) }], () => T0);
    const b = createTokenService([{ kid: 'k', secret: Buffer.from(SECRET_B) }], () => T0);
    expect((await b.verify((await a.sign({ role: 'customer', subject: 'c', ttlSeconds: 60 })).token))).toEqual({ ok: false, error: 'TOKEN_BAD_SIGNATURE' });
  });
});

// Signed once, before the suite is collected (signing is asynchronous).
const tamperSvc = createTokenService([KEY_OLD], () => T0);
const tamperGood = await tamperSvc.sign({ role: 'customer', subject: 'alice', ttlSeconds: 3600 });

describe('tampering', () => {
  const svc = tamperSvc;
  const good = tamperGood;
  const [h, b, s] = split(good.token);

  it('payload changed (subject, role, exp), old signature kept → TOKEN_BAD_SIGNATURE', async () => {
    const body = dec(b);
    for (const change of [{ sub: 'mallory' }, { role: 'authority' }, { exp: (body.exp as number) + 86_400 }]) {
      const forged = `${h}.${enc({ ...body, ...change })}.${s}`;
      expect((await svc.verify(forged)), JSON.stringify(change)).toEqual({ ok: false, error: 'TOKEN_BAD_SIGNATURE' });
    }
  });

  it('header changed (kid to another listed key) → refused', async () => {
    const two = createTokenService([KEY_OLD, KEY_NEW], () => T0);
    const forged = `${enc({ ...dec(h), kid: 'new' })}.${b}.${s}`;
    expect((await two.verify(forged))).toEqual({ ok: false, error: 'TOKEN_BAD_SIGNATURE' });
  });

  it('signature changed, truncated, extended, emptied or taken from another token → refused', async () => {
    const other = split((await svc.sign({ role: 'customer', subject: 'bob', ttlSeconds: 3600 })).token)[2];
    const flipFirst = (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    for (const sig of [flipFirst, s.slice(0, -1), s + 'AA', '', other, s.split('').reverse().join('')]) {
      const v = (await svc.verify(`${h}.${b}.${sig}`));
      expect(v.ok, sig).toBe(false);
    }
    expect((await svc.verify(`${h}.${b}.${flipFirst}`))).toEqual({ ok: false, error: 'TOKEN_BAD_SIGNATURE' });
  });

  it('every other spelling of the signature is refused (no non-canonical base64url accepted)', async () => {
    // A 32-byte HMAC is 43 base64url characters; the last one carries 2 unused bits.
    // Replacing it by a character differing only in those bits, or adding "=" padding,
    // changes the token but not the decoded bytes: such a token was not issued by us.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const accepted: string[] = [];
    for (const c of alphabet) {
      if (c === s.at(-1)) continue;
      const variant = s.slice(0, -1) + c;
      if ((await svc.verify(`${h}.${b}.${variant}`)).ok) accepted.push(variant);
    }
    for (const variant of [s + '=', s + '==']) if ((await svc.verify(`${h}.${b}.${variant}`)).ok) accepted.push(variant);
    expect(accepted).toEqual([]);
  });

  it('"alg":"none" is refused, with or without a signature, even with a known kid', async () => {
    const noneHead = enc({ alg: 'none', typ: 'JWT', kid: 'old' });
    expect((await svc.verify(`${noneHead}.${b}.`))).toEqual({ ok: false, error: 'TOKEN_ALGORITHM' });
    expect((await svc.verify(`${noneHead}.${b}.${s}`))).toEqual({ ok: false, error: 'TOKEN_ALGORITHM' });
    const noneHeadNoKid = enc({ alg: 'none', typ: 'JWT' });
    expect((await svc.verify(`${noneHeadNoKid}.${b}.`)).ok).toBe(false);
    expect((await svc.verify(`${noneHeadNoKid}.${b}`)).ok).toBe(false);
  });

  it('other algorithms are refused even when correctly "signed" with the secret', async () => {
    for (const alg of ['HS512', 'RS256', 'hs256', 'NONE', 'None']) {
      const head = enc({ alg, typ: 'JWT', kid: 'old' });
      const sig = hs256(KEY_OLD.secret, `${head}.${b}`);
      expect((await svc.verify(`${head}.${b}.${sig}`)), alg).toEqual({ ok: false, error: 'TOKEN_ALGORITHM' });
    }
  });

  it('unknown kid → TOKEN_UNKNOWN_KEY; missing kid → refused', async () => {
    const stranger = createTokenService([{ kid: 'stranger', secret: Buffer.from(SECRET_B) }], () => T0);
    expect((await svc.verify((await stranger.sign({ role: 'customer', subject: 'alice', ttlSeconds: 3600 })).token))).toEqual({ ok: false, error: 'TOKEN_UNKNOWN_KEY' });
    const head = enc({ alg: 'HS256', typ: 'JWT' });
    expect((await svc.verify(`${head}.${b}.${hs256(KEY_OLD.secret, `${head}.${b}`)}`)).ok).toBe(false);
  });

  it('a correctly signed token with a bad role or missing claims is refused', async () => {
    const body = dec(b);
    const cases: [Record<string, unknown>, string][] = [
      [{ ...body, role: 'admin' }, 'TOKEN_CLAIMS'],
      [{ ...body, sub: 42 }, 'TOKEN_CLAIMS'],
      [{ ...body, exp: String(body.exp) }, 'TOKEN_MALFORMED'],
      [{ ...body, jti: undefined }, 'TOKEN_CLAIMS'],
    ];
    for (const [c, error] of cases) {
      const bb = enc(c);
      const v = (await svc.verify(`${h}.${bb}.${hs256(KEY_OLD.secret, `${h}.${bb}`)}`));
      expect(v, JSON.stringify(c)).toEqual({ ok: false, error });
    }
  });

  it('garbage is malformed, never a crash', async () => {
    for (const t of ['', '.', '..', 'a.b', 'a.b.c.d', 'not a token', `${h}.${b}`, '%%%.%%%.%%%', `${'x'.repeat(5000)}.${b}.${s}`, `${enc([1])}.${b}.${s}`, `${enc(null)}.${b}.${s}`]) {
      const v = (await svc.verify(t));
      expect(v.ok, t.slice(0, 40)).toBe(false);
    }
    expect((await svc.verify('a.b'))).toEqual({ ok: false, error: 'TOKEN_MALFORMED' });
    expect((await svc.verify(`${enc(null)}.${b}.${s}`))).toEqual({ ok: false, error: 'TOKEN_MALFORMED' });
  });
});

describe('parseKeys', () => {
  it('parses "kid:secret[,kid:secret…]" in order, trimming around the parts; a secret may contain ":"', async () => {
    const keys = parseKeys(` k1 : ${SECRET_A},k2:${SECRET_B}:x`);
    expect(keys.map((k) => k.kid)).toEqual(['k1', 'k2']);
    expect(keys[0]!.secret.equals(Buffer.from(SECRET_A))).toBe(true);
    expect(keys[1]!.secret.toString()).toBe(`${SECRET_B}:x`);
  });

  it.each([
    ['empty', ''],
    ['no colon', `k1${SECRET_A}`],
    ['empty kid', `:${SECRET_A}`],
    ['secret too short', 'k1:' + 'a'.repeat(31)],
    ['empty secret', 'k1:'],
    ['bad kid characters', `k 1:${SECRET_A}`],
    ['kid with slash', `k/1:${SECRET_A}`],
    ['kid too long', `${'k'.repeat(65)}:${SECRET_A}`],
    ['trailing comma', `k1:${SECRET_A},`],
    ['second key short', `k1:${SECRET_A},k2:short`],
  ])('rejects %s', (_name, spec) => {
    expect(() => parseKeys(spec)).toThrow();
  });

  it('names the key whose secret is too short, never the secret', async () => {
    let msg = '';
    try {
      parseKeys(`k1:${SECRET_A},weak:tooshort-secret-value`);
    } catch (err) {
      msg = (err as Error).message;
    }
    expect(msg).toContain('weak');
    expect(msg).not.toContain('tooshort-secret-value');
  });

  it('refuses a duplicate key id, naming it and not its secrets; a list of distinct ids verifies tokens signed by any of its keys', async () => {
    // With two keys of the same kid, signing would use the first and verifying the last:
    // every token would fail. parseKeys refuses such a list.
    let msg: string | null = null;
    try {
      parseKeys(`k1:${SECRET_A},k1:${SECRET_B}`);
    } catch (err) {
      msg = (err as Error).message;
    }
    expect(msg, 'parseKeys accepted two keys with the id k1').toBe('key id k1 appears twice');
    expect(msg).not.toContain(SECRET_A);
    expect(msg).not.toContain(SECRET_B);
    // The same secrets under distinct ids: accepted, and the service verifies what each key signed.
    const keys = parseKeys(`k1:${SECRET_A},k2:${SECRET_B}`);
    expect(keys.map((k) => k.kid)).toEqual(['k1', 'k2']);
    const byK2 = createTokenService([keys[1]!], () => T0);
    const both = createTokenService(keys, () => T0);
    expect(await both.verify((await both.sign({ role: 'customer', subject: 'c', ttlSeconds: 60 })).token)).toMatchObject({ ok: true });
    expect(await both.verify((await byK2.sign({ role: 'customer', subject: 'c', ttlSeconds: 60 })).token)).toMatchObject({ ok: true });
  });
});
