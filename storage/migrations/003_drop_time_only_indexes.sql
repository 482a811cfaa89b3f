-- TimescaleDB's create_hypertable adds an index on the time column alone to each
-- hypertable. No query here needs it: every read by vehicle goes through the primary key
-- (vin, recorded_at, seq), the authority report reads the whole range of the chunks it
-- touches, and retention drops chunks. It cost one more B-tree insert per stored row in
-- each table, on the ingest path. (Plain PostgreSQL never had it: IF EXISTS.)
DROP INDEX IF EXISTS telemetry_recorded_at_idx;
DROP INDEX IF EXISTS obfcm_readings_recorded_at_idx;
