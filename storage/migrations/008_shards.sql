-- Telemetry sharded by VIN (issue 16). In the control database (DATABASE_URL): which
-- shard (SHARD_URLS, 0-based in that order) owns each of the 4,096 buckets a VIN hashes
-- to (storage/shards.ts bucketOf), and which shards the map has ever named. Filled by the
-- first process started with SHARD_URLS; empty (and unused) in single-database mode.
-- The same migrations run on every shard, so these tables exist there too, always empty.
CREATE TABLE shards (
  index     smallint PRIMARY KEY CHECK (index >= 0),
  -- host:port/database of the URL (no credentials): a reordered SHARD_URLS is refused.
  label     text NOT NULL,
  added_at  timestamptz NOT NULL DEFAULT now()
);

-- 'moving': a bucket move is under way (cli shard-move); the writers hold that bucket's
-- vehicles (their PUBACKs wait) until it is 'active' again, on its new shard.
CREATE TABLE shard_map (
  bucket  smallint PRIMARY KEY CHECK (bucket >= 0 AND bucket < 4096),
  shard   smallint NOT NULL REFERENCES shards (index),
  state   text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'moving'))
);
