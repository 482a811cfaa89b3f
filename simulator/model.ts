// Driving model of one simulated vehicle: a small physical model (speed from a
// driver state machine, wheel power from mass, drag and grade) so that the
// values a vehicle reports stay consistent with each other over time: the
// odometer and OBFCM counters grow with the distance driven, fuel or battery
// energy drops with the power used, the GPS track follows speed and heading.
//
// The model is pure: all randomness comes from the seeded PRNG and time only
// from the `nowMs` passed to next(), so a seed replays the same trip.
import { createRng } from './prng.ts';
import type { Rng } from './prng.ts';

export type VehicleKind = 'petrol' | 'diesel' | 'bev' | 'phev';
export const VEHICLE_KINDS: readonly VehicleKind[] = ['petrol', 'diesel', 'bev', 'phev'];

/**
 * Draws a powertrain with roughly the shares of a recent European fleet,
 * skewed towards electrified vehicles so that every kind shows up in small runs.
 */
export function pickVehicleKind(rng: Rng): VehicleKind {
  const u = rng.next();
  if (u < 0.4) return 'petrol';
  if (u < 0.65) return 'diesel';
  if (u < 0.85) return 'bev';
  return 'phev';
}

// The sample types mirror the protobuf messages of proto/vehicle/v1 but with
// plain numbers: the model does not depend on the wire format, and the fields
// that do not apply to a powertrain are absent rather than zero.
export interface TechnicalSample {
  odometerKm: number;
  speedKmh: number;
  fuelLevelPct?: number;
  batterySocPct?: number;
  engineRpm: number;
  coolantTempC?: number;
  outsideTempC: number;
  auxBatteryVoltageV: number;
  remainingRangeKm: number;
  engineOilTempC?: number;
}

export interface ConsumptionSample {
  totalDistanceKm: number;
  totalFuelConsumedL?: number;
  totalFuelConsumedChargeDepletingL?: number;
  totalFuelConsumedChargeIncreasingL?: number;
  totalDistanceChargeDepletingEngineOffKm?: number;
  totalDistanceChargeDepletingEngineRunningKm?: number;
  totalDistanceChargeIncreasingKm?: number;
  totalGridEnergyIntoBatteryKwh?: number;
}

export interface LocationSample {
  latitude: number;
  longitude: number;
  headingDeg: number;
  altitudeM: number;
  accuracyM: number;
}

export interface VehicleSample {
  technical: TechnicalSample;
  consumption: ConsumptionSample;
  location: LocationSample;
}

export interface VehicleModel {
  readonly kind: VehicleKind;
  /** The European city the vehicle starts near. */
  readonly homeCity: string;
  /**
   * Advances the model to `nowMs` (epoch milliseconds) and returns the state
   * measured at that instant. The first call only fixes the start time.
   * Calls with a time not after the previous one return the unchanged state.
   */
  next(nowMs: number): VehicleSample;
}

interface City {
  name: string;
  lat: number;
  lon: number;
  altM: number;
  /** Annual mean temperature, °C. */
  meanTempC: number;
}

const CITIES: readonly [City, ...City[]] = [
  { name: 'Berlin', lat: 52.52, lon: 13.405, altM: 34, meanTempC: 10 },
  { name: 'Munich', lat: 48.137, lon: 11.575, altM: 519, meanTempC: 9 },
  { name: 'Hamburg', lat: 53.551, lon: 9.993, altM: 6, meanTempC: 9.5 },
  { name: 'Stuttgart', lat: 48.776, lon: 9.183, altM: 245, meanTempC: 10.5 },
  { name: 'Paris', lat: 48.857, lon: 2.352, altM: 35, meanTempC: 12.5 },
  { name: 'Lyon', lat: 45.764, lon: 4.836, altM: 173, meanTempC: 12.5 },
  { name: 'Madrid', lat: 40.417, lon: -3.704, altM: 657, meanTempC: 15 },
  { name: 'Barcelona', lat: 41.387, lon: 2.17, altM: 12, meanTempC: 16.5 },
  { name: 'Lisbon', lat: 38.722, lon: -9.139, altM: 50, meanTempC: 17.5 },
  { name: 'Rome', lat: 41.903, lon: 12.496, altM: 21, meanTempC: 16 },
  { name: 'Milan', lat: 45.464, lon: 9.19, altM: 120, meanTempC: 13 },
  { name: 'Turin', lat: 45.07, lon: 7.687, altM: 239, meanTempC: 13 },
  { name: 'Vienna', lat: 48.208, lon: 16.373, altM: 190, meanTempC: 11.5 },
  { name: 'Zurich', lat: 47.377, lon: 8.541, altM: 408, meanTempC: 9.5 },
  { name: 'Prague', lat: 50.075, lon: 14.438, altM: 235, meanTempC: 9 },
  { name: 'Warsaw', lat: 52.23, lon: 21.012, altM: 100, meanTempC: 8.5 },
  { name: 'Budapest', lat: 47.498, lon: 19.04, altM: 102, meanTempC: 11.5 },
  { name: 'Amsterdam', lat: 52.368, lon: 4.904, altM: 0, meanTempC: 10.5 },
  { name: 'Brussels', lat: 50.85, lon: 4.352, altM: 13, meanTempC: 11 },
  { name: 'Dublin', lat: 53.35, lon: -6.26, altM: 8, meanTempC: 10 },
  { name: 'Copenhagen', lat: 55.676, lon: 12.568, altM: 14, meanTempC: 9 },
  { name: 'Oslo', lat: 59.914, lon: 10.752, altM: 23, meanTempC: 6.5 },
  { name: 'Stockholm', lat: 59.329, lon: 18.069, altM: 28, meanTempC: 7.5 },
  { name: 'Helsinki', lat: 60.17, lon: 24.938, altM: 15, meanTempC: 6 },
];

