// The COVESA Vehicle Signal Specification (VSS) name of every stored field: one table,
// keyed by the catalogue's field name (`group.jsName`, api/catalogue.ts). Standard signals
// are VSS 6.0's (pinned with their units in proto/vss/standard-paths.json); the OBFCM
// lifetime counters, which VSS has no signal for, are the overlay's
// (proto/vss/cardata-overlay.vspec, branch Vehicle.OBFCM). test/unit/vss.test.ts checks
// the three against each other and against the generated field table.

/** The VSS release the standard paths and units are taken from. */
export const VSS_RELEASE = '6.0';

/** Where the overlay and the pinned standard paths are, relative to the repository root. */
export const VSS_OVERLAY_FILE = 'proto/vss/cardata-overlay.vspec';
export const VSS_STANDARD_FILE = 'proto/vss/standard-paths.json';

/** VSS datatypes the table uses (VSS "Datatypes": numeric ones only, every stored field is a number). */
export type VssDatatype = 'uint8' | 'uint16' | 'uint32' | 'int8' | 'int16' | 'int32' | 'float' | 'double';

export interface VssName {
  /** The VSS path, e.g. `Vehicle.Speed`. */
  path: string;
  /** The VSS unit id (VSS spec/units.yaml), e.g. `km/h`, `m`, `Celsius`. */
  unit: string;
  datatype: VssDatatype;
  /**
   * Power of ten from the catalogue's unit to the VSS unit (kilometres → metres: 3); absent: the
   * same unit. Values of integer datatypes are then rounded to the nearest integer.
   */
  scale10?: number;
  /** The path is the gateway's overlay (cardata-overlay.vspec), not a standard VSS signal. */
  overlay?: true;
}

/** Catalogue field name → its VSS name. A field absent here has `vss: null` in the catalogue. */
export const VSS_NAMES: Readonly<Record<string, VssName>> = {
  'technical.odometerKm': { path: 'Vehicle.TraveledDistance', unit: 'm', datatype: 'uint32', scale10: 3 },
  'technical.speedKmh': { path: 'Vehicle.Speed', unit: 'km/h', datatype: 'float' },
  'technical.fuelLevelPct': { path: 'Vehicle.Powertrain.FuelSystem.RelativeLevel', unit: 'percent', datatype: 'uint8' },
  'technical.batterySocPct': { path: 'Vehicle.Powertrain.TractionBattery.StateOfCharge.Current', unit: 'percent', datatype: 'float' },
  'technical.engineRpm': { path: 'Vehicle.Powertrain.CombustionEngine.Speed', unit: 'rpm', datatype: 'float' },
  'technical.coolantTempC': { path: 'Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature', unit: 'Celsius', datatype: 'float' },
  'technical.outsideTempC': { path: 'Vehicle.Exterior.AirTemperature', unit: 'Celsius', datatype: 'float' },
  'technical.auxBatteryVoltageV': { path: 'Vehicle.LowVoltageBattery.CurrentVoltage', unit: 'V', datatype: 'float' },
  'technical.remainingRangeKm': { path: 'Vehicle.Powertrain.Range', unit: 'm', datatype: 'uint32', scale10: 3 },
  'technical.engineOilTempC': { path: 'Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature', unit: 'Celsius', datatype: 'float' },
  // (EU) 2017/1151 Annex XXII point 3: lifetime counters, the overlay's branch.
  'consumption.totalFuelConsumedL': { path: 'Vehicle.OBFCM.TotalFuelConsumed', unit: 'l', datatype: 'double', overlay: true },
  'consumption.totalDistanceKm': { path: 'Vehicle.OBFCM.TotalDistance', unit: 'km', datatype: 'double', overlay: true },
  'consumption.totalFuelConsumedChargeDepletingL': { path: 'Vehicle.OBFCM.OffVehicleCharging.FuelConsumedChargeDepleting', unit: 'l', datatype: 'double', overlay: true },
  'consumption.totalFuelConsumedChargeIncreasingL': { path: 'Vehicle.OBFCM.OffVehicleCharging.FuelConsumedChargeIncreasing', unit: 'l', datatype: 'double', overlay: true },
  'consumption.totalDistanceChargeDepletingEngineOffKm': { path: 'Vehicle.OBFCM.OffVehicleCharging.DistanceChargeDepletingEngineOff', unit: 'km', datatype: 'double', overlay: true },
  'consumption.totalDistanceChargeDepletingEngineRunningKm': { path: 'Vehicle.OBFCM.OffVehicleCharging.DistanceChargeDepletingEngineRunning', unit: 'km', datatype: 'double', overlay: true },
  'consumption.totalDistanceChargeIncreasingKm': { path: 'Vehicle.OBFCM.OffVehicleCharging.DistanceChargeIncreasing', unit: 'km', datatype: 'double', overlay: true },
  'consumption.totalGridEnergyIntoBatteryKwh': { path: 'Vehicle.OBFCM.OffVehicleCharging.GridEnergyIntoBattery', unit: 'kWh', datatype: 'double', overlay: true },
  'location.latitude': { path: 'Vehicle.CurrentLocation.Latitude', unit: 'degrees', datatype: 'double' },
  'location.longitude': { path: 'Vehicle.CurrentLocation.Longitude', unit: 'degrees', datatype: 'double' },
  'location.headingDeg': { path: 'Vehicle.CurrentLocation.Heading', unit: 'degrees', datatype: 'double' },
  'location.altitudeM': { path: 'Vehicle.CurrentLocation.Altitude', unit: 'm', datatype: 'double' },
  'location.accuracyM': { path: 'Vehicle.CurrentLocation.HorizontalAccuracy', unit: 'm', datatype: 'double' },
};
