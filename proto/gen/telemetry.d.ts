import * as $protobuf from "protobufjs";
import Long = require("long");
export namespace vehicle {

    namespace v1 {

        interface ITelemetryBatch {
            vin?: (string|null);
            records?: (vehicle.v1.ITelemetryRecord[]|null);
        }

        class TelemetryBatch implements ITelemetryBatch {
            constructor(properties?: vehicle.v1.ITelemetryBatch);
            public vin: string;
            public records: vehicle.v1.ITelemetryRecord[];
            public static encode(message: vehicle.v1.ITelemetryBatch, writer?: $protobuf.Writer): $protobuf.Writer;
            public static decode(reader: ($protobuf.Reader|Uint8Array), length?: number): vehicle.v1.TelemetryBatch;
            public static getTypeUrl(typeUrlPrefix?: string): string;
        }

        interface ITelemetryRecord {
            seq?: (Long|null);
            recordedAtMs?: (Long|null);
            technical?: (vehicle.v1.ITechnicalData|null);
            consumption?: (vehicle.v1.IConsumptionData|null);
            location?: (vehicle.v1.ILocation|null);
        }

        class TelemetryRecord implements ITelemetryRecord {
            constructor(properties?: vehicle.v1.ITelemetryRecord);
            public seq: Long;
            public recordedAtMs: Long;
            public technical?: (vehicle.v1.ITechnicalData|null);
            public consumption?: (vehicle.v1.IConsumptionData|null);
            public location?: (vehicle.v1.ILocation|null);
            public static encode(message: vehicle.v1.ITelemetryRecord, writer?: $protobuf.Writer): $protobuf.Writer;
            public static decode(reader: ($protobuf.Reader|Uint8Array), length?: number): vehicle.v1.TelemetryRecord;
            public static getTypeUrl(typeUrlPrefix?: string): string;
        }

        interface ITechnicalData {
            odometerKm?: (number|null);
            speedKmh?: (number|null);
            fuelLevelPct?: (number|null);
            batterySocPct?: (number|null);
            engineRpm?: (number|null);
            coolantTempC?: (number|null);
            outsideTempC?: (number|null);
            auxBatteryVoltageV?: (number|null);
            remainingRangeKm?: (number|null);
            engineOilTempC?: (number|null);
        }

        class TechnicalData implements ITechnicalData {
            constructor(properties?: vehicle.v1.ITechnicalData);
            public odometerKm?: (number|null);
            public speedKmh?: (number|null);
            public fuelLevelPct?: (number|null);
            public batterySocPct?: (number|null);
            public engineRpm?: (number|null);
            public coolantTempC?: (number|null);
            public outsideTempC?: (number|null);
            public auxBatteryVoltageV?: (number|null);
            public remainingRangeKm?: (number|null);
            public engineOilTempC?: (number|null);
            public static encode(message: vehicle.v1.ITechnicalData, writer?: $protobuf.Writer): $protobuf.Writer;
            public static decode(reader: ($protobuf.Reader|Uint8Array), length?: number): vehicle.v1.TechnicalData;
            public static getTypeUrl(typeUrlPrefix?: string): string;
        }

        interface IConsumptionData {
            totalFuelConsumedL?: (number|null);
            totalDistanceKm?: (number|null);
            totalFuelConsumedChargeDepletingL?: (number|null);
            totalFuelConsumedChargeIncreasingL?: (number|null);
            totalDistanceChargeDepletingEngineOffKm?: (number|null);
            totalDistanceChargeDepletingEngineRunningKm?: (number|null);
            totalDistanceChargeIncreasingKm?: (number|null);
            totalGridEnergyIntoBatteryKwh?: (number|null);
        }

        class ConsumptionData implements IConsumptionData {
            constructor(properties?: vehicle.v1.IConsumptionData);
            public totalFuelConsumedL?: (number|null);
            public totalDistanceKm?: (number|null);
            public totalFuelConsumedChargeDepletingL?: (number|null);
            public totalFuelConsumedChargeIncreasingL?: (number|null);
            public totalDistanceChargeDepletingEngineOffKm?: (number|null);
            public totalDistanceChargeDepletingEngineRunningKm?: (number|null);
            public totalDistanceChargeIncreasingKm?: (number|null);
            public totalGridEnergyIntoBatteryKwh?: (number|null);
            public static encode(message: vehicle.v1.IConsumptionData, writer?: $protobuf.Writer): $protobuf.Writer;
            public static decode(reader: ($protobuf.Reader|Uint8Array), length?: number): vehicle.v1.ConsumptionData;
            public static getTypeUrl(typeUrlPrefix?: string): string;
        }

        interface ILocation {
            latitude?: (number|null);
            longitude?: (number|null);
            headingDeg?: (number|null);
            altitudeM?: (number|null);
            accuracyM?: (number|null);
        }

        class Location implements ILocation {
            constructor(properties?: vehicle.v1.ILocation);
            public latitude?: (number|null);
            public longitude?: (number|null);
            public headingDeg?: (number|null);
            public altitudeM?: (number|null);
            public accuracyM?: (number|null);
            public static encode(message: vehicle.v1.ILocation, writer?: $protobuf.Writer): $protobuf.Writer;
            public static decode(reader: ($protobuf.Reader|Uint8Array), length?: number): vehicle.v1.Location;
            public static getTypeUrl(typeUrlPrefix?: string): string;
        }
    }
}
