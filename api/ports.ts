// What the API needs from the outside, as interfaces. app/ hands in the storage
// implementations; api/ never imports storage/ itself (as gateway/ports.ts for the gateway).
import type { ConsentChange, ConsentEvent, ConsentPeriod, ConsentStore as ProtoConsentStore } from '../proto/consent.ts';
import type { ErasureResult, OwnershipPeriod, OwnershipStore } from '../proto/ownership.ts';
import type { Disclosure, ObfcmRow, Range, StoredRecord, StoredValues } from '../proto/records.ts';
import type { GrantRecord, Recipient, RecipientRole } from '../proto/grants.ts';
import type { Account, MintedToken } from '../proto/sign-in.ts';
import type { StreamPos, StreamStart, StreamSubscriber } from '../proto/stream.ts';

// The contract types the ports speak of (proto/), named here for the API's modules.
export type { ConsentEvent, ConsentPeriod, Disclosure, ErasureResult, GrantRecord, ObfcmRow, OwnershipPeriod, Range, Recipient, RecipientRole, StoredRecord, StoredValues };
export type { FieldSeries } from '../proto/records.ts';

/**
 * The consent store as the routes use it: a change is always made on behalf of the owner
 * who asked, and refused (NOT_FOUND) once that is no longer the owner.
 */
export interface ConsentStore extends Omit<ProtoConsentStore, 'set'> {
  set(vin: string, change: ConsentChange, asOwner: string): ReturnType<ProtoConsentStore['set']>;
}

/**
 * Ownership and the owner's rights, as the routes use them (no list of every period); an
 * erasure is the current owner's only, refused (NOT_FOUND) once the vehicle changed hands.
 */
export interface RightsStore extends Omit<OwnershipStore, 'allPeriods' | 'erase'> {
  erase(vin: string, ownerId: string, category: Parameters<OwnershipStore['erase']>[2], opts: { asCurrentOwner: true }): ReturnType<OwnershipStore['erase']>;
}

export interface VehicleStore {
  /** Provisions a vehicle. Rejects CONFLICT when the VIN exists. */
  create(v: { vin: string; ownerId: string; secretHash: string }): Promise<{ vin: string; ownerId: string; createdAt: Date }>;
  /** Replaces the secret hash and announces it (NOTIFY) in the same transaction; false for an unknown VIN. */
  rotateSecret(vin: string, secretHash: string): Promise<boolean>;
}

export type { ReadStore, SeriesStore } from '../proto/records.ts';

/**
 * How the API tells the stores' failures apart. A store rejects with errors these
 * recognise; app/ hands in the storage's guards.
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

/** The live fan-out (stream/hub.ts), as the routes use it: a stream opens and closes. */
export interface StreamFeed {
  open(sub: StreamSubscriber, opts: StreamStart): Promise<void>;
  close(sub: StreamSubscriber): void;
}

/** Where resumes can start (stream/log.ts). */
export interface StreamPositions {
  /** Cursors of `vin` at or below this transaction id can no longer resume (retention; sharded: of the VIN's shard's log). */
  trimmedBelow(vin: string): Promise<number>;
  /** The first position that can hold records measured at or after fromMs. */
  startFor(vin: string, fromMs: number, marginMs: number): Promise<StreamPos>;
  /** Sharded storage only: the shard whose log `vin`'s positions are in now (a cursor names it). */
  shardOf?(vin: string): number;
}

/** The record of tokens the gateway minted (sign-in), so that they can be revoked. */
export interface MintedTokenStore {
  record(t: MintedToken): Promise<void>;
  /** Marks the token revoked and tells every instance; false when no such token was minted. */
  revoke(jti: string): Promise<boolean>;
}

/** People's accounts at the embedded OpenID Provider. */
export interface AccountStore {
  /** Rejects CONFLICT when the username or the subject is taken. */
  create(a: Omit<Account, 'createdAt'>): Promise<Omit<Account, 'passwordHash'>>;
  list(): Promise<Omit<Account, 'passwordHash'>[]>;
  /** The removed account's subject; null when there is no such account. */
  remove(username: string): Promise<string | null>;
  /** Replaces the password hash; the account's subject, or null when there is no such account. */
  setPassword(username: string, passwordHash: string): Promise<string | null>;
}

// ---------------------------------------------------------------------------------------
// Grants: recipients, owner-issued grants, workshop check-in codes.

export type { CheckinStore, GrantStore, RecipientStore } from '../proto/grants.ts';

// ---------------------------------------------------------------------------------------
// Service clients: recipients signing in as themselves (client credentials).

export type { ServiceClientStore } from '../proto/service-clients.ts';

