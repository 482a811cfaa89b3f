// What the API needs from the outside, as interfaces. main.ts hands in the storage
// implementations; api/ never imports storage/ itself (as gateway/ports.ts for the gateway).
import type { Group, StoredValues } from '../proto/fields.ts';
import type { ConsentFlags, ConsentPeriod } from '../proto/consent.ts';

export type { ConsentPeriod };

export interface ConsentEvent extends ConsentFlags {
  id: number;
  effectiveAt: Date;
  actor: string;
  channel: string;
  ownerId: string | null;
  previous: ConsentFlags | null;
  erasedLocationHistory: boolean;
}

export interface ConsentStore {
  /** The state in force at `sinceMs` (or the defaults) and every change after it, oldest first. */
  timeline(vin: string, sinceMs: number): Promise<ConsentPeriod[]>;
  /** Appends a change (erasing location history when asked); in force once it resolves. Rejects NOT_FOUND for an unknown VIN. */
  set(
    vin: string,
    change: { location?: boolean; co2Sharing?: boolean; restricted?: boolean; actor: string; channel: string; eraseLocationHistory?: boolean },
  ): Promise<ConsentPeriod & { erasedLocationRows: number }>;
  /** The event history of a vehicle, oldest first, optionally from a time on. */
  history(vin: string, fromMs?: number): Promise<ConsentEvent[]>;
}

export interface OwnershipPeriod {
  ownerId: string;
  /** Start for reads and erasure. */
  from: Date;
  /** When the ownership was recorded (provisioning or transfer). */
  startedAt: Date;
  /** null: still the owner. */
  to: Date | null;
}

export interface ErasureResult {
  telemetryDeleted: number;
  telemetryUpdated: number;
  obfcmDeleted: number;
  obfcmKept: number;
  quarantineDeleted: number;
}

export interface RightsStore {
  /** The current owner, or null when the VIN is not provisioned. */
  currentOwner(vin: string): Promise<string | null>;
  /** The periods during which `ownerId` owned `vin`, oldest first. */
  periodsOf(vin: string, ownerId: string): Promise<OwnershipPeriod[]>;
  /** Ends the current period and starts the new owner's. Rejects NOT_FOUND (unknown VIN) or CONFLICT (already the owner). */
  transfer(vin: string, newOwnerId: string, actor: string): Promise<OwnershipPeriod>;
  /** Erases what was recorded during the owner's periods, optionally one category. */
  erase(vin: string, ownerId: string, category: Group | null): Promise<ErasureResult>;
}

export interface VehicleStore {
  /** Provisions a vehicle. Rejects CONFLICT when the VIN exists. */
  create(v: { vin: string; ownerId: string; secretHash: string }): Promise<{ vin: string; ownerId: string; createdAt: Date }>;
  /** Replaces the secret hash and announces it (NOTIFY) in the same transaction; false for an unknown VIN. */
  rotateSecret(vin: string, secretHash: string): Promise<boolean>;
}

export type { StoredValues };

export interface StoredRecord {
  vin: string;
  seq: number;
  recordedAt: Date;
  technical?: StoredValues | null;
  consumption?: StoredValues | null;
  location?: StoredValues | null;
}

export interface Range {
  from: Date | null;
  to: Date | null;
}

