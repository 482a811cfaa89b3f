// The contract's types and codecs, generated from proto/vehicle/v1/telemetry.proto
// by scripts/gen-proto.sh. Everything else imports them from here.
import { vehicle } from './gen/telemetry.js';

export const TelemetryBatch = vehicle.v1.TelemetryBatch;
export const TelemetryRecord = vehicle.v1.TelemetryRecord;
export const TechnicalData = vehicle.v1.TechnicalData;
export const ConsumptionData = vehicle.v1.ConsumptionData;
export const Location = vehicle.v1.Location;

export type ITelemetryBatch = vehicle.v1.ITelemetryBatch;
export type ITelemetryRecord = vehicle.v1.ITelemetryRecord;
export type ITechnicalData = vehicle.v1.ITechnicalData;
export type IConsumptionData = vehicle.v1.IConsumptionData;
export type ILocation = vehicle.v1.ILocation;

/** The topic a vehicle publishes its TelemetryBatch messages to. */
export function telemetryTopic(vin: string): string {
  return `v1/vehicles/${vin}/telemetry`;
}
