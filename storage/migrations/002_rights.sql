-- Ownership periods, restriction, consent history details, erasure log, disclosures.

-- Who owned the vehicle when. A customer reads only data recorded inside their own
-- periods. [started_at, ended_at); ended_at NULL = the current owner.
CREATE TABLE ownership_periods (
  id          bigserial PRIMARY KEY,
  vin         text NOT NULL REFERENCES vehicles (vin) ON DELETE CASCADE,
  owner_id    text NOT NULL,
  started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  ended_at    timestamptz,
  CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE UNIQUE INDEX ownership_one_current ON ownership_periods (vin) WHERE ended_at IS NULL;
CREATE INDEX ownership_by_owner ON ownership_periods (owner_id, vin);
INSERT INTO ownership_periods (vin, owner_id, started_at) SELECT vin, owner_id, created_at FROM vehicles;

-- Privacy state events now also carry the restriction of processing (GDPR Art. 18) and
-- what the state was before, so the history reads without recomputation.
ALTER TABLE consent_events
  ADD COLUMN restricted boolean NOT NULL DEFAULT false,
  ADD COLUMN owner_id text,
  ADD COLUMN previous_location_allowed boolean,
  ADD COLUMN previous_co2_sharing_allowed boolean,
  ADD COLUMN previous_restricted boolean,
  ADD COLUMN erased_location_history boolean NOT NULL DEFAULT false;

-- Erasures (GDPR Art. 17): what was asked and how many rows went; never the data itself.
CREATE TABLE erasure_log (
  id             bigserial PRIMARY KEY,
  vin            text NOT NULL,
  owner_id       text NOT NULL,
  requested_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  category       text,
  period_from    timestamptz NOT NULL,
  period_to      timestamptz,
  rows_affected  jsonb NOT NULL
);

-- Every read of a vehicle's data by anyone but its owner (GDPR Art. 15(1)(c)).
CREATE TABLE disclosures (
  id           bigserial PRIMARY KEY,
  vin          text NOT NULL,
  at           timestamptz NOT NULL DEFAULT clock_timestamp(),
  role         text NOT NULL,
  subject      text NOT NULL,
  endpoint     text NOT NULL,
  categories   text[] NOT NULL,
  range_from   timestamptz,
  range_to     timestamptz
);
CREATE INDEX disclosures_vin_time ON disclosures (vin, at);
