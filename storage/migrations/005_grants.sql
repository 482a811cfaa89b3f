-- Owner-issued grants (EU Data Act (EU) 2023/2854 Art. 5: sharing with a third party of
-- the user's choice), their recipients, the events a receipt is built from, and the
-- check-in codes of workshop visits. Numbered 005: 004 is left to the sign-in work; the
-- migrator applies whatever is not yet applied, in name order, so a gap is fine.

-- Services an owner may share with: workshops and third parties, registered by the operator.
CREATE TABLE recipients (
  id          text PRIMARY KEY CHECK (id ~ '^[\x21-\x7e]{1,128}$'),
  role        text NOT NULL CHECK (role IN ('workshop', 'third_party')),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX recipients_by_name ON recipients (name, id);

-- A grant belongs to the ownership period it was made in: when that period ends (a
-- transfer) the grant has ended. Its status is never stored: revoked_at, expires_at and
-- the period's ended_at decide it (access/grants.ts grantStatus).
CREATE TABLE grants (
  id            uuid PRIMARY KEY,
  vin           text NOT NULL REFERENCES vehicles (vin) ON DELETE CASCADE,
  owner_id      text NOT NULL,
  period_id     bigint NOT NULL REFERENCES ownership_periods (id) ON DELETE CASCADE,
  recipient_id  text NOT NULL REFERENCES recipients (id),
  categories    text[] NOT NULL CHECK (cardinality(categories) > 0 AND categories <@ ARRAY['technical', 'consumption', 'location']),
  access        text[] NOT NULL CHECK (cardinality(access) > 0 AND access <@ ARRAY['history', 'stream']),
  purpose       text NOT NULL CHECK (length(purpose) BETWEEN 1 AND 1000),
  data_from     timestamptz NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  expires_at    timestamptz NOT NULL,
  revoked_at    timestamptz,
  -- 'owner': POST /v1/vehicles/{vin}/grants; 'checkin': a workshop redeemed a check-in code.
  origin        text NOT NULL CHECK (origin IN ('owner', 'checkin')),
  CHECK (expires_at > created_at)
);
CREATE INDEX grants_by_vehicle ON grants (vin, created_at);
CREATE INDEX grants_by_recipient ON grants (recipient_id, created_at) WHERE revoked_at IS NULL;

-- What happened to a grant, for its receipt (ISO/IEC TS 27560 "consent record" events).
-- Expiry and the end by transfer are facts of the grant and its period, not events here.
CREATE TABLE grant_events (
  id        bigserial PRIMARY KEY,
  grant_id  uuid NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
  at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  kind      text NOT NULL CHECK (kind IN ('given', 'withdrawn')),
  actor     text NOT NULL
);
CREATE INDEX grant_events_by_grant ON grant_events (grant_id, at);

-- Workshop visits: the owner makes a short-lived, single-use code and hands it over at
-- the counter; the workshop redeems it for a consumption grant lasting the visit. Only a
-- hash of the code is kept.
CREATE TABLE checkin_codes (
  code_hash     bytea PRIMARY KEY,
  vin           text NOT NULL REFERENCES vehicles (vin) ON DELETE CASCADE,
  owner_id      text NOT NULL,
  period_id     bigint NOT NULL REFERENCES ownership_periods (id) ON DELETE CASCADE,
  recipient_id  text REFERENCES recipients (id),
  visit_hours   integer NOT NULL CHECK (visit_hours > 0),
  data_from     timestamptz NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  expires_at    timestamptz NOT NULL,
  redeemed_at   timestamptz,
  grant_id      uuid REFERENCES grants (id) ON DELETE SET NULL
);
CREATE INDEX checkin_codes_by_vehicle ON checkin_codes (vin, created_at);

-- Disclosures name the owner they are filed with (the owner of the ownership period the
-- data belongs to: after a transfer that is not always the current one) and the grant a
-- read went through. Rows from before carry neither and are filed by their time.
ALTER TABLE disclosures ADD COLUMN owner_id text, ADD COLUMN grant_id uuid;
CREATE INDEX disclosures_by_owner ON disclosures (vin, owner_id, at);

-- A transfer ends every grant of the previous period: tell every listener (live streams
-- cut their recipients off), whichever process made the transfer.
CREATE FUNCTION grants_period_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL THEN
    PERFORM pg_notify('grant_changed', g.id::text) FROM grants g WHERE g.period_id = NEW.id AND g.revoked_at IS NULL;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER ownership_period_ended AFTER UPDATE OF ended_at ON ownership_periods
  FOR EACH ROW EXECUTE FUNCTION grants_period_ended();
