-- Ownership periods by vehicle, in the order every reader takes them (started_at, id): an
-- owner's export, a stream's checks, grants, the authority report's pages (by VIN). Until
-- now only the current period was indexed by VIN (ownership_one_current), so each of these
-- read the whole table: one row per vehicle and owner, a million and more in a real fleet.
CREATE INDEX ownership_by_vin ON ownership_periods (vin, started_at, id);
