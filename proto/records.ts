// Records as they cross the layers: the rows the gateway hands the writer, the records and
// summaries storage reads back for the API, the ranges they are read over, and the
// disclosure every read files. Storage implements the stores that take and give them; the
// gateway's and the API's ports name them from here. Types only.
import type { FieldList, Group, GroupValues, StoredValues } from './fields.ts';
import type { OwnershipPeriod } from './ownership.ts';

export type { StoredValues };

/** One record to store: its values by group (proto3 JSON names; null/absent: not sent). */
export interface RecordValues {
  vin: string;
  seq: number;
  recordedAtMs: number;
  technical?: GroupValues | null | undefined;
  consumption?: GroupValues | null | undefined;
  location?: GroupValues | null | undefined;
}

/** A record for the telemetry table, and whether its consumption counters also go to the shareable OBFCM table. */
export interface TelemetryRow extends RecordValues {
  shareObfcm: boolean;
}

/** A refused message or record, kept (or its bytes withheld) in quarantine. */
export interface QuarantineRow {
  vin: string | null;
  /** Reason code, e.g. GW_ERR_DECODE. */
  reason: string;
  detail: string;
  seq: number | null;
  recordedAtMs: number | null;
  /** Stored bytes; null when withheld (privacy or size). */
  payload: Buffer | null;
  payloadBytes: number;
  /** Identifies the refused message or record, so a resend is quarantined once. */
  dedupeKey: Buffer;
}

/** The rows of one MQTT message: written together, durable together. */
export interface WriteItem {
  telemetry: readonly TelemetryRow[];
  quarantine: readonly QuarantineRow[];
}

/** A stored record as read back: only the groups asked for, only the fields stored. */
export interface StoredRecord {
  vin: string;
  seq: number;
  recordedAt: Date;
  /** When the gateway stored it (the storing transaction's time, `telemetry.received_at`); null or absent where not read. */
  receivedAt?: Date | null;
  technical?: StoredValues | null;
  consumption?: StoredValues | null;
  location?: StoredValues | null;
}

/** A range of measurement times, [from, to); null: open on that side. */
export interface Range {
  from: Date | null;
  to: Date | null;
}

/** Who was given which of a vehicle's data, for what range (the owner can see every one). */
export interface Disclosure {
  vin: string;
  role: string;
  subject: string;
  endpoint: string;
  categories: string[];
  /** The fields a read through a field-level grant carried (catalogue names); null or absent: whole categories. */
  fields?: string[] | null;
  rangeFrom: Date | null;
  rangeTo: Date | null;
  /** The owner the disclosure is filed with (of the period the data belongs to). */
  ownerId?: string | null;
  /** The grant the read went through. */
  grantId?: string | null;
}

/** One row of the authority's OBFCM report. */
export interface ObfcmRow {
  vin: string;
  recordedAt: Date;
  values: StoredValues;
}

/** A vehicle a person owns now. */
export interface OwnedVehicle {
  vin: string;
  /** When the caller's current ownership began. */
  since: Date;
}

/** The newest value of one field (GET /v1/vehicles/{vin}/latest). */
export interface FieldFreshness {
  /** Catalogue name, `group.field`. */
  field: string;
  value: number;
  recordedAt: Date;
  /** When the gateway stored it; null when unknown. */
  receivedAt: Date | null;
}

/** Aggregates of one field over the buckets, columnar; null where a bucket has no value. */
export interface FieldSeries {
  avg: (number | null)[];
  min: (number | null)[];
  max: (number | null)[];
}

/** Time-bucketed summaries of a vehicle's records. */
export interface Series {
  /** Bucket starts, milliseconds since the epoch, oldest first; buckets without records are left out. */
  t: number[];
  /** Records per bucket. */
  count: number[];
  /** Per field, named `group.jsName` as in the CSV export. */
  fields: Record<string, FieldSeries>;
}

// The stores, as storage implements them and the API's ports name them. "Rejects
// NOT_FOUND": with the storage's error of that code (STO_ERR_NOT_FOUND), which the API
// tells apart through its StoreFailures port.

/** Who reads, for the disclosure a read files. */
export interface Reader {
  role: string;
  subject: string;
  endpoint: string;
}

