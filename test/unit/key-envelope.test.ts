// Keys at rest (identity/key-envelope.ts), the signing keys' ring (identity/signing-keys.ts),
// the embedded issuer's verifier that follows a rotation (app/signing-keys.ts) and the
// KEY_ENCRYPTION_KEY setting: the pure parts, without a database.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { KeyEnvelopeError, isEnvelope, kekId, openKey, parseKeyEncryptionKey, plainCodec, sealKey, sealingCodec } from '../../identity/key-envelope.ts';
import { asRing, kidsOf, liveKeys, retirementWindowS, rotatedRing, type SigningKeyRing } from '../../identity/signing-keys.ts';
import { refreshingVerifier } from '../../app/signing-keys.ts';
import { ConfigError, loadConfig } from '../../config/index.ts';
import type { IssuerVerifier } from '../../identity/authenticate.ts';
import type { VerifyResult } from '../../identity/verify.ts';

const PRIVATE_JWK = { kty: 'RSA', kid: 'rs256-old', alg: 'RS256', use: 'sig', n: 'nnn', e: 'AQAB', d: 'secret-exponent', p: 'ppp', q: 'qqq' };

describe('key envelope (AES-256-GCM)', () => {
  const key = randomBytes(32);

  it('seals a private JWK so that nothing of it shows, and opens it again', () => {
    const env = sealKey(key, 'signing-rs256', PRIVATE_JWK);
    expect(env).toMatchObject({ enc: 'A256GCM', kid: kekId(key) });
    const stored = JSON.stringify(env);
    expect(stored).not.toContain('secret-exponent');
    expect(stored).not.toContain('"d"');
    expect(isEnvelope(env)).toBe(true);
    expect(openKey(key, 'signing-rs256', env)).toEqual(PRIVATE_JWK);
  });

  it('uses a fresh IV each time', () => {
    const a = sealKey(key, 'cookie-keys', ['k']);
    const b = sealKey(key, 'cookie-keys', ['k']);
    expect(a.iv).not.toBe(b.iv);
    expect(a.ct).not.toBe(b.ct);
  });

  it('a wrong key is named as such, not as corrupt data', () => {
    const env = sealKey(key, 'signing-rs256', PRIVATE_JWK);
    const other = randomBytes(32);
    expect(() => openKey(other, 'signing-rs256', env)).toThrow(KeyEnvelopeError);
    expect(() => openKey(other, 'signing-rs256', env)).toThrow(/KEY_ENCRYPTION_KEY is not the key the stored OpenID Provider keys were encrypted with/);
  });

  it('an envelope moved to another row, or altered, does not open', () => {
    const env = sealKey(key, 'signing-rs256', PRIVATE_JWK);
    expect(() => openKey(key, 'cookie-keys', env)).toThrow(/does not decrypt/);
    const ct = Buffer.from(env.ct, 'base64url');
    ct[0]! ^= 1;
    expect(() => openKey(key, 'signing-rs256', { ...env, ct: ct.toString('base64url') })).toThrow(/does not decrypt/);
    expect(() => openKey(key, 'signing-rs256', { ...env, enc: 'A128GCM' })).toThrow(/A128GCM/);
  });

  it('tells plain rows of an earlier version (a JWK, a list of cookie keys) from envelopes', () => {
    expect(isEnvelope(PRIVATE_JWK)).toBe(false);
    expect(isEnvelope(['cookie'])).toBe(false);
    expect(isEnvelope(null)).toBe(false);
    const codec = sealingCodec(key);
    expect(codec.open('signing-rs256', PRIVATE_JWK)).toEqual(PRIVATE_JWK);
    expect(codec.isSealed(codec.seal('cookie-keys', ['c']))).toBe(true);
  });

  it('without a key, plain rows read as before and a sealed row says the key is missing', () => {
    expect(plainCodec.open('cookie-keys', ['c'])).toEqual(['c']);
    expect(plainCodec.seal('cookie-keys', ['c'])).toEqual(['c']);
    expect(() => plainCodec.open('cookie-keys', sealKey(key, 'cookie-keys', ['c']))).toThrow(/encrypted, and KEY_ENCRYPTION_KEY is not set/);
  });

  it('parses 32 bytes of base64 or base64url, and refuses anything else with how to make one', () => {
    const b64 = key.toString('base64');
    expect(parseKeyEncryptionKey(b64).equals(key)).toBe(true);
    expect(parseKeyEncryptionKey(`${key.toString('base64url')}\n`).equals(key)).toBe(true);
    for (const bad of ['', 'short', randomBytes(16).toString('base64'), randomBytes(33).toString('base64'), '!'.repeat(44)]) {
      expect(() => parseKeyEncryptionKey(bad)).toThrow(/openssl rand -base64 32/);
    }
  });
});

