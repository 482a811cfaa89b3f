-- Revocations beyond single minted tokens (README "Sign-in", "Sessions and revocation"):
-- every token of a subject issued before a moment (an admin's revocation, a deleted
-- account), and every token of one sign-in session (sign-out). Read into every instance's
-- memory at start and announced on api_token_revoked; asked directly while that feed is down.

-- issuer '' = the subject at every trusted issuer.
CREATE TABLE subject_revocations (
  issuer          text NOT NULL,
  subject         text NOT NULL,
  revoked_before  timestamptz NOT NULL,
  PRIMARY KEY (issuer, subject)
);

-- A session's tokens expire at the latest with the session: the row may go after that.
CREATE TABLE session_revocations (
  issuer      text NOT NULL,
  sid         text NOT NULL,
  revoked_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (issuer, sid)
);
CREATE INDEX session_revocations_expires ON session_revocations (expires_at);
