// Vehicles and their MQTT credentials. Only a salted scrypt hash of a secret is stored.
import type { Db } from '../driver/db.ts';
import { STO_ERR, StorageError, isUniqueViolation } from '../errors.ts';

export interface VehicleCredentials {
  vin: string;
  ownerId: string;
  secretHash: string;
}

/** NOTIFY channel announcing a rotated vehicle secret; payload = the VIN. */
export const SECRET_CHANNEL = 'vehicle_secret_rotated';

export interface VehicleRepo {
  /**
   * Replaces a vehicle's secret hash; false when the VIN is unknown. Announces the change
   * (NOTIFY SECRET_CHANNEL) in the same transaction, so every gateway closes the sessions
   * opened with the old secret.
   */
  rotateSecret(vin: string, secretHash: string): Promise<boolean>;
  /** Inserts a vehicle; STO_ERR_CONFLICT when the VIN exists. */
  create(v: VehicleCredentials): Promise<{ vin: string; ownerId: string; createdAt: Date }>;
  getCredentials(vin: string): Promise<VehicleCredentials | null>;
  list(opts?: { limit?: number; afterVin?: string }): Promise<{ vin: string; ownerId: string; createdAt: Date }[]>;
}

export function createVehicleRepo(db: Db): VehicleRepo {
  return {
    async create(v) {
      try {
        return await db.transaction(async (tx) => {
          const r = await tx.query<{ vin: string; owner_id: string; created_at: Date }>(
            'INSERT INTO vehicles (vin, owner_id, secret_hash) VALUES ($1, $2, $3) RETURNING vin, owner_id, created_at',
            [v.vin, v.ownerId, v.secretHash],
          );
          const row = r.rows[0]!;
          await tx.query('INSERT INTO ownership_periods (vin, owner_id, started_at) VALUES ($1, $2, $3)', [v.vin, v.ownerId, row.created_at]);
          return { vin: row.vin, ownerId: row.owner_id, createdAt: row.created_at };
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw new StorageError(STO_ERR.CONFLICT, `vehicle ${v.vin} is already provisioned`);
        throw err;
      }
    },
    async rotateSecret(vin, secretHash) {
      return db.transaction(async (tx) => {
        const r = await tx.query<{ vin: string }>('UPDATE vehicles SET secret_hash = $2 WHERE vin = $1 RETURNING vin', [vin, secretHash]);
        if (r.rows.length === 0) return false;
        await tx.query('SELECT pg_notify($1, $2)', [SECRET_CHANNEL, vin]);
        return true;
      });
    },
    async getCredentials(vin) {
      const r = await db.query<{ vin: string; owner_id: string; secret_hash: string }>(
        'SELECT vin, owner_id, secret_hash FROM vehicles WHERE vin = $1',
        [vin],
      );
      const row = r.rows[0];
      return row ? { vin: row.vin, ownerId: row.owner_id, secretHash: row.secret_hash } : null;
    },
    async list(opts = {}) {
      const r = await db.query<{ vin: string; owner_id: string; created_at: Date }>(
        'SELECT vin, owner_id, created_at FROM vehicles WHERE vin > $1 ORDER BY vin LIMIT $2',
        [opts.afterVin ?? '', opts.limit ?? 100],
      );
      return r.rows.map((x) => ({ vin: x.vin, ownerId: x.owner_id, createdAt: x.created_at }));
    },
  };
}