describe('signing key ring', () => {
  const W = retirementWindowS(900);
  const jwk = (kid: string) => ({ ...PRIVATE_JWK, kid });

  it('the retirement window covers the longest token a key signed (ID tokens: an hour) and the clock tolerance', () => {
    expect(retirementWindowS(900)).toBe(3660);
    expect(retirementWindowS(7200)).toBe(7260);
  });

  it('reads the single JWK of an earlier version as a ring of one', () => {
    expect(asRing(PRIVATE_JWK)).toEqual({ keys: [{ jwk: PRIVATE_JWK, createdAt: 0, retiredAt: null }] });
    expect(() => asRing({ nonsense: true })).toThrow(/neither a key ring nor a JWK/);
  });

  it('a rotation puts the new key first (it signs) and keeps the old one verifying for the window, then drops it', () => {
    const r1 = rotatedRing(asRing(jwk('a')), jwk('b'), 1000, W);
    expect(kidsOf(r1.keys)).toEqual(['b', 'a']);
    expect(r1.keys[0]!.retiredAt).toBeNull();
    expect(r1.keys[1]!.retiredAt).toBe(1000);
    expect(kidsOf(liveKeys(r1, 1000 + W - 1, W))).toEqual(['b', 'a']);
    expect(kidsOf(liveKeys(r1, 1000 + W, W))).toEqual(['b']);
    // A second rotation keeps the first replaced key's own retirement time.
    const r2 = rotatedRing(r1, jwk('c'), 2000, W);
    expect(r2.keys.map((k) => [k.jwk.kid, k.retiredAt])).toEqual([
      ['c', null],
      ['b', 2000],
      ['a', 1000],
    ]);
    // Past a's window, a rotation drops it from the store too.
    const r3 = rotatedRing(r2, jwk('d'), 1000 + W + 1, W);
    expect(kidsOf(r3.keys)).toEqual(['d', 'c', 'b']);
  });

  it('the signing key is never dropped, whatever its age', () => {
    const ring: SigningKeyRing = { keys: [{ jwk: jwk('only'), createdAt: 0, retiredAt: null }] };
    expect(kidsOf(liveKeys(ring, 10 ** 10, W))).toEqual(['only']);
  });
});

describe('the embedded issuer verifier across a rotation', () => {
  const ok: VerifyResult = { ok: true, principal: { role: 'customer', subject: 's', jti: null, expiresAt: 0, issuer: 'i', issuedAt: null, sessionId: null } as never };
  const unknown: VerifyResult = { ok: false, error: 'TOKEN_UNKNOWN_KEY' };

  it('a token naming a key not known here reads the keys again once, and is checked again when they changed', async () => {
    let known = ['a'];
    const made: number[] = [];
    const make = (): IssuerVerifier => {
      const kids = [...known];
      made.push(kids.length);
      return { issuer: 'i', verify: async (t) => (kids.includes(t) ? ok : unknown) };
    };
    let syncs = 0;
    const v = refreshingVerifier(make, async () => {
      syncs++;
      known = ['b', 'a'];
      v.reset();
      return true;
    });
    expect(await v.verify('a')).toEqual(ok);
    expect(await v.verify('b')).toEqual(ok);
    expect(syncs).toBe(1);
    expect(made).toEqual([1, 2]);
  });

  it('made-up key ids cost at most one read of the keys per interval', async () => {
    let syncs = 0;
    const v = refreshingVerifier(
      () => ({ issuer: 'i', verify: async () => unknown }),
      async () => {
        syncs++;
        return false;
      },
      60_000,
    );
    for (let i = 0; i < 20; i++) expect(await v.verify(`x${i}`)).toEqual(unknown);
    expect(syncs).toBe(1);
  });
});

describe('KEY_ENCRYPTION_KEY setting', () => {
  const key = randomBytes(32).toString('base64');

  it('takes 32 bytes of base64', () => {
    expect(loadConfig({ KEY_ENCRYPTION_KEY: key }).keyEncryptionKey).toBe(key);
    expect(loadConfig({}).keyEncryptionKey).toBeUndefined();
  });

  it('refuses another length with a clear error that does not show the value', () => {
    const bad = randomBytes(16).toString('base64');
    let err: unknown;
    try {
      loadConfig({ KEY_ENCRYPTION_KEY: bad });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/KEY_ENCRYPTION_KEY=\(hidden\): must be 32 random bytes in base64; make one with: openssl rand -base64 32/);
    expect((err as Error).message).not.toContain(bad);
  });

  it('is required with NODE_ENV=production when the embedded provider runs', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/KEY_ENCRYPTION_KEY: required with NODE_ENV=production.*openssl rand -base64 32/);
    expect(() => loadConfig({ NODE_ENV: 'production', KEY_ENCRYPTION_KEY: key })).not.toThrow();
    // No embedded provider, no keys of its own to protect.
    expect(() => loadConfig({ NODE_ENV: 'production', OIDC_ISSUER: 'https://idp.example' })).not.toThrow();
    expect(() => loadConfig({ NODE_ENV: 'development' })).not.toThrow();
  });
});
