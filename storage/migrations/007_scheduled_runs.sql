-- Duties that must run once per period however many gateway processes share the
-- database (retention today). A process claims a period by inserting its row, in the
-- same transaction as the work: if it dies half-way the claim rolls back with the work
-- and another process takes the period over.
CREATE TABLE IF NOT EXISTS scheduled_runs (
  job          text        NOT NULL,
  period_start timestamptz NOT NULL,
  instance     text        NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at  timestamptz,
  result       jsonb,
  PRIMARY KEY (job, period_start)
);
