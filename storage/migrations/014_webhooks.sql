-- Webhooks of recipients (issue 25, docs/webhooks.md): a recipient's endpoint, and per
-- (endpoint, grant) a delivery cursor over the committed records of the grant's vehicle
-- (its stream log, migration 006). The outbox is this state, not memory: whichever
-- instance holds an endpoint's lease continues from the cursor after a crash.

CREATE TABLE webhooks (
  id                    uuid PRIMARY KEY,
  recipient_id          text NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
  recipient_role        text NOT NULL CHECK (recipient_role IN ('workshop', 'third_party')),
  url                   text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
  -- The Standard Webhooks key (whsec_<base64>): signing needs it, so it cannot be hashed.
  secret                text NOT NULL,
  -- null: every grant made to the recipient, present and future.
  grant_ids             uuid[],
  events                text[] NOT NULL CHECK (cardinality(events) > 0 AND events <@ ARRAY['records', 'grants']),
  status                text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  disabled_reason       text,
  created_at            timestamptz NOT NULL DEFAULT clock_timestamp(),
  last_success_at       timestamptz,
  last_failure_at       timestamptz,
  last_failure          text,
  consecutive_failures  integer NOT NULL DEFAULT 0,
  -- First failure of the current run of failures: past WEBHOOK_DISABLE_AFTER_MS, disabled.
  failing_since         timestamptz,
  -- Backoff: no delivery to the endpoint before this.
  next_attempt_at       timestamptz NOT NULL DEFAULT '-infinity',
  -- One instance at a time delivers to an endpoint: the holder of an unexpired lease.
  lease_owner           text,
  lease_until           timestamptz
);
CREATE INDEX webhooks_by_recipient ON webhooks (recipient_id, created_at);

CREATE TABLE webhook_grants (
  webhook_id        uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  grant_id          uuid NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
  vin               text NOT NULL,
  -- Every record of the vehicle's stream log at or before (after_tx, after_ord) was
  -- delivered or is not the recipient's; null: not placed yet (the worker places it).
  after_tx          int8,
  after_ord         int8 NOT NULL DEFAULT 0,
  -- grant.created delivered (or not asked for).
  created_sent      boolean NOT NULL DEFAULT false,
  -- The grant's end (grant.revoked/expired/ended) delivered: nothing more for this grant.
  ended_sent        boolean NOT NULL DEFAULT false,
  -- The delivery in flight, stored before its first attempt: a retry sends the same
  -- webhook-id with the same records (after_tx/ord, pending_tx/ord].
  pending_id        text,
  pending_kind      text,
  pending_tx        int8,
  pending_ord       int8,
  -- POST /v1/webhooks/{id}/replay: records measured before replay_from are skipped until
  -- the cursor passes (replay_until_tx, replay_until_ord), where it stood.
  replay_from       timestamptz,
  replay_until_tx   int8,
  replay_until_ord  int8,
  -- Disclosure of this endpoint and grant for the day (one per day, widened per delivery).
  disclosure_id     int8,
  disclosure_day    date,
  delivered_records int8 NOT NULL DEFAULT 0,
  PRIMARY KEY (webhook_id, grant_id)
);
CREATE INDEX webhook_grants_by_grant ON webhook_grants (grant_id);
