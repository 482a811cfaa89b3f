-- Connectivity (issue 26): each vehicle's MQTT connections, as the category
-- `connectivity` (catalogue, export, grants, erasure and retention like the rest).
-- In the control database (DATABASE_URL); with SHARD_URLS the shards keep it empty.

-- The gateway processes that hold (or held) vehicle connections. An instance is alive while
-- its connectivity LISTEN connection is open: that backend's application_name ends in
-- "-connectivity:<key>". A process killed with -9 loses its sockets, PostgreSQL ends its
-- backends, and every other instance sees it gone (storage/repos/connectivity.ts).
CREATE TABLE gateway_instances (
  key         serial PRIMARY KEY,
  name        text NOT NULL,
  started_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per connection (MQTT session of one socket), keyed by the session id the
-- instance gave it: a disconnect closes only its own row, so events arriving in any order
-- (a reconnect to another instance before the old instance saw the old socket go) leave
-- the vehicle online while any of its rows is open on a live instance.
-- Bounded per vehicle: a session shorter than 10 s closing within 60 s of the vehicle's
-- previous short one is folded into it (`coalesced` counts the sessions folded in,
-- `disconnected_at` and `reason` are the last one's): a vehicle flapping all day keeps one
-- row, not one per connect.
CREATE TABLE vehicle_connections (
  id               bigserial PRIMARY KEY,
  session          uuid NOT NULL UNIQUE,
  vin              text NOT NULL,
  instance_key     integer NOT NULL,
  connected_at     timestamptz NOT NULL,
  disconnected_at  timestamptz,
  reason           text CHECK (reason IN ('clean', 'keepalive_timeout', 'taken_over', 'refused', 'connection_lost', 'closed_by_gateway', 'shutdown', 'instance_lost')),
  coalesced        integer NOT NULL DEFAULT 0,
  CHECK ((disconnected_at IS NULL) = (reason IS NULL))
);
CREATE INDEX vehicle_connections_vin_time ON vehicle_connections (vin, connected_at);
CREATE INDEX vehicle_connections_open ON vehicle_connections (instance_key) WHERE disconnected_at IS NULL;

-- A grant may cover `connectivity` (proto/connectivity.ts DATA_CATEGORIES).
ALTER TABLE grants DROP CONSTRAINT grants_categories_check;
ALTER TABLE grants ADD CONSTRAINT grants_categories_check
  CHECK (cardinality(categories) > 0 AND categories <@ ARRAY['technical', 'consumption', 'location', 'connectivity']);
