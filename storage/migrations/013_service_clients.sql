-- Service clients (README "For recipients"): a recipient signs in as itself at the embedded
-- OpenID Provider with OAuth 2.0 client credentials (RFC 6749 §4.4). The provider looks a
-- client up here on each request; a deleted client is gone, and the tokens it still holds
-- are refused through session_revocations (their sid names the client).
CREATE TABLE service_clients (
  client_id     text PRIMARY KEY CHECK (client_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  recipient_id  text NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
  auth_method   text NOT NULL CHECK (auth_method IN ('client_secret_basic', 'client_secret_post', 'private_key_jwt')),
  -- scrypt hash of the secret (shown once at creation), or the client's public keys.
  secret_hash   text,
  jwks          jsonb,
  created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  CHECK (CASE auth_method WHEN 'private_key_jwt' THEN jwks IS NOT NULL AND secret_hash IS NULL ELSE secret_hash IS NOT NULL AND jwks IS NULL END)
);
CREATE INDEX service_clients_by_recipient ON service_clients (recipient_id, created_at);
