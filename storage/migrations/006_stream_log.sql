-- Commit-ordered log of stored telemetry, for the live streams (issue 13).
--
-- The batch writer adds, in the same transaction as the rows, one entry per vehicle and
-- transaction: the keys of the rows it actually inserted (a resent duplicate adds none),
-- tagged with the transaction's id. A stream's cursor is (tx, position in the entry).
-- Transaction ids are not commit-ordered, so readers only take entries whose transaction
-- is older than the oldest one still running (pg_snapshot_xmin): that set never grows
-- behind a reader's back, which is what makes a resume free of gaps and duplicates.
CREATE TABLE stream_log (
  tx    xid8 NOT NULL DEFAULT pg_current_xact_id(),
  vin   text NOT NULL,
  -- Transaction start: finds where to begin for ?from=, and what retention drops.
  at    timestamptz NOT NULL DEFAULT now(),
  ats   timestamptz[] NOT NULL,
  seqs  int8[] NOT NULL
);
-- The tailer reads every new entry; a resume reads one vehicle's.
CREATE INDEX stream_log_tx ON stream_log (tx);
CREATE UNIQUE INDEX stream_log_vin_tx ON stream_log (vin, tx);

-- Entries with tx <= below were dropped by retention: an older cursor cannot resume.
CREATE TABLE stream_log_trim (
  one    boolean PRIMARY KEY DEFAULT true CHECK (one),
  below  xid8 NOT NULL
);
INSERT INTO stream_log_trim (below) VALUES ('0');
