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

/**
 * Replaces a vehicle's secret with a fresh one and returns it (shown once), or null for an
 * unknown VIN. The store announces the rotation so that gateways close the old secret's sessions.
 */
export async function rotateVehicleSecret(vehicles: VehicleStore, secretCost: number, vin: string): Promise<{ vin: string; secret: string } | null> {
  const secret = newSecret();
  const secretHash = await hashSecret(secret, secretCost);
  return (await vehicles.rotateSecret(vin, secretHash)) ? { vin, secret } : null;
}
