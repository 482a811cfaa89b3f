// Telemetry samples of the simulated fleet, shared by the load generator (wire
// templates) and the database ceiling (rows of the same shape): the simulator's own
// driving model, a few minutes into a trip, one powertrain per vehicle in turn.
import { createVehicleModel, VEHICLE_KINDS, type VehicleSample } from '../simulator/model.ts';

export interface FleetSample {
  technical: VehicleSample['technical'];
  consumption: VehicleSample['consumption'];
  location: VehicleSample['location'] | null;
}

/** n consecutive samples (1 s apart) of vehicle i; location null when withLocation is false. */
export function samplesFor(i: number, n: number, withLocation = true): FleetSample[] {
  const kind = VEHICLE_KINDS[i % VEHICLE_KINDS.length]!;
  const model = createVehicleModel(kind, 1000 + i);
  const t0 = Date.now() - 3_600_000;
  model.next(t0);
  const out: FleetSample[] = [];
  for (let k = 0; k < n; k++) {
    const s = model.next(t0 + 120_000 + k * 1000);
    out.push({ technical: s.technical, consumption: s.consumption, location: withLocation ? s.location : null });
  }
  return out;
}
