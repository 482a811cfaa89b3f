// Ownership of a vehicle over time, and what erasing an owner's data removed: the shapes
// storage records, the access policy decides with and the API answers with. Types only.
import type { DataCategory } from './connectivity.ts';

/** One owner's period of a vehicle. */
export interface OwnershipPeriod {
  ownerId: string;
  /** Start for reads and erasure: the first owner's period reaches back to the epoch. */
  from: Date;
  /** When the ownership was recorded (provisioning or transfer). */
  startedAt: Date;
  /** null: still the owner. */
  to: Date | null;
}

/** What an erasure (GDPR Art. 17) removed or cleared. */
export interface ErasureResult {
  telemetryDeleted: number;
  telemetryUpdated: number;
  obfcmDeleted: number;
  obfcmKept: number;
  quarantineDeleted: number;
  /** Connections erased (category null or `connectivity`). */
  connectivityDeleted?: number;
}

/**
 * Ownership and the data subject's rights, as storage implements them and the API's port
 * narrows them ("rejects NOT_FOUND / CONFLICT": with the storage's STO_ERR_* of that code,
 * which the API tells apart through its StoreFailures port).
 */
export interface OwnershipStore {
  /** The current owner, or null when the VIN is not provisioned. */
  currentOwner(vin: string): Promise<string | null>;
  /** The periods during which `ownerId` owned `vin`, oldest first. */
  periodsOf(vin: string, ownerId: string): Promise<OwnershipPeriod[]>;
  /** Every period of the vehicle, oldest first. */
  allPeriods(vin: string): Promise<OwnershipPeriod[]>;
  /**
   * Ends the current period, starts the new owner's, resets consent to the defaults.
   * Rejects NOT_FOUND (unknown VIN) or CONFLICT (already the owner).
   */
  transfer(vin: string, newOwnerId: string, actor: string): Promise<OwnershipPeriod>;
  /**
   * Erases what was recorded during the owner's periods, optionally one category. With
   * `asCurrentOwner`, only while `ownerId` is the current owner: checked inside the
   * transaction, under the vehicle's row lock a transfer takes too; else rejects NOT_FOUND.
   */
  erase(vin: string, ownerId: string, category: DataCategory | null, opts?: { asCurrentOwner?: boolean }): Promise<ErasureResult>;
}