type Road = 'urban' | 'rural' | 'highway';
type Phase = 'stop' | 'accelerate' | 'cruise' | 'brake' | 'charge' | 'refuel';
/** PHEV operating mode: charge-depleting, charge-sustaining, driver-selected charge-increasing. */
type HybridMode = 'cd' | 'cs' | 'ci';

interface Powertrain {
  massKg: number;
  /** Drag coefficient × frontal area, m². */
  cdA: number;
  rollingResistance: number;
  maxPowerW: number;
  tankL: number;
  batteryKwh: number;
  /** Mechanical work obtained from one litre of fuel (heating value × engine efficiency), J/l. */
  workPerLitreJ: number;
  idleFuelLph: number;
  /** Engine rpm per km/h in each gear, first gear first. */
  gearRpmPerKmh: readonly number[];
  idleRpm: number;
  maxRpm: number;
  /** Typical consumption, used to seed lifetime counters and the range estimate. */
  nominalL100: number;
  nominalKwh100: number;
}

const AIR_DENSITY = 1.2; // kg/m³
const G = 9.81; // m/s²
const EARTH_RADIUS_M = 6_371_008.8;
const MAX_SPEED_MS = 180 / 3.6;
/** Longer steps would make braking overshoot and the GPS track cut corners. */
const MAX_STEP_S = 0.5;
/** Bounds a single next() call after a long pause (e.g. a suspended laptop). */
const MAX_ADVANCE_S = 3600;
/** A trip wanders at most about this far from home before turning back. */
const MAX_ROAM_M = 150_000;
/** PHEV charge-sustaining threshold. */
const PHEV_MIN_SOC = 0.15;

function powertrainFor(kind: VehicleKind, rng: Rng): Powertrain {
  const petrolGears = [135, 75, 50, 38, 31, 26];
  const dieselGears = [115, 63, 42, 32, 26, 21];
  switch (kind) {
    case 'petrol':
      return {
        massKg: rng.uniform(1200, 1700), cdA: rng.uniform(0.6, 0.75), rollingResistance: 0.011,
        maxPowerW: rng.uniform(75, 150) * 1000, tankL: rng.pick([45, 50, 55, 60]),
        batteryKwh: 0, workPerLitreJ: 32e6 * 0.28, idleFuelLph: 0.8,
        gearRpmPerKmh: petrolGears, idleRpm: 800, maxRpm: 6500, nominalL100: 6.8, nominalKwh100: 0,
      };
    case 'diesel':
      return {
        massKg: rng.uniform(1400, 1900), cdA: rng.uniform(0.62, 0.8), rollingResistance: 0.011,
        maxPowerW: rng.uniform(85, 170) * 1000, tankL: rng.pick([50, 55, 60, 70]),
        batteryKwh: 0, workPerLitreJ: 36e6 * 0.34, idleFuelLph: 0.6,
        gearRpmPerKmh: dieselGears, idleRpm: 750, maxRpm: 4500, nominalL100: 5.6, nominalKwh100: 0,
      };
    case 'bev':
      return {
        massKg: rng.uniform(1700, 2300), cdA: rng.uniform(0.5, 0.7), rollingResistance: 0.009,
        maxPowerW: rng.uniform(110, 250) * 1000, tankL: 0,
        batteryKwh: rng.pick([50, 58, 64, 77, 82, 95]), workPerLitreJ: 0, idleFuelLph: 0,
        gearRpmPerKmh: [], idleRpm: 0, maxRpm: 0, nominalL100: 0, nominalKwh100: 18,
      };
    case 'phev':
      return {
        massKg: rng.uniform(1700, 2100), cdA: rng.uniform(0.6, 0.75), rollingResistance: 0.01,
        maxPowerW: rng.uniform(150, 250) * 1000, tankL: rng.pick([40, 45, 50]),
        batteryKwh: rng.pick([10.4, 13, 17.9, 19.7]), workPerLitreJ: 32e6 * 0.27, idleFuelLph: 0.8,
        gearRpmPerKmh: petrolGears, idleRpm: 800, maxRpm: 6500, nominalL100: 6.2, nominalKwh100: 19,
      };
  }
}

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));
const round = (v: number, decimals: number): number => {
  const f = 10 ** decimals;
  return Math.round(v * f) / f;
};
const toRad = (deg: number): number => (deg * Math.PI) / 180;
const toDeg = (rad: number): number => (rad * 180) / Math.PI;
const wrapDeg = (deg: number): number => ((deg % 360) + 360) % 360;
/** Signed smallest angle from `from` to `to`, degrees in (-180, 180]. */
const angleDiff = (from: number, to: number): number => {
  const d = wrapDeg(to - from);
  return d > 180 ? d - 360 : d;
};