export interface Disclosure {
  vin: string;
  role: string;
  subject: string;
  endpoint: string;
  categories: string[];
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

export interface ReadStore {
  /** Records of `vin` inside the periods ∩ range, oldest first. */
  records(vin: string, periods: readonly OwnershipPeriod[], range: Range, categories: readonly Group[], pageSize?: number): AsyncGenerator<StoredRecord>;
  /** The same records as NDJSON text chunks, oldest first. */
  ndjson(vin: string, periods: readonly OwnershipPeriod[], range: Range, categories: readonly Group[], pageSize?: number): AsyncGenerator<string>;
  latestLocation(vin: string, periods: readonly OwnershipPeriod[]): Promise<{ recordedAt: Date; seq: number; location: StoredValues } | null>;
  /**
   * Consumption counters in the range and window, newest last, the disclosure written in
   * the same transaction as the read. With `disclosure.grantId` the disclosure statement
   * re-checks the grant (active, vehicle not restricted); when it no longer holds, nothing
   * is read: rejects NOT_FOUND.
   */
  consumptionForWorkshop(vin: string, period: { from: Date; to: Date | null }, range: Range, disclosure: Disclosure, limit: number): Promise<{ recordedAt: Date; seq: number; consumption: StoredValues }[]>;
  /**
   * Per VIN, the last shareable OBFCM reading in the range, decided per reading by the
   * state in force for its ownership period (access/grants.ts obfcmShareable); one
   * disclosure per VIN reported, filed with that period's owner, in the statement that
   * reads it. Pages of `pageSize` VINs in VIN order, one statement each.
   */
  obfcmReportPages(range: Range, who: { role: string; subject: string; endpoint: string }, pageSize?: number): AsyncGenerator<ObfcmRow[]>;
  /** obfcmReportPages, collected. */
  obfcmReport(range: Range, who: { role: string; subject: string; endpoint: string }): Promise<ObfcmRow[]>;
  disclosures(vin: string, periods: readonly OwnershipPeriod[]): Promise<(Disclosure & { at: Date })[]>;
}

/**
 * How the API tells the stores' failures apart. A store rejects with errors these
 * recognise; main.ts hands in the storage's guards.
 */
export interface StoreFailures {
  /** The row exists already (409). */
  isConflict(err: unknown): boolean;
  /** The row the operation needs does not exist (404). */
  isNotFound(err: unknown): boolean;
  /** The database is not answering right now (503, retry later). */
  isUnavailable(err: unknown): boolean;
}

// ---------------------------------------------------------------------------
// Live streams (api/routes/stream.ts): the fan-out (stream/hub.ts) and the stream log's
// resume positions (stream/log.ts).

/** Place of a record in its vehicle's stream: (writing transaction id, place in its entry). */
export interface CursorPos {
  tx: number;
  ord: number;
}

export interface LineProjection {
  categories: readonly Group[];
  nulled: readonly Group[];
}

export interface FeedRecord {
  tx: number;
  ord: number;
  recordedAtMs: number;
  json(p: LineProjection): string;
  /** The same line (ASCII) written into `out` at `at`, where at least 16 KiB are free; returns where it ends. */
  line(p: LineProjection, out: Buffer, at: number): number;
}

export interface FeedSubscriber {
  readonly vin: string;
  /** The grant a recipient's stream reads through. */
  readonly grantId?: string;
  deliver(records: readonly FeedRecord[], live: boolean): void;
  busy(): boolean;
  ready(): Promise<void>;
  recheck(): void;
  startedAt?(pos: CursorPos): void;
  /** Ends the stream with a last event saying why (the feed can no longer serve it, e.g. the vehicle moved to another shard). */
  end?(reason: string): void;
  readonly closed: boolean;
}

/** The live fan-out (stream/hub.ts). */
export interface StreamFeed {
  open(sub: FeedSubscriber, opts: { after: CursorPos | null; fromMs: number | null }): Promise<void>;
  close(sub: FeedSubscriber): void;
}

/** Where resumes can start (stream/log.ts). */
export interface StreamPositions {
  /** Cursors of `vin` at or below this transaction id can no longer resume (retention; sharded: of the VIN's shard's log). */
  trimmedBelow(vin: string): Promise<number>;
  /** The first position that can hold records measured at or after fromMs. */
  startFor(vin: string, fromMs: number, marginMs: number): Promise<CursorPos>;
  /** Sharded storage only: the shard whose log `vin`'s positions are in now (a cursor names it). */
  shardOf?(vin: string): number;
}

/** The record of tokens the gateway minted (sign-in), so that they can be revoked. */
export interface MintedTokenStore {
  record(t: { jti: string; role: string; subject: string; issuedAt: Date; expiresAt: Date }): Promise<void>;
  /** Marks the token revoked and tells every instance; false when no such token was minted. */
  revoke(jti: string): Promise<boolean>;
}

/** People's accounts at the embedded OpenID Provider. */
export interface AccountStore {
  /** Rejects CONFLICT when the username or the subject is taken. */
  create(a: { username: string; subject: string; role: string; passwordHash: string }): Promise<{ username: string; subject: string; role: string; createdAt: Date }>;
  list(): Promise<{ username: string; subject: string; role: string; createdAt: Date }[]>;
  /** false when there is no such account. */
  remove(username: string): Promise<boolean>;
}

// ---------------------------------------------------------------------------------------
// Grants (issue 12): recipients, owner-issued grants, workshop check-in codes.

export type RecipientRole = 'workshop' | 'third_party';

export interface Recipient {
  id: string;
  role: RecipientRole;
  name: string;
  createdAt: Date;
}

export interface RecipientStore {
  /** Registers a recipient. Rejects CONFLICT when the id exists. */
  create(r: { id: string; role: RecipientRole; name: string }): Promise<Recipient>;
  get(id: string): Promise<Recipient | null>;
  /** By name, then id. */
  list(opts?: { limit?: number }): Promise<Recipient[]>;
}

export interface GrantRecord {
  id: string;
  vin: string;
  ownerId: string;
  recipientId: string;
  recipientRole: RecipientRole;
  recipientName: string;
  categories: Group[];
  access: ('history' | 'stream')[];
  purpose: string;
  dataFrom: Date;
  createdAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
  /** End of the ownership period the grant was made in (a transfer); null while it lasts. */
  periodEndedAt: Date | null;
  origin: 'owner' | 'checkin';
}

export interface GrantStore {
  /**
   * A grant of the vehicle's current owner `ownerId`, tied to their current ownership
   * period. `dataFrom` null: the creation; `expiresAt` a time or a lifetime from the
   * creation. Rejects NOT_FOUND when `ownerId` is not the current owner.
   */
  create(g: {
    vin: string;
    ownerId: string;
    recipientId: string;
    categories: readonly string[];
    access: readonly string[];
    purpose: string;
    dataFrom: Date | null;
    expiresAt: Date | { afterMs: number };
    actor: string;
  }): Promise<GrantRecord>;
  /** The grant `id` (a UUID), or null. */
  get(id: string): Promise<GrantRecord | null>;
  /** Every grant `ownerId` made on `vin`, oldest first. */
  listByOwner(vin: string, ownerId: string): Promise<GrantRecord[]>;
  /** Grants to `recipientId` that may still be active, oldest first; optionally of one vehicle. */
  listForRecipient(recipientId: string, vin?: string): Promise<GrantRecord[]>;
  /**
   * Revokes `id` if it is `ownerId`'s active grant on `vin`, announcing it to every
   * instance; in force everywhere once it resolves. 'not_found': no such grant of this
   * owner and vehicle; 'not_active': already revoked, expired or ended.
   */
  revoke(vin: string, ownerId: string, id: string, actor: string): Promise<'revoked' | 'not_found' | 'not_active'>;
  /** The grant's events, oldest first (for its receipt). */
  events(id: string): Promise<{ at: Date; kind: 'given' | 'withdrawn'; actor: string }[]>;
  /**
   * Files the disclosure of a read through a grant, in one statement that re-checks that
   * the grant is active and the vehicle not restricted. false: not filed; the read must
   * not happen.
   */
  disclose(d: { grantId: string; role: string; subject: string; endpoint: string; categories: readonly string[]; rangeFrom: Date | null; rangeTo: Date | null }): Promise<boolean>;
  /** The same for a stream session: the disclosure's id, or null (not filed; nothing may be sent). */
  discloseSession(d: { grantId: string; role: string; subject: string; endpoint: string; categories: readonly string[]; rangeFrom: Date | null; rangeTo: Date | null }): Promise<string | null>;
  /** A stream session ended: its disclosure names the measurement times it did send (null: it sent nothing). */
  settleSession(id: string, sent: { from: Date; to: Date } | null): Promise<void>;
}

export interface CheckinStore {
  /** Stores a check-in code by its hash. Rejects NOT_FOUND when `ownerId` is not the current owner. */
  create(c: { codeHash: Buffer; vin: string; ownerId: string; recipientId: string | null; visitHours: number; dataFrom: Date | null; ttlSeconds: number }): Promise<{ expiresAt: Date; dataFrom: Date }>;
  /**
   * Redeems an unused, unexpired code for workshop `recipientId`, creating the visit's
   * consumption grant in the same transaction; null when no such code is usable by it.
   */
  redeem(codeHash: Buffer, recipientId: string, purpose: string): Promise<GrantRecord | null>;
}

/** Aggregates of one field over the buckets, columnar; null where a bucket has no value. */
export interface FieldSeries {
  avg: (number | null)[];
  min: (number | null)[];
  max: (number | null)[];
}

/** The portal's reads: the vehicles a person owns, the latest record, time-bucketed summaries. */
export interface SeriesStore {
  /** Vehicles `ownerId` owns now, by VIN; `since` = when the current ownership began. */
  ownedBy(ownerId: string): Promise<{ vin: string; since: Date }[]>;
  /** The newest stored record inside the periods, with the categories given; null when none. */
  latest(vin: string, periods: readonly OwnershipPeriod[], categories: readonly Group[]): Promise<StoredRecord | null>;
  /**
   * Buckets of `bucketMs` over periods ∩ range for the categories given: bucket starts (ms,
   * oldest first, empty buckets left out), records per bucket, and per field (`group.jsName`)
   * its average, minimum and maximum. With `fields`, only those fields (of those categories).
   */
  series(
    vin: string,
    periods: readonly OwnershipPeriod[],
    range: { from: Date; to: Date },
    bucketMs: number,
    categories: readonly Group[],
    fields?: readonly string[],
  ): Promise<{ t: number[]; count: number[]; fields: Record<string, FieldSeries> }>;
}
