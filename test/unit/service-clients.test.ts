// The checks on a private_key_jwt client's keys and the shape of a service client as the
// embedded provider sees it (identity/service-clients.ts): pure, no provider, no database.
import { describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import { checkClientJwks, newServiceClientId, serviceClientMetadata, serviceClientSid, SERVICE_CLIENT_ID_PATTERN } from '../../identity/service-clients.ts';

const pub = async (alg: 'ES256' | 'RS256' | 'EdDSA') => exportJWK((await generateKeyPair(alg, { extractable: true })).publicKey);
const priv = async (alg: 'ES256') => exportJWK((await generateKeyPair(alg, { extractable: true })).privateKey);

describe('checkClientJwks', () => {
  it('accepts public EC, RSA (2048 bits and more) and OKP signing keys', async () => {
    expect(await checkClientJwks({ keys: [await pub('ES256')] })).toBeNull();
    expect(await checkClientJwks({ keys: [{ ...(await pub('RS256')), alg: 'PS256', use: 'sig', kid: 'a' }] })).toBeNull();
    expect(await checkClientJwks({ keys: [await pub('EdDSA'), await pub('ES256')] })).toBeNull();
  });

  it.each([
    ['no key set', null, 'must be a JWK Set'],
    ['keys not an array', { keys: {} }, 'must be a JWK Set'],
    ['no key', { keys: [] }, 'keys: must hold 1 to 5'],
    ['a string for a key', { keys: ['x'] }, 'keys[0]: must be a JWK object'],
    ['a symmetric key', { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }, 'keys[0].kty'],
    ['an encryption key', { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', use: 'enc' }] }, 'keys[0].use'],
    ['an HMAC alg', { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', alg: 'HS256' }] }, 'keys[0].alg'],
    ['a key that is no key', { keys: [{ kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' }] }, 'keys[0]: not a usable EC public key'],
  ])('refuses %s', async (_what, jwks, problem) => {
    expect(await checkClientJwks(jwks)).toContain(problem);
  });

  it('refuses private key material and short RSA keys, naming the key', async () => {
    expect(await checkClientJwks({ keys: [await pub('ES256'), await priv('ES256')] })).toBe('keys[1].d: private key material; register the public key only');
    // (jose makes no RSA key under 2048 bits: node:crypto does)
    const short = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    expect(await checkClientJwks({ keys: [short] })).toBe('keys[0].n: RSA keys must have at least 2048 bits');
    expect(await checkClientJwks({ keys: await Promise.all(Array.from({ length: 6 }, () => pub('ES256'))) })).toContain('1 to 5');
  });
});

describe('a service client at the provider', () => {
  it('ids are random, prefixed, and of the stored form; its tokens\' sid is no sign-in session id', () => {
    const a = newServiceClientId();
    expect(a).toMatch(/^svc_[A-Za-z0-9_-]{22}$/);
    expect(SERVICE_CLIENT_ID_PATTERN.test(a)).toBe(true);
    expect(newServiceClientId()).not.toBe(a);
    // oidc-provider's session ids are nanoids ([A-Za-z0-9_-]): a colon keeps the two apart.
    expect(serviceClientSid(a)).toBe(`client:${a}`);
  });

  it('metadata: client credentials only, the hash or the keys, the recipient and its role', () => {
    const base = { clientId: 'svc_x', recipientId: 'insurer-1', recipientRole: 'third_party', createdAt: new Date(0) };
    expect(serviceClientMetadata({ ...base, authMethod: 'client_secret_basic', secretHash: 'scrypt$h', jwks: null })).toEqual({
      client_id: 'svc_x',
      client_name: 'service client of insurer-1',
      token_endpoint_auth_method: 'client_secret_basic',
      client_secret: 'scrypt$h',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      cardata_recipient: 'insurer-1',
      cardata_recipient_role: 'third_party',
    });
    const keyed = serviceClientMetadata({ ...base, authMethod: 'private_key_jwt', secretHash: null, jwks: { keys: [{ kty: 'EC' }] } });
    expect(keyed).toMatchObject({ token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ kty: 'EC' }] } });
    expect(keyed).not.toHaveProperty('client_secret');
  });
});
