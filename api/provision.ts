// Provisioning a vehicle: a new MQTT secret, stored only as its scrypt hash, returned once.
// One rule for the admin API and the operator CLI.
import { hashSecret, newSecret } from '../identity/secrets.ts';
import type { VehicleStore } from './ports.ts';

/**
 * Creates the vehicle with a fresh secret and returns the secret (shown once). Rejects as
 * the store does: CONFLICT when the VIN is already provisioned.
 */
export async function provisionVehicle(vehicles: VehicleStore, secretCost: number, v: { vin: string; ownerId: string }): Promise<{ vin: string; secret: string }> {
  const secret = newSecret();
  const secretHash = await hashSecret(secret, secretCost);
  await vehicles.create({ vin: v.vin, ownerId: v.ownerId, secretHash });
  return { vin: v.vin, secret };
}
