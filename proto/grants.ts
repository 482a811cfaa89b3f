// Owner-issued grants and their recipients: the shapes storage records, the access policy
// (access/grants.ts) decides with and the API answers with. Types only.
import type { FieldList } from './fields.ts';
import type { DataCategory } from './connectivity.ts';

export type RecipientRole = 'workshop' | 'third_party';

/** How a grant lets its recipient read: exports of the history, live streams. */
export type AccessMode = 'history' | 'stream';

/** A registered workshop or third party. */
export interface Recipient {
  id: string;
  role: RecipientRole;
  name: string;
  createdAt: Date;
}

export interface GrantRecord {
  id: string;
  vin: string;
  ownerId: string;
  recipientId: string;
  recipientRole: RecipientRole;
  recipientName: string;
  categories: DataCategory[];
  /** Only these fields of the categories (catalogue names, `technical.speedKmh`); null: every field of them. */
  fields: string[] | null;
  access: AccessMode[];
  purpose: string;
  dataFrom: Date;
  createdAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
  /** End of the ownership period the grant was made in (a transfer); null while it lasts. */
  periodEndedAt: Date | null;
  origin: 'owner' | 'checkin';
}

/** A grant given or withdrawn (for its receipt). */
export interface GrantEvent {
  at: Date;
  kind: 'given' | 'withdrawn';
  actor: string;
}

/** A grant to make, of the vehicle's current owner. */
export interface NewGrant {
  vin: string;
  ownerId: string;
  recipientId: string;
  categories: readonly string[];
  /** Only these fields of the categories (catalogue names); null: every field of them. */
  fields: FieldList;
  access: readonly string[];
  purpose: string;
  /** null: the grant's creation. */
  dataFrom: Date | null;
  /** A time, or a lifetime from the grant's creation, ms. */
  expiresAt: Date | { afterMs: number };
  actor: string;
}

/** The disclosure of a read (or a stream session) through a grant. */
export interface GrantDisclosure {
  grantId: string;
  role: string;
  subject: string;
  endpoint: string;
  categories: readonly string[];
  /** The fields of a field-level grant the read carries; null or absent: whole categories. */
  fields?: FieldList;
  rangeFrom: Date | null;
  rangeTo: Date | null;
}

// The stores, as storage implements them and the API's ports name them. "Rejects
// CONFLICT / NOT_FOUND": with the storage's error of that code (STO_ERR_*), which the API
// tells apart through its StoreFailures port.

export interface RecipientStore {
  /** Registers a recipient. Rejects CONFLICT when the id exists. */
  create(r: Pick<Recipient, 'id' | 'role' | 'name'>): Promise<Recipient>;
  get(id: string): Promise<Recipient | null>;
  /** By name, then id. */
  list(opts?: { limit?: number }): Promise<Recipient[]>;
}

export interface GrantStore {
  /**
   * A grant of the vehicle's current owner `ownerId`, tied to their current ownership
   * period. `dataFrom` null: the creation; `expiresAt` a time or a lifetime from the
   * creation. Rejects NOT_FOUND when `ownerId` is not the current owner.
   */
  create(g: NewGrant): Promise<GrantRecord>;
  /** The grant `id` (a UUID), or null. */
  get(id: string): Promise<GrantRecord | null>;
  /** Every grant `ownerId` made on `vin`, oldest first. */
  listByOwner(vin: string, ownerId: string): Promise<GrantRecord[]>;
  /** Grants to `recipientId` that may still be active (not revoked, period open, not expired), oldest first; optionally of one vehicle. */
  listForRecipient(recipientId: string, vin?: string): Promise<GrantRecord[]>;
  /**
   * Revokes `id` if it is `ownerId`'s active grant on `vin`, and announces it to every
   * instance in the same transaction: in force everywhere once it resolves. 'not_found':
   * no such grant of this owner and vehicle; 'not_active': already revoked, expired or ended.
   */
  revoke(vin: string, ownerId: string, id: string, actor: string): Promise<'revoked' | 'not_found' | 'not_active'>;
  /** The grant's events, oldest first (for its receipt). */
  events(id: string): Promise<GrantEvent[]>;
  /**
   * Files the disclosure of a read through a grant, in one statement that also re-checks
   * that the grant is still active and the vehicle not restricted. false: not filed (the
   * grant stopped, or processing is restricted), the read must not happen.
   */
  disclose(d: GrantDisclosure): Promise<boolean>;
  /** The same for a stream session, whose range is known only when it ends: the disclosure's id, or null (not filed; nothing may be sent). */
  discloseSession(d: GrantDisclosure): Promise<string | null>;
  /**
   * A stream session ended: its disclosure (filed before the first byte with the range the
   * session could send) now names the range of measurement times it did send, or no range
   * (null) when it sent nothing.
   */
  settleSession(id: string, sent: { from: Date; to: Date } | null): Promise<void>;
}

export interface CheckinStore {
  /** Stores a check-in code (by its hash) of the vehicle's current owner. Rejects NOT_FOUND when `ownerId` is not. */
  create(c: { codeHash: Buffer; vin: string; ownerId: string; recipientId: string | null; visitHours: number; dataFrom: Date | null; ttlSeconds: number }): Promise<{ expiresAt: Date; dataFrom: Date }>;
  /**
   * Redeems an unexpired, unused code for workshop `recipientId` (the code's workshop when
   * it names one): marks it used and creates the visit's consumption grant, in one
   * transaction. null: no such code usable by this workshop (unknown, used, expired, for
   * another workshop, or the vehicle changed hands since).
   */
  redeem(codeHash: Buffer, recipientId: string, purpose: string): Promise<GrantRecord | null>;
}