/** Options that tests may pin instead of drawing them from the seed. */
export interface VehicleModelOptions {
  /** Start near this city (one of the built-in European cities) instead of a random one. */
  city?: string;
  /** Lifetime odometer at the start, km. */
  initialOdometerKm?: number;
}

/**
 * Creates the driving model of one vehicle. The same kind, seed and options
 * always produce the same sequence of samples for the same `nowMs` sequence.
 */
export function createVehicleModel(kind: VehicleKind, seed: number, options: VehicleModelOptions = {}): VehicleModel {
  const rng = createRng(seed);
  const pt = powertrainFor(kind, rng);
  const hasEngine = kind !== 'bev';
  const hasBattery = kind === 'bev' || kind === 'phev';

  const city = CITIES.find((c) => c.name.toLowerCase() === options.city?.toLowerCase()) ?? rng.pick(CITIES);
  // 0 = calm, 1 = sporty: scales acceleration, braking and chosen speeds.
  const aggressiveness = rng.next();
  const accelMax = 1.2 + 1.6 * aggressiveness;
  const brakeComfort = 1.5 + 1.5 * aggressiveness;
  const speedFactor = 0.9 + 0.25 * aggressiveness;
  const jerkMax = 2 + 2 * aggressiveness;

  // Position: a few km around the city centre, heading anywhere.
  const startDistM = rng.uniform(0, 10_000);
  const startBearing = rng.uniform(0, 2 * Math.PI);
  let latRad = toRad(city.lat) + (startDistM * Math.cos(startBearing)) / EARTH_RADIUS_M;
  let lonRad = toRad(city.lon) + (startDistM * Math.sin(startBearing)) / (EARTH_RADIUS_M * Math.cos(toRad(city.lat)));
  const homeLatRad = toRad(city.lat);
  const homeLonRad = toRad(city.lon);
  let headingDeg = rng.uniform(0, 360);
  let headingRate = 0; // deg/s
  let pendingTurnDeg = 0;
  let altitudeM = city.altM + rng.uniform(0, 30);
  let grade = 0; // rise over run
  let accuracyM = rng.uniform(3, 6);

  // Weather: the season is per vehicle, the lapse rate follows the altitude.
  const seasonOffsetC = rng.uniform(-10, 10);
  const baseOutsideC = city.meanTempC + seasonOffsetC;
  let outsideDriftC = rng.gaussian();
  const outsideTempC = (): number => baseOutsideC + outsideDriftC - 0.0065 * (altitudeM - city.altM);

  // Lifetime counters: fleet vehicles are of any age.
  const initialOdo = options.initialOdometerKm ?? round(rng.uniform(500, 160_000), 1);
  let odometerKm = initialOdo;
  let fuelTotalL = 0;
  let fuelCdL = 0;
  let fuelCiL = 0;
  let distCdOffKm = 0;
  let distCdRunKm = 0;
  let distCiKm = 0;
  let gridKwh = 0;
  if (kind === 'petrol' || kind === 'diesel') {
    fuelTotalL = (initialOdo * pt.nominalL100 * rng.uniform(0.95, 1.15)) / 100;
  } else if (kind === 'bev') {
    gridKwh = (initialOdo * pt.nominalKwh100 * rng.uniform(0.95, 1.15)) / 100;
  } else {
    distCdOffKm = initialOdo * rng.uniform(0.3, 0.5);
    distCdRunKm = initialOdo * rng.uniform(0.05, 0.12);
    distCiKm = initialOdo * rng.uniform(0.01, 0.05);
    const csKm = initialOdo - distCdOffKm - distCdRunKm - distCiKm;
    fuelCdL = (distCdRunKm * 5.5) / 100;
    fuelCiL = (distCiKm * 8.5) / 100;
    fuelTotalL = fuelCdL + fuelCiL + (csKm * pt.nominalL100) / 100;
    gridKwh = ((distCdOffKm + distCdRunKm * 0.5) * pt.nominalKwh100) / 100 / 0.9;
  }

  let fuelL = pt.tankL * rng.uniform(0.2, 0.95);
  let batteryKwh = pt.batteryKwh * (kind === 'phev' ? rng.uniform(0.1, 0.95) : rng.uniform(0.3, 0.95));
  let hybridMode: HybridMode = kind === 'phev' && batteryKwh <= PHEV_MIN_SOC * pt.batteryKwh ? 'cs' : 'cd';
  let engineOn = kind === 'petrol' || kind === 'diesel';
  let engineOnSinceS = 0;
  // Moving averages for the vehicle's own range estimate, per 100 km.
  let avgL100 = pt.nominalL100;
  let avgKwh100 = pt.nominalKwh100;

  // Engine temperatures: most trips start cold, some after a short stop.
  const coldStart = rng.chance(0.6);
  let coolantC = coldStart ? outsideTempC() + rng.uniform(0, 3) : rng.uniform(60, 88);
  let oilC = coldStart ? coolantC : coolantC - rng.uniform(0, 10);
  let auxVoltage = 0; // set from the start state below
  let gear = 1;
  let rpm = 0;
  let load = 0;

  let simS = 0;
  let lastMs: number | undefined;

  // Driver state machine.
  let road: Road = rng.chance(0.7) ? 'urban' : 'rural';
  let speedMs = 0;
  let accel = 0;
  let phase: Phase = 'stop';
  let phaseEndsS = rng.uniform(0, 8);
  let targetMs = 0;
  let cruiseWobbleMs = 0;
  let chargePowerKw = 0;
  // Some vehicles are met mid-trip, so a short run already shows varied speeds.
  if (!coldStart && rng.chance(0.5)) {
    road = rng.pick(['urban', 'rural', 'highway'] as const);
    targetMs = cruiseTarget();
    speedMs = targetMs;
    phase = 'cruise';
    phaseEndsS = cruiseDuration();
  }

  function cruiseTarget(): number {
    let kmh: number;
    if (road === 'urban') kmh = rng.uniform(30, 55);
    else if (road === 'rural') kmh = rng.uniform(60, 100);
    else kmh = aggressiveness > 0.7 && rng.chance(0.3) ? rng.uniform(140, 180) : rng.uniform(100, 130);
    return Math.min(MAX_SPEED_MS, (kmh * speedFactor) / 3.6);
  }

  function cruiseDuration(): number {
    if (road === 'urban') return simS + rng.uniform(10, 60);
    if (road === 'rural') return simS + rng.uniform(30, 180);
    return simS + rng.uniform(60, 300);
  }

  function stopDuration(): number {
    return simS + (road === 'urban' ? rng.uniform(5, 60) : rng.uniform(5, 30));
  }

  function goTo(target: number): void {
    targetMs = target;
    phase = target < speedMs ? 'brake' : 'accelerate';
  }

  function maybeChangeRoad(): boolean {
    const u = rng.next();
    const before = road;
    if (road === 'urban' && u < 0.1) road = 'rural';
    else if (road === 'rural' && u < 0.2) road = 'urban';
    else if (road === 'rural' && u < 0.32) road = 'highway';
    else if (road === 'highway' && u < 0.3) road = 'rural';
    if (road === before) return false;
    if (kind === 'phev' && road === 'highway' && hybridMode === 'cd' && soc() < 0.5 && rng.chance(0.15)) {
      hybridMode = 'ci';
    } else if (hybridMode === 'ci' && road !== 'highway') {
      hybridMode = soc() <= PHEV_MIN_SOC ? 'cs' : 'cd';
    }
    return true;
  }

  function soc(): number {
    return pt.batteryKwh > 0 ? batteryKwh / pt.batteryKwh : 0;
  }

  function startStop(): void {
    speedMs = 0;
    accel = 0;
    if (hasEngine && fuelL < 0.08 * pt.tankL) {
      phase = 'refuel';
      phaseEndsS = simS + rng.uniform(120, 300);
    } else if (
      (kind === 'bev' && soc() < 0.12) ||
      (kind === 'phev' && soc() < 0.2 && rng.chance(0.3))
    ) {
      phase = 'charge';
      // Fast charging only where it exists: along highways and trunk roads.
      chargePowerKw = kind === 'phev' ? rng.pick([3.7, 7.4]) : road === 'urban' ? 11 : rng.uniform(50, 150);
      phaseEndsS = Number.POSITIVE_INFINITY;
    } else {
      phase = 'stop';
      phaseEndsS = stopDuration();
    }
  }

  /** Driver: decides the acceleration wanted in this step and moves between phases. */
  function desiredAccel(dt: number): number {
    switch (phase) {
      case 'stop':
      case 'refuel':
      case 'charge':
        return 0;
      case 'accelerate': {
        if (speedMs >= targetMs - 0.3) {
          phase = 'cruise';
          phaseEndsS = cruiseDuration();
          cruiseWobbleMs = 0;
        }
        return clamp(0.8 * (targetMs - speedMs), 0.3, accelMax);
      }
      case 'cruise': {
        // Ornstein-Uhlenbeck wobble: drivers never hold a speed exactly.
        cruiseWobbleMs += (-cruiseWobbleMs / 20) * dt + 0.25 * Math.sqrt(dt) * rng.gaussian();
        cruiseWobbleMs = clamp(cruiseWobbleMs, -3, 3);
        return clamp(0.5 * (targetMs + cruiseWobbleMs - speedMs), -brakeComfort, accelMax);
      }
      case 'brake': {
        if (targetMs === 0 && speedMs < 1.5) return -Math.max(0.4, speedMs);
        if (speedMs <= targetMs + 0.2) {
          phase = 'cruise';
          phaseEndsS = cruiseDuration();
          return 0;
        }
        return -brakeComfort;
      }
    }
  }

  function onPhaseEnd(): void {
    switch (phase) {
      case 'stop':
        maybeChangeRoad();
        goTo(cruiseTarget());
        // Pulling away from a junction often means turning.
        if (road === 'urban' && rng.chance(0.5)) pendingTurnDeg = rng.pick([-90, 90]);
        return;
      case 'refuel':
        fuelL = pt.tankL;
        phase = 'stop';
        phaseEndsS = simS + rng.uniform(5, 30);
        return;
      case 'cruise': {
        if (maybeChangeRoad()) {
          goTo(cruiseTarget());
          return;
        }
        const stopChance = road === 'urban' ? 0.5 : road === 'rural' ? 0.15 : 0.03;
        const needsEnergy = (kind === 'bev' && soc() < 0.12) || (hasEngine && fuelL < 0.08 * pt.tankL);
        goTo(needsEnergy || rng.chance(stopChance) ? 0 : cruiseTarget());
        return;
      }
      default:
        return;
    }
  }

  function stepHeading(dt: number): void {
    if (speedMs < 0.5) return;
    if (pendingTurnDeg !== 0) {
      // Junction turn, at most as fast as 3 m/s² of lateral acceleration allows.
      const maxRate = Math.min(25, toDeg(3 / speedMs));
      const step = Math.sign(pendingTurnDeg) * Math.min(Math.abs(pendingTurnDeg), maxRate * dt);
      headingDeg = wrapDeg(headingDeg + step);
      pendingTurnDeg -= step;
      if (Math.abs(pendingTurnDeg) < 1e-6) pendingTurnDeg = 0;
      return;
    }
    const sigma = road === 'urban' ? 4 : road === 'rural' ? 2 : 0.6;
    headingRate += (-headingRate / 8) * dt + sigma * Math.sqrt(dt) * rng.gaussian();
    const fromHome = haversineM(latRad, lonRad, homeLatRad, homeLonRad);
    if (fromHome > MAX_ROAM_M) {
      const home = bearingDeg(latRad, lonRad, homeLatRad, homeLonRad);
      headingRate += clamp(angleDiff(headingDeg, home), -5, 5) * 0.05 * dt;
    }
    const lateralLimit = toDeg(2 / Math.max(speedMs, 1));
    headingRate = clamp(headingRate, -lateralLimit, lateralLimit);
    headingDeg = wrapDeg(headingDeg + headingRate * dt);
  }

  function stepPosition(distM: number): void {
    const h = toRad(headingDeg);
    latRad += (distM * Math.cos(h)) / EARTH_RADIUS_M;
    lonRad += (distM * Math.sin(h)) / (EARTH_RADIUS_M * Math.cos(latRad));
    grade = clamp(grade + (-grade / 400) * distM + 0.003 * Math.sqrt(distM) * rng.gaussian(), -0.07, 0.07);
    if (altitudeM < 0 && grade < 0) grade = -grade;
    if (altitudeM > 2500 && grade > 0) grade = -grade;
    altitudeM += grade * distM;
  }

  /** Power at the wheels (negative when the car must shed energy), W. */
  function wheelPowerW(v: number, a: number): number {
    if (v <= 0) return 0;
    const inertia = pt.massKg * a * v;
    const aero = 0.5 * AIR_DENSITY * pt.cdA * v * v * v;
    const rolling = pt.rollingResistance * pt.massKg * G * v;
    const climb = pt.massKg * G * grade * v;
    return inertia + aero + rolling + climb;
  }

  /** Heater or air conditioning, plus the 12 V consumers, W. */
  function auxPowerW(): number {
    const t = outsideTempC();
    return 300 + Math.max(0, 18 - t) * 120 + Math.max(0, t - 24) * 100;
  }

  function burnFuel(litres: number, distKm: number): void {
    fuelL = Math.max(0, fuelL - litres);
    fuelTotalL += litres;
    if (kind === 'phev') {
      if (hybridMode === 'cd') {
        fuelCdL += litres;
        if (engineOn) distCdRunKm += distKm;
        else distCdOffKm += distKm;
      } else if (hybridMode === 'ci') {
        fuelCiL += litres;
        distCiKm += distKm;
      }
    }
  }

  function stepEnergy(dt: number, powerW: number, distKm: number): void {
    load = clamp(powerW / pt.maxPowerW, 0, 1);
    const fuelCut = accel < -0.3 && speedMs > 5;
    const engineFuelL = (p: number): number =>
      fuelCut ? 0 : (pt.idleFuelLph / 3600) * dt + (Math.max(0, p) * dt) / pt.workPerLitreJ;

    if (phase === 'refuel') {
      engineOn = false;
      fuelL = Math.min(pt.tankL, fuelL + 0.5 * dt);
      return;
    }
    if (phase === 'charge') {
      engineOn = false;
      const kwh = Math.min((chargePowerKw * dt) / 3600, pt.batteryKwh * 0.8 - batteryKwh);
      if (kwh > 0) {
        batteryKwh += kwh;
        gridKwh += kwh;
      }
      if (batteryKwh >= pt.batteryKwh * 0.8 - 1e-9) {
        if (hybridMode === 'cs') hybridMode = 'cd';
        phase = 'stop';
        phaseEndsS = simS + rng.uniform(10, 60);
      }
      return;
    }

    switch (kind) {
      case 'petrol':
      case 'diesel': {
        engineOn = true;
        burnFuel(engineFuelL(powerW + auxPowerW() * 0.2), distKm);
        return;
      }
      case 'bev': {
        const batteryW = (powerW > 0 ? powerW / 0.9 : powerW * 0.65) + auxPowerW();
        batteryKwh = clamp(batteryKwh - (batteryW * dt) / 3.6e6, 0, pt.batteryKwh);
        return;
      }
      case 'phev': {
        if (hybridMode === 'cd' && soc() <= PHEV_MIN_SOC) hybridMode = 'cs';
        const wasOn = engineOn;
        if (hybridMode === 'ci') {
          engineOn = true;
        } else if (hybridMode === 'cs') {
          engineOn = speedMs > 2 || coolantC < 40;
        } else {
          // Charge-depleting: electric unless the motor alone is not enough, with
          // hysteresis and a minimum run time so the engine does not flicker.
          const needEngine = powerW > 55_000 || speedMs > 37.5;
          const mayStop = powerW < 35_000 && speedMs < 33 && simS - engineOnSinceS > 10;
          engineOn = engineOn ? !mayStop : needEngine;
        }
        if (engineOn && !wasOn) engineOnSinceS = simS;

        let batteryW = auxPowerW() + (powerW < 0 ? powerW * 0.65 : 0);
        if (engineOn) {
          let enginePowerW = powerW;
          if (hybridMode === 'ci') enginePowerW += 12_000; // generator charging the battery
          if (hybridMode === 'ci') batteryW -= 12_000 * 0.9;
          if (hybridMode === 'cs') batteryW *= 0.2; // the engine covers most of the aux load
          burnFuel(engineFuelL(hybridMode === 'cs' ? enginePowerW * 0.85 : enginePowerW), distKm);
        } else {
          if (powerW > 0) batteryW += powerW / 0.9;
          burnFuel(0, distKm);
        }
        const floor = hybridMode === 'cs' ? PHEV_MIN_SOC * pt.batteryKwh * 0.97 : 0;
        batteryKwh = clamp(batteryKwh - (batteryW * dt) / 3.6e6, floor, pt.batteryKwh);
        if (hybridMode === 'ci' && soc() >= 0.6) hybridMode = 'cd';
        return;
      }
    }
  }

  function stepEngine(dt: number): void {
    const t = outsideTempC();
    if (!hasEngine) return;
    if (engineOn) {
      const thermostatC = 88 + 6 * load;
      if (coolantC < thermostatC) coolantC = Math.min(thermostatC, coolantC + (0.06 + 0.35 * load) * dt);
      else coolantC += ((thermostatC - coolantC) * dt) / 30;
      // Oil lags behind the coolant and runs hotter under load.
      const oilTargetC = coolantC + 4 + 18 * load;
      oilC += ((oilTargetC - oilC) * Math.min(dt, 240)) / 240;

      const kmh = speedMs * 3.6;
      const upshiftRpm = (kind === 'diesel' ? 1800 : 2000) + (kind === 'diesel' ? 1500 : 2500) * load;
      const downshiftRpm = kind === 'diesel' ? 1150 : 1300;
      const ratioOf = (g: number): number => pt.gearRpmPerKmh[g - 1] ?? 0;
      const gears = pt.gearRpmPerKmh.length;
      if (kmh < 3) gear = 1;
      while (gear < gears && kmh * ratioOf(gear) > upshiftRpm && kmh * ratioOf(gear + 1) > downshiftRpm) gear++;
      while (gear > 1 && kmh * ratioOf(gear) < downshiftRpm) gear--;
      // A cold engine idles faster.
      const idle = pt.idleRpm + Math.max(0, 40 - coolantC) * 8;
      rpm = clamp(Math.max(idle, kmh * ratioOf(gear)) + 15 * rng.gaussian(), 0, pt.maxRpm);
    } else {
      coolantC += ((t - coolantC) * Math.min(dt, 2400)) / 2400;
      oilC += ((t - oilC) * Math.min(dt, 3000)) / 3000;
      rpm = 0;
    }
  }

  function stepEnvironment(dt: number): void {
    outsideDriftC += (-outsideDriftC / 900) * dt + 0.03 * Math.sqrt(dt) * rng.gaussian();
    const accuracyMean = road === 'urban' ? 7 : 4;
    accuracyM = clamp(accuracyM + ((accuracyMean - accuracyM) / 10) * dt + 0.5 * Math.sqrt(dt) * rng.gaussian(), 1.5, 30);

    auxVoltage += ((auxTargetVoltage() - auxVoltage) * Math.min(dt, 5)) / 5 + 0.02 * Math.sqrt(dt) * rng.gaussian();
    auxVoltage = clamp(auxVoltage, 11.8, 14.8);
  }

  /** 12 V rail: alternator or DC-DC converter while the car is on, resting battery otherwise. */
  function auxTargetVoltage(): number {
    if (phase === 'refuel') return 12.5;
    if (engineOn) return outsideTempC() < 5 ? 14.3 : 14.1;
    if (phase === 'charge') return 13.6;
    return hasBattery ? 13.8 : 12.6;
  }

  function step(dt: number): void {
    simS += dt;
    if (simS >= phaseEndsS) onPhaseEnd();

    const wanted = desiredAccel(dt);
    // Jerk limit keeps the speed curve smooth between phases.
    accel += clamp(wanted - accel, -jerkMax * dt, jerkMax * dt);
    const powerLimited = speedMs > 1 ? Math.min(accel, pt.maxPowerW / (pt.massKg * speedMs)) : accel;
    const v0 = speedMs;
    let v1 = clamp(v0 + powerLimited * dt, 0, MAX_SPEED_MS);
    if (phase === 'brake' && targetMs === 0 && v1 < 0.1) {
      v1 = 0;
      startStop();
    }
    speedMs = v1;
    const distM = ((v0 + v1) / 2) * dt;
    const distKm = distM / 1000;

    stepHeading(dt);
    stepPosition(distM);
    odometerKm += distKm;
    stepEnergy(dt, wheelPowerW((v0 + v1) / 2, powerLimited), distKm);
    stepEngine(dt);
    stepEnvironment(dt);
  }

  // The range estimate divides by consumption averaged over roughly the last
  // 50 km (weighted by distance), like a trip computer: an instantaneous rate
  // would make the range jump with every press of the pedal.
  let fuelAtLastAverage = fuelTotalL;
  let batteryAtLastAverage = batteryKwh;
  function updateAverages(distKm: number): void {
    const fuelUsed = fuelTotalL - fuelAtLastAverage;
    const energyUsed = batteryAtLastAverage - batteryKwh;
    fuelAtLastAverage = fuelTotalL;
    batteryAtLastAverage = batteryKwh;
    if (distKm <= 0) return;
    const w = Math.min(1, distKm / 50);
    if (kind === 'petrol' || kind === 'diesel') avgL100 += w * ((fuelUsed / distKm) * 100 - avgL100);
    // Charging raises the battery energy; only a drop is consumption.
    if (kind === 'bev' && energyUsed > 0) avgKwh100 += w * ((energyUsed / distKm) * 100 - avgKwh100);
  }

  function remainingRangeKm(): number {
    switch (kind) {
      case 'petrol':
      case 'diesel':
        return (fuelL / Math.max(avgL100, 3)) * 100;
      case 'bev':
        return (batteryKwh / Math.max(avgKwh100, 10)) * 100;
      case 'phev': {
        const usableKwh = Math.max(0, batteryKwh - PHEV_MIN_SOC * pt.batteryKwh);
        return (usableKwh / pt.nominalKwh100) * 100 + (fuelL / pt.nominalL100) * 100;
      }
    }
  }

  function sample(): VehicleSample {
    const technical: TechnicalSample = {
      odometerKm: round(odometerKm, 3),
      speedKmh: round(speedMs * 3.6, 1),
      engineRpm: Math.round(rpm),
      outsideTempC: round(outsideTempC(), 1),
      auxBatteryVoltageV: round(auxVoltage, 2),
      remainingRangeKm: Math.round(remainingRangeKm()),
    };
    if (hasEngine) {
      technical.fuelLevelPct = round((100 * fuelL) / pt.tankL, 1);
      technical.coolantTempC = round(coolantC, 1);
      technical.engineOilTempC = round(oilC, 1);
    }
    if (hasBattery) technical.batterySocPct = round(100 * soc(), 1);

    const consumption: ConsumptionSample = { totalDistanceKm: round(odometerKm, 3) };
    if (hasEngine) consumption.totalFuelConsumedL = round(fuelTotalL, 3);
    if (hasBattery) consumption.totalGridEnergyIntoBatteryKwh = round(gridKwh, 3);
    if (kind === 'phev') {
      consumption.totalFuelConsumedChargeDepletingL = round(fuelCdL, 3);
      consumption.totalFuelConsumedChargeIncreasingL = round(fuelCiL, 3);
      consumption.totalDistanceChargeDepletingEngineOffKm = round(distCdOffKm, 3);
      consumption.totalDistanceChargeDepletingEngineRunningKm = round(distCdRunKm, 3);
      consumption.totalDistanceChargeIncreasingKm = round(distCiKm, 3);
    }

    let heading = round(headingDeg, 1);
    if (heading >= 360) heading = 0;
    const location: LocationSample = {
      latitude: round(toDeg(latRad), 6),
      longitude: round(toDeg(lonRad), 6),
      headingDeg: heading,
      altitudeM: round(altitudeM, 1),
      accuracyM: round(accuracyM, 1),
    };
    return { technical, consumption, location };
  }

  // First sample before any driving: set rpm and voltage for the start state.
  stepEngine(0);
  auxVoltage = auxTargetVoltage();

  return {
    kind,
    homeCity: city.name,
    next(nowMs: number): VehicleSample {
      if (lastMs === undefined) {
        lastMs = nowMs;
        return sample();
      }
      let remaining = Math.min((nowMs - lastMs) / 1000, MAX_ADVANCE_S);
      if (remaining <= 0) return sample();
      lastMs = nowMs;
      const odoBefore = odometerKm;
      while (remaining > 1e-9) {
        const dt = Math.min(MAX_STEP_S, remaining);
        step(dt);
        remaining -= dt;
      }
      updateAverages(odometerKm - odoBefore);
      return sample();
    },
  };
}

function haversineM(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const dLat = lat2 - lat1;
  const dLon = lon2 - lon1;
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(lat1) * Math.cos(lat2) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(a)));
}

function bearingDeg(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const y = Math.sin(lon2 - lon1) * Math.cos(lat2);
  const x = Math.cos(lat1) * Math.sin(lat2) - Math.sin(lat1) * Math.cos(lat2) * Math.cos(lon2 - lon1);
  return wrapDeg(toDeg(Math.atan2(y, x)));
}
