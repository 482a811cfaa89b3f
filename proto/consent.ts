// The owner's privacy choices for a vehicle, as the contract speaks of them: the shape
// storage records, the gateway filters by and the API answers with. Types only.

export interface ConsentFlags {
  /** Processing of the vehicle's location (GDPR Art. 6(1)(a) consent; objection Art. 21). `true` = allowed. */
  location: boolean;
  /** Sharing of OBFCM data with the authorities ((EU) 2021/392 lets the owner refuse it). `true` = allowed. */
  co2Sharing: boolean;
  /**
   * Restriction of processing (GDPR Art. 18): data may still be stored (Art. 18(2)) but
   * is processed for no one but the owner.
   */
  restricted: boolean;
}

/** A consent state and when it came into force. */
export interface ConsentPeriod extends ConsentFlags {
  /** Start of this state, ms since epoch; 0 for the defaults before any event. */
  sinceMs: number;
}

/** A change of the choices, as asked for. */
export interface ConsentChange {
  location?: boolean;
  co2Sharing?: boolean;
  restricted?: boolean;
  /** Who asked: 'customer:<id>', 'admin', 'system'. */
  actor: string;
  /** Through what: 'api', 'cli', 'transfer', 'test'. */
  channel: string;
  /** With a location opt-out: erase the stored positions of the current ownership period too. */
  eraseLocationHistory?: boolean;
}

/** One recorded change, with the state it replaced (the vehicle's consent history). */
export interface ConsentEvent extends ConsentFlags {
  id: number;
  effectiveAt: Date;
  actor: string;
  channel: string;
  ownerId: string | null;
  previous: ConsentFlags | null;
  erasedLocationHistory: boolean;
}

/**
 * The consent store, as storage implements it and the API's port names it ("rejects
 * NOT_FOUND": with the storage's STO_ERR_NOT_FOUND, which the API tells apart through its
 * StoreFailures port).
 */
export interface ConsentStore {
  /**
   * The periods that can still matter for records arriving now: the state in force at
   * `sinceMs` (or the defaults) and every change after it, oldest first.
   */
  timeline(vin: string, sinceMs: number): Promise<ConsentPeriod[]>;
  /**
   * Appends a change (erasing location history when asked) and announces it, in one
   * transaction: in force once it resolves. Rejects NOT_FOUND for an unknown VIN, and,
   * with `asOwner`, when that is not the current owner: checked inside the transaction,
   * under the vehicle's row lock a transfer takes too, so a change asked for before a
   * transfer never lands in (or erases from) the next owner's period.
   */
  set(vin: string, change: ConsentChange, asOwner?: string): Promise<ConsentPeriod & { erasedLocationRows: number }>;
  /** The event history of a vehicle, oldest first, optionally from a time on. */
  history(vin: string, fromMs?: number): Promise<ConsentEvent[]>;
}