/** The read paths: exports, the latest position, workshop consumption, the authority's OBFCM report, disclosures. */
export interface ReadStore {
  /**
   * Records of `vin` inside the periods ∩ range, oldest first, `pageSize` rows per query.
   * With `fields` (a field-level grant's), only those columns of the categories are read.
   */
  records(vin: string, periods: readonly OwnershipPeriod[], range: Range, categories: readonly Group[], pageSize?: number, fields?: FieldList): AsyncGenerator<StoredRecord>;
  /**
   * The same records as NDJSON text chunks, oldest first. On pg: segments of `pageSize`
   * rows (default 4,000) read by binary COPY, the lines built in the gateway into chunks
   * of `CHUNK_BYTES`. Elsewhere (PGlite): keyset pages of `pageSize` rows (default 500)
   * whose lines PostgreSQL builds, one chunk per page. With `fields`, only those columns of
   * the categories are read (and written).
   */
  ndjson(vin: string, periods: readonly OwnershipPeriod[], range: Range, categories: readonly Group[], pageSize?: number, fields?: FieldList): AsyncGenerator<string>;
  latestLocation(vin: string, periods: readonly OwnershipPeriod[]): Promise<{ recordedAt: Date; seq: number; location: StoredValues } | null>;
  /**
   * Consumption counters in the range and window, newest last, with the disclosure row
   * written in the same transaction as the read. With `disclosure.grantId` the disclosure
   * statement re-checks the grant (active, vehicle not restricted); when it no longer
   * holds, nothing is read: rejects NOT_FOUND. With `fields` (a field-level grant's), only
   * those consumption columns are read.
   */
  consumptionForWorkshop(vin: string, period: { from: Date; to: Date | null }, range: Range, disclosure: Disclosure, limit: number, fields?: FieldList): Promise<{ recordedAt: Date; seq: number; consumption: StoredValues }[]>;
  /**
   * Per VIN, the last shareable OBFCM reading in the range. A reading is shareable when
   * the privacy state in force for the ownership period it belongs to (that owner's last
   * choice in it; the defaults when none) neither refuses CO2 sharing nor restricts
   * processing (access/grants.ts obfcmShareable). One disclosure row per VIN reported,
   * filed with the owner of the reading's period, written by the statement that reads it.
   * Pages of `pageSize` VINs (default 1,000), in VIN order, each read and disclosed by one
   * statement; a page holds the VINs of its range that have a reading to report (empty
   * pages are skipped).
   */
  obfcmReportPages(range: Range, who: Reader, pageSize?: number): AsyncGenerator<ObfcmRow[]>;
  /** obfcmReportPages, collected. */
  obfcmReport(range: Range, who: Reader): Promise<ObfcmRow[]>;
  disclosures(vin: string, periods: readonly OwnershipPeriod[]): Promise<(Disclosure & { at: Date })[]>;
}

/** The portal's reads: the vehicles a person owns, the latest record, time-bucketed summaries. */
export interface SeriesStore {
  /** Vehicles `ownerId` owns now, by VIN; `since` = when the current ownership began. */
  ownedBy(ownerId: string): Promise<OwnedVehicle[]>;
  /** The newest stored record inside the periods, with the categories given; null when none. */
  latest(vin: string, periods: readonly OwnershipPeriod[], categories: readonly Group[]): Promise<StoredRecord | null>;
  /**
   * Per field of the categories, its newest stored value inside the periods and when it was
   * measured and stored, looked for among the newest `depth` records (default 1,000); a
   * field none of them carries is left out.
   */
  freshness(vin: string, periods: readonly OwnershipPeriod[], categories: readonly Group[], depth?: number): Promise<FieldFreshness[]>;
  /**
   * Buckets of `bucketMs` over periods ∩ range (range bounds required) for the categories
   * given: bucket starts (ms, oldest first, empty buckets left out), records per bucket,
   * and per field (`group.jsName`) its average, minimum and maximum. With `fields`, only
   * those fields (of those categories).
   */
  series(vin: string, periods: readonly OwnershipPeriod[], range: { from: Date; to: Date }, bucketMs: number, categories: readonly Group[], fields?: readonly string[]): Promise<Series>;
}
