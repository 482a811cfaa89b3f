// What a log line may say of a request URL (api/log-redaction.ts): secrets replaced, the rest as sent.
import { describe, expect, it } from 'vitest';
import { redactUrl, scrubJwts } from '../../api/log-redaction.ts';

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';

describe('redactUrl', () => {
  it('replaces the values of secret parameters and keeps the rest readable', () => {
    expect(redactUrl(`/oidc/session/end?client_id=cardata-portal&id_token_hint=${JWT}&post_logout_redirect_uri=http%3A%2F%2Fx%2Fcb`)).toBe(
      '/oidc/session/end?client_id=cardata-portal&id_token_hint=[redacted]&post_logout_redirect_uri=http%3A%2F%2Fx%2Fcb',
    );
    expect(redactUrl('/portal/callback?code=abc123&state=s1&iss=http%3A%2F%2Fx')).toBe('/portal/callback?code=[redacted]&state=[redacted]&iss=http%3A%2F%2Fx');
    for (const name of ['token', 'refresh_token', 'access_token', 'client_secret', 'client_assertion', 'password', 'code_verifier', 'ID_TOKEN_HINT', 'id%5Ftoken%5Fhint']) {
      expect(redactUrl(`/x?${name}=opaque-secret-value&a=1`), name).toBe(`/x?${name}=[redacted]&a=1`);
    }
  });

  it('keeps what is not secret: a stream cursor, ranges, formats, PKCE challenges', () => {
    const url = '/v1/vehicles/WTEST/stream?after=0-123-4&from=2026-01-01T00%3A00%3A00Z&format=csv&code_challenge=abc&code_challenge_method=S256';
    expect(redactUrl(url)).toBe(url);
    expect(redactUrl('/healthz')).toBe('/healthz');
    expect(redactUrl('/x?flag&y=')).toBe('/x?flag&y=');
  });

  it('replaces anything JWT-shaped wherever it is', () => {
    expect(redactUrl(`/x?whatever=${JWT}&b=2`)).toBe('/x?whatever=[redacted]&b=2');
    expect(redactUrl(`/x/${JWT}/y`)).toBe('/x/[redacted]/y');
    expect(scrubJwts(`{"msg":"bad token ${JWT}"}`)).toBe('{"msg":"bad token [redacted]"}');
    expect(scrubJwts('no token here')).toBe('no token here');
  });
});
