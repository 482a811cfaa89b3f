-- Core schema: vehicles, consent, telemetry, shareable OBFCM readings, quarantine.
-- Column names of telemetry/obfcm_readings are the proto field names (snake_case),
-- so the data catalogue and the writer derive from the .proto (storage/columns.ts).

CREATE TABLE vehicles (
  vin          text PRIMARY KEY CHECK (vin ~ '^[A-HJ-NPR-Z0-9]{17}$'),
  owner_id     text NOT NULL,
  secret_hash  text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- Append-only: every consent change is a new row, never an update (GDPR Art. 7(1):
-- the controller must be able to demonstrate consent). The state in force at time t
-- is the latest row with effective_at <= t; no row means the defaults (both allowed).
CREATE TABLE consent_events (
  id                   bigserial PRIMARY KEY,
  vin                  text NOT NULL REFERENCES vehicles (vin) ON DELETE CASCADE,
  effective_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
  location_allowed     boolean NOT NULL,
  co2_sharing_allowed  boolean NOT NULL,
  actor                text NOT NULL,
  channel              text NOT NULL
);
CREATE INDEX consent_events_vin_time ON consent_events (vin, effective_at DESC, id DESC);

-- The owner's own record of the vehicle: everything the vehicle sent that the owner
-- allowed us to keep. Location columns are NULL when location processing was refused.
CREATE TABLE telemetry (
  vin          text NOT NULL,
  recorded_at  timestamptz NOT NULL,
  seq          bigint NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  -- technical
  odometer_km double precision,
  speed_kmh double precision,
  fuel_level_pct double precision,
  battery_soc_pct double precision,
  engine_rpm double precision,
  coolant_temp_c double precision,
  outside_temp_c double precision,
  aux_battery_voltage_v double precision,
  remaining_range_km double precision,
  engine_oil_temp_c double precision,
  -- consumption (OBFCM, (EU) 2017/1151 Annex XXII)
  total_fuel_consumed_l double precision,
  total_distance_km double precision,
  total_fuel_consumed_charge_depleting_l double precision,
  total_fuel_consumed_charge_increasing_l double precision,
  total_distance_charge_depleting_engine_off_km double precision,
  total_distance_charge_depleting_engine_running_km double precision,
  total_distance_charge_increasing_km double precision,
  total_grid_energy_into_battery_kwh double precision,
  -- location
  latitude double precision,
  longitude double precision,
  heading_deg double precision,
  altitude_m double precision,
  accuracy_m double precision,
  -- which groups the record carried (a group can be present with every field absent)
  has_technical boolean NOT NULL DEFAULT false,
  has_consumption boolean NOT NULL DEFAULT false,
  has_location boolean NOT NULL DEFAULT false,
  -- A resent record (same vin, recorded_at, seq) is stored once: ON CONFLICT DO NOTHING.
  PRIMARY KEY (vin, recorded_at, seq)
);

-- OBFCM counters that may be shared with the authorities ((EU) 2021/392): only rows of
-- vehicles whose owner did not refuse CO2/OBFCM sharing when measured and when processed.
CREATE TABLE obfcm_readings (
  vin          text NOT NULL,
  recorded_at  timestamptz NOT NULL,
  seq          bigint NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  total_fuel_consumed_l double precision,
  total_distance_km double precision,
  total_fuel_consumed_charge_depleting_l double precision,
  total_fuel_consumed_charge_increasing_l double precision,
  total_distance_charge_depleting_engine_off_km double precision,
  total_distance_charge_depleting_engine_running_km double precision,
  total_distance_charge_increasing_km double precision,
  total_grid_energy_into_battery_kwh double precision,
  PRIMARY KEY (vin, recorded_at, seq)
);

-- Payloads and records refused by validation. `payload` is NULL when it could carry
-- data the owner refused (location) or when it was over the size limit.
CREATE TABLE quarantine (
  id             bigserial PRIMARY KEY,
  received_at    timestamptz NOT NULL DEFAULT now(),
  vin            text,
  reason         text NOT NULL,
  detail         text NOT NULL,
  seq            bigint,
  recorded_at    timestamptz,
  payload        bytea,
  payload_bytes  integer NOT NULL,
  -- sha256 of (vin, reason, payload): a resent bad message is quarantined once
  dedupe_key     bytea NOT NULL UNIQUE
);
CREATE INDEX quarantine_vin_time ON quarantine (vin, received_at);

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    PERFORM create_hypertable('telemetry', by_range('recorded_at', INTERVAL '1 day'));
    PERFORM create_hypertable('obfcm_readings', by_range('recorded_at', INTERVAL '7 days'));
  END IF;
END
$$;
