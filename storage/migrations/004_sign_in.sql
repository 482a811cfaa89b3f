-- Sign-in: tokens the gateway mints (so they can be revoked), people's accounts of the
-- embedded OpenID Provider, that provider's stored artefacts and its signing keys.

-- Every token POST /v1/admin/tokens (or the CLI) minted. revoked_at set: refused from
-- then on, on every instance (NOTIFY api_token_revoked carries the jti).
CREATE TABLE api_tokens (
  jti         text PRIMARY KEY,
  role        text NOT NULL,
  subject     text NOT NULL,
  issued_at   timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL,
  revoked_at  timestamptz
);
CREATE INDEX api_tokens_revoked ON api_tokens (expires_at) WHERE revoked_at IS NOT NULL;

-- People who sign in at the embedded OpenID Provider. `subject` is who they are to the
-- API (the `sub` of their tokens, an owner id for a customer, a recipient id for a
-- workshop or third party); `username` is what they type.
CREATE TABLE accounts (
  username       text PRIMARY KEY,
  subject        text NOT NULL UNIQUE,
  role           text NOT NULL CHECK (role IN ('customer', 'workshop', 'third_party', 'authority')),
  password_hash  text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now()
);

-- oidc-provider's adapter storage: sessions, interactions, grants, codes, refresh tokens.
CREATE TABLE oidc_payloads (
  model        text NOT NULL,
  id           text NOT NULL,
  payload      jsonb NOT NULL,
  grant_id     text,
  user_code    text,
  uid          text,
  expires_at   timestamptz,
  consumed_at  timestamptz,
  PRIMARY KEY (model, id)
);
CREATE INDEX oidc_payloads_grant ON oidc_payloads (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX oidc_payloads_uid ON oidc_payloads (uid) WHERE uid IS NOT NULL;
CREATE INDEX oidc_payloads_user_code ON oidc_payloads (user_code) WHERE user_code IS NOT NULL;
CREATE INDEX oidc_payloads_expires ON oidc_payloads (expires_at) WHERE expires_at IS NOT NULL;

-- Key material made once and kept: the provider's signing key (private JWK) and its
-- cookie keys. The first process to start inserts; every other one reads the same row.
CREATE TABLE oidc_keys (
  name        text PRIMARY KEY,
  material    jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
