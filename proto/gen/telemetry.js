/*eslint-disable block-scoped-var, id-length, no-control-regex, no-magic-numbers, no-prototype-builtins, no-redeclare, no-shadow, no-var, sort-vars*/
import $protobuf from "protobufjs/minimal.js";

// Common aliases
const $Reader = $protobuf.Reader, $Writer = $protobuf.Writer, $util = $protobuf.util;

// Exported root namespace
const $root = $protobuf.roots["default"] || ($protobuf.roots["default"] = {});

export const vehicle = $root.vehicle = (() => {

    /**
     * Namespace vehicle.
     * @exports vehicle
     * @namespace
     */
    const vehicle = {};

    vehicle.v1 = (function() {

        /**
         * Namespace v1.
         * @memberof vehicle
         * @namespace
         */
        const v1 = {};

        v1.TelemetryBatch = (function() {

            /**
             * Properties of a TelemetryBatch.
             * @memberof vehicle.v1
             * @interface ITelemetryBatch
             * @property {string|null} [vin] TelemetryBatch vin
             * @property {Array.<vehicle.v1.ITelemetryRecord>|null} [records] TelemetryBatch records
             */

            /**
             * Constructs a new TelemetryBatch.
             * @memberof vehicle.v1
             * @classdesc Represents a TelemetryBatch.
             * @implements ITelemetryBatch
             * @constructor
             * @param {vehicle.v1.ITelemetryBatch=} [properties] Properties to set
             */
            function TelemetryBatch(properties) {
                this.records = [];
                if (properties)
                    for (let keys = Object.keys(properties), i = 0; i < keys.length; ++i)
                        if (properties[keys[i]] != null && keys[i] !== "__proto__")
                            this[keys[i]] = properties[keys[i]];
            }

            /**
             * TelemetryBatch vin.
             * @member {string} vin
             * @memberof vehicle.v1.TelemetryBatch
             * @instance
             */
            TelemetryBatch.prototype.vin = "";

            /**
             * TelemetryBatch records.
             * @member {Array.<vehicle.v1.ITelemetryRecord>} records
             * @memberof vehicle.v1.TelemetryBatch
             * @instance
             */
            TelemetryBatch.prototype.records = $util.emptyArray;

            /**
             * Encodes the specified TelemetryBatch message. Does not implicitly {@link vehicle.v1.TelemetryBatch.verify|verify} messages.
             * @function encode
             * @memberof vehicle.v1.TelemetryBatch
             * @static
             * @param {vehicle.v1.ITelemetryBatch} message TelemetryBatch message or plain object to encode
             * @param {$protobuf.Writer} [writer] Writer to encode to
             * @returns {$protobuf.Writer} Writer
             */
            TelemetryBatch.encode = function encode(message, writer, q) {
                if (!writer)
                    writer = $Writer.create();
                if (q === undefined)
                    q = 0;
                if (q > $util.recursionLimit)
                    throw Error("max depth exceeded");
                if (message.vin != null && Object.hasOwnProperty.call(message, "vin"))
                    writer.uint32(/* id 1, wireType 2 =*/10).string(message.vin);
                if (message.records != null && message.records.length)
                    for (let i = 0; i < message.records.length; ++i)
                        $root.vehicle.v1.TelemetryRecord.encode(message.records[i], writer.uint32(/* id 2, wireType 2 =*/18).fork(), q + 1).ldelim();
                return writer;
            };

            /**
             * Decodes a TelemetryBatch message from the specified reader or buffer.
             * @function decode
             * @memberof vehicle.v1.TelemetryBatch
             * @static
             * @param {$protobuf.Reader|Uint8Array} reader Reader or buffer to decode from
             * @param {number} [length] Message length if known beforehand
             * @returns {vehicle.v1.TelemetryBatch} TelemetryBatch
             * @throws {Error} If the payload is not a reader or valid buffer
             * @throws {$protobuf.util.ProtocolError} If required fields are missing
             */
            TelemetryBatch.decode = function decode(reader, length, error, long) {
                if (!(reader instanceof $Reader))
                    reader = $Reader.create(reader);
                if (long === undefined)
                    long = 0;
                if (long > $Reader.recursionLimit)
                    throw Error("maximum nesting depth exceeded");
                let end, message;
                if (length === undefined)
                    end = reader.len;
                else {
                    end = reader.pos + length;
                    if (end > reader.len)
                        throw RangeError("index out of range");
                    length = reader.len;
                    reader.len = end;
                }
                message = new $root.vehicle.v1.TelemetryBatch();
                while (reader.pos < end) {
                    let tag = reader.uint32();
                    if (tag === error)
                        break;
                    switch (tag >>> 3) {
                    case 1: {
                            message.vin = reader.string();
                            break;
                        }
                    case 2: {
                            if (!(message.records && message.records.length))
                                message.records = [];
                            message.records.push($root.vehicle.v1.TelemetryRecord.decode(reader, reader.uint32(), undefined, long + 1));
                            break;
                        }
                    default:
                        reader.skipType(tag & 7, long);
                        break;
                    }
                }
                if (length !== undefined) {
                    if (reader.pos !== end)
                        throw RangeError("index out of range");
                    reader.len = length;
                }
                return message;
            };

            /**
             * Gets the default type url for TelemetryBatch
             * @function getTypeUrl
             * @memberof vehicle.v1.TelemetryBatch
             * @static
             * @param {string} [typeUrlPrefix] your custom typeUrlPrefix(default "type.googleapis.com")
             * @returns {string} The default type url
             */
            TelemetryBatch.getTypeUrl = function getTypeUrl(typeUrlPrefix) {
                if (typeUrlPrefix === undefined) {
                    typeUrlPrefix = "type.googleapis.com";
                }
                return typeUrlPrefix + "/vehicle.v1.TelemetryBatch";
            };

            return TelemetryBatch;
        })();

        v1.TelemetryRecord = (function() {

            /**
             * Properties of a TelemetryRecord.
             * @memberof vehicle.v1
             * @interface ITelemetryRecord
             * @property {Long|null} [seq] TelemetryRecord seq
             * @property {Long|null} [recordedAtMs] TelemetryRecord recordedAtMs
             * @property {vehicle.v1.ITechnicalData|null} [technical] TelemetryRecord technical
             * @property {vehicle.v1.IConsumptionData|null} [consumption] TelemetryRecord consumption
             * @property {vehicle.v1.ILocation|null} [location] TelemetryRecord location
             */

            /**
             * Constructs a new TelemetryRecord.
             * @memberof vehicle.v1
             * @classdesc Represents a TelemetryRecord.
             * @implements ITelemetryRecord
             * @constructor
             * @param {vehicle.v1.ITelemetryRecord=} [properties] Properties to set
             */
            function TelemetryRecord(properties) {
                if (properties)
                    for (let keys = Object.keys(properties), i = 0; i < keys.length; ++i)
                        if (properties[keys[i]] != null && keys[i] !== "__proto__")
                            this[keys[i]] = properties[keys[i]];
            }

            /**
             * TelemetryRecord seq.
             * @member {Long} seq
             * @memberof vehicle.v1.TelemetryRecord
             * @instance
             */
            TelemetryRecord.prototype.seq = $util.Long ? $util.Long.fromBits(0,0,true) : 0;

            /**
             * TelemetryRecord recordedAtMs.
             * @member {Long} recordedAtMs
             * @memberof vehicle.v1.TelemetryRecord
             * @instance
             */
            TelemetryRecord.prototype.recordedAtMs = $util.Long ? $util.Long.fromBits(0,0,false) : 0;

            /**
             * TelemetryRecord technical.
             * @member {vehicle.v1.ITechnicalData|null|undefined} technical
             * @memberof vehicle.v1.TelemetryRecord
             * @instance
             */
            TelemetryRecord.prototype.technical = null;

            /**
             * TelemetryRecord consumption.
             * @member {vehicle.v1.IConsumptionData|null|undefined} consumption
             * @memberof vehicle.v1.TelemetryRecord
             * @instance
             */
            TelemetryRecord.prototype.consumption = null;

            /**
             * TelemetryRecord location.
             * @member {vehicle.v1.ILocation|null|undefined} location
             * @memberof vehicle.v1.TelemetryRecord
             * @instance
             */
            TelemetryRecord.prototype.location = null;

            // OneOf field names bound to virtual getters and setters
            let $oneOfFields;

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(TelemetryRecord.prototype, "_technical", {
                get: $util.oneOfGetter($oneOfFields = ["technical"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(TelemetryRecord.prototype, "_consumption", {
                get: $util.oneOfGetter($oneOfFields = ["consumption"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(TelemetryRecord.prototype, "_location", {
                get: $util.oneOfGetter($oneOfFields = ["location"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            /**
             * Encodes the specified TelemetryRecord message. Does not implicitly {@link vehicle.v1.TelemetryRecord.verify|verify} messages.
             * @function encode
             * @memberof vehicle.v1.TelemetryRecord
             * @static
             * @param {vehicle.v1.ITelemetryRecord} message TelemetryRecord message or plain object to encode
             * @param {$protobuf.Writer} [writer] Writer to encode to
             * @returns {$protobuf.Writer} Writer
             */
            TelemetryRecord.encode = function encode(message, writer, q) {
                if (!writer)
                    writer = $Writer.create();
                if (q === undefined)
                    q = 0;
                if (q > $util.recursionLimit)
                    throw Error("max depth exceeded");
                if (message.seq != null && Object.hasOwnProperty.call(message, "seq"))
                    writer.uint32(/* id 1, wireType 0 =*/8).uint64(message.seq);
                if (message.recordedAtMs != null && Object.hasOwnProperty.call(message, "recordedAtMs"))
                    writer.uint32(/* id 2, wireType 0 =*/16).int64(message.recordedAtMs);
                if (message.technical != null && Object.hasOwnProperty.call(message, "technical"))
                    $root.vehicle.v1.TechnicalData.encode(message.technical, writer.uint32(/* id 3, wireType 2 =*/26).fork(), q + 1).ldelim();
                if (message.consumption != null && Object.hasOwnProperty.call(message, "consumption"))
                    $root.vehicle.v1.ConsumptionData.encode(message.consumption, writer.uint32(/* id 4, wireType 2 =*/34).fork(), q + 1).ldelim();
                if (message.location != null && Object.hasOwnProperty.call(message, "location"))
                    $root.vehicle.v1.Location.encode(message.location, writer.uint32(/* id 5, wireType 2 =*/42).fork(), q + 1).ldelim();
                return writer;
            };

            /**
             * Decodes a TelemetryRecord message from the specified reader or buffer.
             * @function decode
             * @memberof vehicle.v1.TelemetryRecord
             * @static
             * @param {$protobuf.Reader|Uint8Array} reader Reader or buffer to decode from
             * @param {number} [length] Message length if known beforehand
             * @returns {vehicle.v1.TelemetryRecord} TelemetryRecord
             * @throws {Error} If the payload is not a reader or valid buffer
             * @throws {$protobuf.util.ProtocolError} If required fields are missing
             */
            TelemetryRecord.decode = function decode(reader, length, error, long) {
                if (!(reader instanceof $Reader))
                    reader = $Reader.create(reader);
                if (long === undefined)
                    long = 0;
                if (long > $Reader.recursionLimit)
                    throw Error("maximum nesting depth exceeded");
                let end, message;
                if (length === undefined)
                    end = reader.len;
                else {
                    end = reader.pos + length;
                    if (end > reader.len)
                        throw RangeError("index out of range");
                    length = reader.len;
                    reader.len = end;
                }
                message = new $root.vehicle.v1.TelemetryRecord();
                while (reader.pos < end) {
                    let tag = reader.uint32();
                    if (tag === error)
                        break;
                    switch (tag >>> 3) {
                    case 1: {
                            message.seq = reader.uint64();
                            break;
                        }
                    case 2: {
                            message.recordedAtMs = reader.int64();
                            break;
                        }
                    case 3: {
                            message.technical = $root.vehicle.v1.TechnicalData.decode(reader, reader.uint32(), undefined, long + 1);
                            break;
                        }
                    case 4: {
                            message.consumption = $root.vehicle.v1.ConsumptionData.decode(reader, reader.uint32(), undefined, long + 1);
                            break;
                        }
                    case 5: {
                            message.location = $root.vehicle.v1.Location.decode(reader, reader.uint32(), undefined, long + 1);
                            break;
                        }
                    default:
                        reader.skipType(tag & 7, long);
                        break;
                    }
                }
                if (length !== undefined) {
                    if (reader.pos !== end)
                        throw RangeError("index out of range");
                    reader.len = length;
                }
                return message;
            };

            /**
             * Gets the default type url for TelemetryRecord
             * @function getTypeUrl
             * @memberof vehicle.v1.TelemetryRecord
             * @static
             * @param {string} [typeUrlPrefix] your custom typeUrlPrefix(default "type.googleapis.com")
             * @returns {string} The default type url
             */
            TelemetryRecord.getTypeUrl = function getTypeUrl(typeUrlPrefix) {
                if (typeUrlPrefix === undefined) {
                    typeUrlPrefix = "type.googleapis.com";
                }
                return typeUrlPrefix + "/vehicle.v1.TelemetryRecord";
            };

            return TelemetryRecord;
        })();

        v1.TechnicalData = (function() {

            /**
             * Properties of a TechnicalData.
             * @memberof vehicle.v1
             * @interface ITechnicalData
             * @property {number|null} [odometerKm] TechnicalData odometerKm
             * @property {number|null} [speedKmh] TechnicalData speedKmh
             * @property {number|null} [fuelLevelPct] TechnicalData fuelLevelPct
             * @property {number|null} [batterySocPct] TechnicalData batterySocPct
             * @property {number|null} [engineRpm] TechnicalData engineRpm
             * @property {number|null} [coolantTempC] TechnicalData coolantTempC
             * @property {number|null} [outsideTempC] TechnicalData outsideTempC
             * @property {number|null} [auxBatteryVoltageV] TechnicalData auxBatteryVoltageV
             * @property {number|null} [remainingRangeKm] TechnicalData remainingRangeKm
             * @property {number|null} [engineOilTempC] TechnicalData engineOilTempC
             */

            /**
             * Constructs a new TechnicalData.
             * @memberof vehicle.v1
             * @classdesc Represents a TechnicalData.
             * @implements ITechnicalData
             * @constructor
             * @param {vehicle.v1.ITechnicalData=} [properties] Properties to set
             */
            function TechnicalData(properties) {
                if (properties)
                    for (let keys = Object.keys(properties), i = 0; i < keys.length; ++i)
                        if (properties[keys[i]] != null && keys[i] !== "__proto__")
                            this[keys[i]] = properties[keys[i]];
            }

            /**
             * TechnicalData odometerKm.
             * @member {number|null|undefined} odometerKm
             * @memberof vehicle.v1.TechnicalData
             * @instance
             */
            TechnicalData.prototype.odometerKm = null;

            /**
             * TechnicalData speedKmh.
             * @member {number|null|undefined} speedKmh
             * @memberof vehicle.v1.TechnicalData
             * @instance
             */
            TechnicalData.prototype.speedKmh = null;

            /**
             * TechnicalData fuelLevelPct.
             * @member {number|null|undefined} fuelLevelPct
             * @memberof vehicle.v1.TechnicalData
             * @instance
             */
            TechnicalData.prototype.fuelLevelPct = null;

            /**
             * TechnicalData batterySocPct.
             * @member {number|null|undefined} batterySocPct
             * @memberof vehicle.v1.TechnicalData
             * @instance
             */
            TechnicalData.prototype.batterySocPct = null;

            /**
             * TechnicalData engineRpm.
             * @member {number|null|undefined} engineRpm
             * @memberof vehicle.v1.TechnicalData
             * @instance
             */
            TechnicalData.prototype.engineRpm = null;

            /**
             * TechnicalData coolantTempC.
             * @member {number|null|undefined} coolantTempC
             * @memberof vehicle.v1.TechnicalData
             * @instance
             */
            TechnicalData.prototype.coolantTempC = null;

            /**
             * TechnicalData outsideTempC.
             * @member {number|null|undefined} outsideTempC
             * @memberof vehicle.v1.TechnicalData
             * @instance
             */
            TechnicalData.prototype.outsideTempC = null;

            /**
             * TechnicalData auxBatteryVoltageV.
             * @member {number|null|undefined} auxBatteryVoltageV
             * @memberof vehicle.v1.TechnicalData
             * @instance
             */
            TechnicalData.prototype.auxBatteryVoltageV = null;

            /**
             * TechnicalData remainingRangeKm.
             * @member {number|null|undefined} remainingRangeKm
             * @memberof vehicle.v1.TechnicalData
             * @instance
             */
            TechnicalData.prototype.remainingRangeKm = null;

            /**
             * TechnicalData engineOilTempC.
             * @member {number|null|undefined} engineOilTempC
             * @memberof vehicle.v1.TechnicalData
             * @instance
             */
            TechnicalData.prototype.engineOilTempC = null;

            // OneOf field names bound to virtual getters and setters
            let $oneOfFields;

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(TechnicalData.prototype, "_odometerKm", {
                get: $util.oneOfGetter($oneOfFields = ["odometerKm"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(TechnicalData.prototype, "_speedKmh", {
                get: $util.oneOfGetter($oneOfFields = ["speedKmh"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(TechnicalData.prototype, "_fuelLevelPct", {
                get: $util.oneOfGetter($oneOfFields = ["fuelLevelPct"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(TechnicalData.prototype, "_batterySocPct", {
                get: $util.oneOfGetter($oneOfFields = ["batterySocPct"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(TechnicalData.prototype, "_engineRpm", {
                get: $util.oneOfGetter($oneOfFields = ["engineRpm"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(TechnicalData.prototype, "_coolantTempC", {
                get: $util.oneOfGetter($oneOfFields = ["coolantTempC"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(TechnicalData.prototype, "_outsideTempC", {
                get: $util.oneOfGetter($oneOfFields = ["outsideTempC"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(TechnicalData.prototype, "_auxBatteryVoltageV", {
                get: $util.oneOfGetter($oneOfFields = ["auxBatteryVoltageV"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(TechnicalData.prototype, "_remainingRangeKm", {
                get: $util.oneOfGetter($oneOfFields = ["remainingRangeKm"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(TechnicalData.prototype, "_engineOilTempC", {
                get: $util.oneOfGetter($oneOfFields = ["engineOilTempC"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            /**
             * Encodes the specified TechnicalData message. Does not implicitly {@link vehicle.v1.TechnicalData.verify|verify} messages.
             * @function encode
             * @memberof vehicle.v1.TechnicalData
             * @static
             * @param {vehicle.v1.ITechnicalData} message TechnicalData message or plain object to encode
             * @param {$protobuf.Writer} [writer] Writer to encode to
             * @returns {$protobuf.Writer} Writer
             */
            TechnicalData.encode = function encode(message, writer, q) {
                if (!writer)
                    writer = $Writer.create();
                if (q === undefined)
                    q = 0;
                if (q > $util.recursionLimit)
                    throw Error("max depth exceeded");
                if (message.odometerKm != null && Object.hasOwnProperty.call(message, "odometerKm"))
                    writer.uint32(/* id 1, wireType 1 =*/9).double(message.odometerKm);
                if (message.speedKmh != null && Object.hasOwnProperty.call(message, "speedKmh"))
                    writer.uint32(/* id 2, wireType 1 =*/17).double(message.speedKmh);
                if (message.fuelLevelPct != null && Object.hasOwnProperty.call(message, "fuelLevelPct"))
                    writer.uint32(/* id 3, wireType 1 =*/25).double(message.fuelLevelPct);
                if (message.batterySocPct != null && Object.hasOwnProperty.call(message, "batterySocPct"))
                    writer.uint32(/* id 4, wireType 1 =*/33).double(message.batterySocPct);
                if (message.engineRpm != null && Object.hasOwnProperty.call(message, "engineRpm"))
                    writer.uint32(/* id 5, wireType 1 =*/41).double(message.engineRpm);
                if (message.coolantTempC != null && Object.hasOwnProperty.call(message, "coolantTempC"))
                    writer.uint32(/* id 6, wireType 1 =*/49).double(message.coolantTempC);
                if (message.outsideTempC != null && Object.hasOwnProperty.call(message, "outsideTempC"))
                    writer.uint32(/* id 7, wireType 1 =*/57).double(message.outsideTempC);
                if (message.auxBatteryVoltageV != null && Object.hasOwnProperty.call(message, "auxBatteryVoltageV"))
                    writer.uint32(/* id 8, wireType 1 =*/65).double(message.auxBatteryVoltageV);
                if (message.remainingRangeKm != null && Object.hasOwnProperty.call(message, "remainingRangeKm"))
                    writer.uint32(/* id 9, wireType 1 =*/73).double(message.remainingRangeKm);
                if (message.engineOilTempC != null && Object.hasOwnProperty.call(message, "engineOilTempC"))
                    writer.uint32(/* id 10, wireType 1 =*/81).double(message.engineOilTempC);
                return writer;
            };

            /**
             * Decodes a TechnicalData message from the specified reader or buffer.
             * @function decode
             * @memberof vehicle.v1.TechnicalData
             * @static
             * @param {$protobuf.Reader|Uint8Array} reader Reader or buffer to decode from
             * @param {number} [length] Message length if known beforehand
             * @returns {vehicle.v1.TechnicalData} TechnicalData
             * @throws {Error} If the payload is not a reader or valid buffer
             * @throws {$protobuf.util.ProtocolError} If required fields are missing
             */
            TechnicalData.decode = function decode(reader, length, error, long) {
                if (!(reader instanceof $Reader))
                    reader = $Reader.create(reader);
                if (long === undefined)
                    long = 0;
                if (long > $Reader.recursionLimit)
                    throw Error("maximum nesting depth exceeded");
                let end, message;
                if (length === undefined)
                    end = reader.len;
                else {
                    end = reader.pos + length;
                    if (end > reader.len)
                        throw RangeError("index out of range");
                    length = reader.len;
                    reader.len = end;
                }
                message = new $root.vehicle.v1.TechnicalData();
                while (reader.pos < end) {
                    let tag = reader.uint32();
                    if (tag === error)
                        break;
                    switch (tag >>> 3) {
                    case 1: {
                            message.odometerKm = reader.double();
                            break;
                        }
                    case 2: {
                            message.speedKmh = reader.double();
                            break;
                        }
                    case 3: {
                            message.fuelLevelPct = reader.double();
                            break;
                        }
                    case 4: {
                            message.batterySocPct = reader.double();
                            break;
                        }
                    case 5: {
                            message.engineRpm = reader.double();
                            break;
                        }
                    case 6: {
                            message.coolantTempC = reader.double();
                            break;
                        }
                    case 7: {
                            message.outsideTempC = reader.double();
                            break;
                        }
                    case 8: {
                            message.auxBatteryVoltageV = reader.double();
                            break;
                        }
                    case 9: {
                            message.remainingRangeKm = reader.double();
                            break;
                        }
                    case 10: {
                            message.engineOilTempC = reader.double();
                            break;
                        }
                    default:
                        reader.skipType(tag & 7, long);
                        break;
                    }
                }
                if (length !== undefined) {
                    if (reader.pos !== end)
                        throw RangeError("index out of range");
                    reader.len = length;
                }
                return message;
            };

            /**
             * Gets the default type url for TechnicalData
             * @function getTypeUrl
             * @memberof vehicle.v1.TechnicalData
             * @static
             * @param {string} [typeUrlPrefix] your custom typeUrlPrefix(default "type.googleapis.com")
             * @returns {string} The default type url
             */
            TechnicalData.getTypeUrl = function getTypeUrl(typeUrlPrefix) {
                if (typeUrlPrefix === undefined) {
                    typeUrlPrefix = "type.googleapis.com";
                }
                return typeUrlPrefix + "/vehicle.v1.TechnicalData";
            };

            return TechnicalData;
        })();

        v1.ConsumptionData = (function() {

            /**
             * Properties of a ConsumptionData.
             * @memberof vehicle.v1
             * @interface IConsumptionData
             * @property {number|null} [totalFuelConsumedL] ConsumptionData totalFuelConsumedL
             * @property {number|null} [totalDistanceKm] ConsumptionData totalDistanceKm
             * @property {number|null} [totalFuelConsumedChargeDepletingL] ConsumptionData totalFuelConsumedChargeDepletingL
             * @property {number|null} [totalFuelConsumedChargeIncreasingL] ConsumptionData totalFuelConsumedChargeIncreasingL
             * @property {number|null} [totalDistanceChargeDepletingEngineOffKm] ConsumptionData totalDistanceChargeDepletingEngineOffKm
             * @property {number|null} [totalDistanceChargeDepletingEngineRunningKm] ConsumptionData totalDistanceChargeDepletingEngineRunningKm
             * @property {number|null} [totalDistanceChargeIncreasingKm] ConsumptionData totalDistanceChargeIncreasingKm
             * @property {number|null} [totalGridEnergyIntoBatteryKwh] ConsumptionData totalGridEnergyIntoBatteryKwh
             */

            /**
             * Constructs a new ConsumptionData.
             * @memberof vehicle.v1
             * @classdesc Represents a ConsumptionData.
             * @implements IConsumptionData
             * @constructor
             * @param {vehicle.v1.IConsumptionData=} [properties] Properties to set
             */
            function ConsumptionData(properties) {
                if (properties)
                    for (let keys = Object.keys(properties), i = 0; i < keys.length; ++i)
                        if (properties[keys[i]] != null && keys[i] !== "__proto__")
                            this[keys[i]] = properties[keys[i]];
            }

            /**
             * ConsumptionData totalFuelConsumedL.
             * @member {number|null|undefined} totalFuelConsumedL
             * @memberof vehicle.v1.ConsumptionData
             * @instance
             */
            ConsumptionData.prototype.totalFuelConsumedL = null;

            /**
             * ConsumptionData totalDistanceKm.
             * @member {number|null|undefined} totalDistanceKm
             * @memberof vehicle.v1.ConsumptionData
             * @instance
             */
            ConsumptionData.prototype.totalDistanceKm = null;

            /**
             * ConsumptionData totalFuelConsumedChargeDepletingL.
             * @member {number|null|undefined} totalFuelConsumedChargeDepletingL
             * @memberof vehicle.v1.ConsumptionData
             * @instance
             */
            ConsumptionData.prototype.totalFuelConsumedChargeDepletingL = null;

            /**
             * ConsumptionData totalFuelConsumedChargeIncreasingL.
             * @member {number|null|undefined} totalFuelConsumedChargeIncreasingL
             * @memberof vehicle.v1.ConsumptionData
             * @instance
             */
            ConsumptionData.prototype.totalFuelConsumedChargeIncreasingL = null;

            /**
             * ConsumptionData totalDistanceChargeDepletingEngineOffKm.
             * @member {number|null|undefined} totalDistanceChargeDepletingEngineOffKm
             * @memberof vehicle.v1.ConsumptionData
             * @instance
             */
            ConsumptionData.prototype.totalDistanceChargeDepletingEngineOffKm = null;

            /**
             * ConsumptionData totalDistanceChargeDepletingEngineRunningKm.
             * @member {number|null|undefined} totalDistanceChargeDepletingEngineRunningKm
             * @memberof vehicle.v1.ConsumptionData
             * @instance
             */
            ConsumptionData.prototype.totalDistanceChargeDepletingEngineRunningKm = null;

            /**
             * ConsumptionData totalDistanceChargeIncreasingKm.
             * @member {number|null|undefined} totalDistanceChargeIncreasingKm
             * @memberof vehicle.v1.ConsumptionData
             * @instance
             */
            ConsumptionData.prototype.totalDistanceChargeIncreasingKm = null;

            /**
             * ConsumptionData totalGridEnergyIntoBatteryKwh.
             * @member {number|null|undefined} totalGridEnergyIntoBatteryKwh
             * @memberof vehicle.v1.ConsumptionData
             * @instance
             */
            ConsumptionData.prototype.totalGridEnergyIntoBatteryKwh = null;

            // OneOf field names bound to virtual getters and setters
            let $oneOfFields;

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(ConsumptionData.prototype, "_totalFuelConsumedL", {
                get: $util.oneOfGetter($oneOfFields = ["totalFuelConsumedL"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(ConsumptionData.prototype, "_totalDistanceKm", {
                get: $util.oneOfGetter($oneOfFields = ["totalDistanceKm"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(ConsumptionData.prototype, "_totalFuelConsumedChargeDepletingL", {
                get: $util.oneOfGetter($oneOfFields = ["totalFuelConsumedChargeDepletingL"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(ConsumptionData.prototype, "_totalFuelConsumedChargeIncreasingL", {
                get: $util.oneOfGetter($oneOfFields = ["totalFuelConsumedChargeIncreasingL"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(ConsumptionData.prototype, "_totalDistanceChargeDepletingEngineOffKm", {
                get: $util.oneOfGetter($oneOfFields = ["totalDistanceChargeDepletingEngineOffKm"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(ConsumptionData.prototype, "_totalDistanceChargeDepletingEngineRunningKm", {
                get: $util.oneOfGetter($oneOfFields = ["totalDistanceChargeDepletingEngineRunningKm"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(ConsumptionData.prototype, "_totalDistanceChargeIncreasingKm", {
                get: $util.oneOfGetter($oneOfFields = ["totalDistanceChargeIncreasingKm"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(ConsumptionData.prototype, "_totalGridEnergyIntoBatteryKwh", {
                get: $util.oneOfGetter($oneOfFields = ["totalGridEnergyIntoBatteryKwh"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            /**
             * Encodes the specified ConsumptionData message. Does not implicitly {@link vehicle.v1.ConsumptionData.verify|verify} messages.
             * @function encode
             * @memberof vehicle.v1.ConsumptionData
             * @static
             * @param {vehicle.v1.IConsumptionData} message ConsumptionData message or plain object to encode
             * @param {$protobuf.Writer} [writer] Writer to encode to
             * @returns {$protobuf.Writer} Writer
             */
            ConsumptionData.encode = function encode(message, writer, q) {
                if (!writer)
                    writer = $Writer.create();
                if (q === undefined)
                    q = 0;
                if (q > $util.recursionLimit)
                    throw Error("max depth exceeded");
                if (message.totalFuelConsumedL != null && Object.hasOwnProperty.call(message, "totalFuelConsumedL"))
                    writer.uint32(/* id 1, wireType 1 =*/9).double(message.totalFuelConsumedL);
                if (message.totalDistanceKm != null && Object.hasOwnProperty.call(message, "totalDistanceKm"))
                    writer.uint32(/* id 2, wireType 1 =*/17).double(message.totalDistanceKm);
                if (message.totalFuelConsumedChargeDepletingL != null && Object.hasOwnProperty.call(message, "totalFuelConsumedChargeDepletingL"))
                    writer.uint32(/* id 3, wireType 1 =*/25).double(message.totalFuelConsumedChargeDepletingL);
                if (message.totalFuelConsumedChargeIncreasingL != null && Object.hasOwnProperty.call(message, "totalFuelConsumedChargeIncreasingL"))
                    writer.uint32(/* id 4, wireType 1 =*/33).double(message.totalFuelConsumedChargeIncreasingL);
                if (message.totalDistanceChargeDepletingEngineOffKm != null && Object.hasOwnProperty.call(message, "totalDistanceChargeDepletingEngineOffKm"))
                    writer.uint32(/* id 5, wireType 1 =*/41).double(message.totalDistanceChargeDepletingEngineOffKm);
                if (message.totalDistanceChargeDepletingEngineRunningKm != null && Object.hasOwnProperty.call(message, "totalDistanceChargeDepletingEngineRunningKm"))
                    writer.uint32(/* id 6, wireType 1 =*/49).double(message.totalDistanceChargeDepletingEngineRunningKm);
                if (message.totalDistanceChargeIncreasingKm != null && Object.hasOwnProperty.call(message, "totalDistanceChargeIncreasingKm"))
                    writer.uint32(/* id 7, wireType 1 =*/57).double(message.totalDistanceChargeIncreasingKm);
                if (message.totalGridEnergyIntoBatteryKwh != null && Object.hasOwnProperty.call(message, "totalGridEnergyIntoBatteryKwh"))
                    writer.uint32(/* id 8, wireType 1 =*/65).double(message.totalGridEnergyIntoBatteryKwh);
                return writer;
            };

            /**
             * Decodes a ConsumptionData message from the specified reader or buffer.
             * @function decode
             * @memberof vehicle.v1.ConsumptionData
             * @static
             * @param {$protobuf.Reader|Uint8Array} reader Reader or buffer to decode from
             * @param {number} [length] Message length if known beforehand
             * @returns {vehicle.v1.ConsumptionData} ConsumptionData
             * @throws {Error} If the payload is not a reader or valid buffer
             * @throws {$protobuf.util.ProtocolError} If required fields are missing
             */
            ConsumptionData.decode = function decode(reader, length, error, long) {
                if (!(reader instanceof $Reader))
                    reader = $Reader.create(reader);
                if (long === undefined)
                    long = 0;
                if (long > $Reader.recursionLimit)
                    throw Error("maximum nesting depth exceeded");
                let end, message;
                if (length === undefined)
                    end = reader.len;
                else {
                    end = reader.pos + length;
                    if (end > reader.len)
                        throw RangeError("index out of range");
                    length = reader.len;
                    reader.len = end;
                }
                message = new $root.vehicle.v1.ConsumptionData();
                while (reader.pos < end) {
                    let tag = reader.uint32();
                    if (tag === error)
                        break;
                    switch (tag >>> 3) {
                    case 1: {
                            message.totalFuelConsumedL = reader.double();
                            break;
                        }
                    case 2: {
                            message.totalDistanceKm = reader.double();
                            break;
                        }
                    case 3: {
                            message.totalFuelConsumedChargeDepletingL = reader.double();
                            break;
                        }
                    case 4: {
                            message.totalFuelConsumedChargeIncreasingL = reader.double();
                            break;
                        }
                    case 5: {
                            message.totalDistanceChargeDepletingEngineOffKm = reader.double();
                            break;
                        }
                    case 6: {
                            message.totalDistanceChargeDepletingEngineRunningKm = reader.double();
                            break;
                        }
                    case 7: {
                            message.totalDistanceChargeIncreasingKm = reader.double();
                            break;
                        }
                    case 8: {
                            message.totalGridEnergyIntoBatteryKwh = reader.double();
                            break;
                        }
                    default:
                        reader.skipType(tag & 7, long);
                        break;
                    }
                }
                if (length !== undefined) {
                    if (reader.pos !== end)
                        throw RangeError("index out of range");
                    reader.len = length;
                }
                return message;
            };

            /**
             * Gets the default type url for ConsumptionData
             * @function getTypeUrl
             * @memberof vehicle.v1.ConsumptionData
             * @static
             * @param {string} [typeUrlPrefix] your custom typeUrlPrefix(default "type.googleapis.com")
             * @returns {string} The default type url
             */
            ConsumptionData.getTypeUrl = function getTypeUrl(typeUrlPrefix) {
                if (typeUrlPrefix === undefined) {
                    typeUrlPrefix = "type.googleapis.com";
                }
                return typeUrlPrefix + "/vehicle.v1.ConsumptionData";
            };

            return ConsumptionData;
        })();

        v1.Location = (function() {

            /**
             * Properties of a Location.
             * @memberof vehicle.v1
             * @interface ILocation
             * @property {number|null} [latitude] Location latitude
             * @property {number|null} [longitude] Location longitude
             * @property {number|null} [headingDeg] Location headingDeg
             * @property {number|null} [altitudeM] Location altitudeM
             * @property {number|null} [accuracyM] Location accuracyM
             */

            /**
             * Constructs a new Location.
             * @memberof vehicle.v1
             * @classdesc Represents a Location.
             * @implements ILocation
             * @constructor
             * @param {vehicle.v1.ILocation=} [properties] Properties to set
             */
            function Location(properties) {
                if (properties)
                    for (let keys = Object.keys(properties), i = 0; i < keys.length; ++i)
                        if (properties[keys[i]] != null && keys[i] !== "__proto__")
                            this[keys[i]] = properties[keys[i]];
            }

            /**
             * Location latitude.
             * @member {number|null|undefined} latitude
             * @memberof vehicle.v1.Location
             * @instance
             */
            Location.prototype.latitude = null;

            /**
             * Location longitude.
             * @member {number|null|undefined} longitude
             * @memberof vehicle.v1.Location
             * @instance
             */
            Location.prototype.longitude = null;

            /**
             * Location headingDeg.
             * @member {number|null|undefined} headingDeg
             * @memberof vehicle.v1.Location
             * @instance
             */
            Location.prototype.headingDeg = null;

            /**
             * Location altitudeM.
             * @member {number|null|undefined} altitudeM
             * @memberof vehicle.v1.Location
             * @instance
             */
            Location.prototype.altitudeM = null;

            /**
             * Location accuracyM.
             * @member {number|null|undefined} accuracyM
             * @memberof vehicle.v1.Location
             * @instance
             */
            Location.prototype.accuracyM = null;

            // OneOf field names bound to virtual getters and setters
            let $oneOfFields;

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(Location.prototype, "_latitude", {
                get: $util.oneOfGetter($oneOfFields = ["latitude"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(Location.prototype, "_longitude", {
                get: $util.oneOfGetter($oneOfFields = ["longitude"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(Location.prototype, "_headingDeg", {
                get: $util.oneOfGetter($oneOfFields = ["headingDeg"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(Location.prototype, "_altitudeM", {
                get: $util.oneOfGetter($oneOfFields = ["altitudeM"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            // Virtual OneOf for proto3 optional field
            Object.defineProperty(Location.prototype, "_accuracyM", {
                get: $util.oneOfGetter($oneOfFields = ["accuracyM"]),
                set: $util.oneOfSetter($oneOfFields)
            });

            /**
             * Encodes the specified Location message. Does not implicitly {@link vehicle.v1.Location.verify|verify} messages.
             * @function encode
             * @memberof vehicle.v1.Location
             * @static
             * @param {vehicle.v1.ILocation} message Location message or plain object to encode
             * @param {$protobuf.Writer} [writer] Writer to encode to
             * @returns {$protobuf.Writer} Writer
             */
            Location.encode = function encode(message, writer, q) {
                if (!writer)
                    writer = $Writer.create();
                if (q === undefined)
                    q = 0;
                if (q > $util.recursionLimit)
                    throw Error("max depth exceeded");
                if (message.latitude != null && Object.hasOwnProperty.call(message, "latitude"))
                    writer.uint32(/* id 1, wireType 1 =*/9).double(message.latitude);
                if (message.longitude != null && Object.hasOwnProperty.call(message, "longitude"))
                    writer.uint32(/* id 2, wireType 1 =*/17).double(message.longitude);
                if (message.headingDeg != null && Object.hasOwnProperty.call(message, "headingDeg"))
                    writer.uint32(/* id 3, wireType 1 =*/25).double(message.headingDeg);
                if (message.altitudeM != null && Object.hasOwnProperty.call(message, "altitudeM"))
                    writer.uint32(/* id 4, wireType 1 =*/33).double(message.altitudeM);
                if (message.accuracyM != null && Object.hasOwnProperty.call(message, "accuracyM"))
                    writer.uint32(/* id 5, wireType 1 =*/41).double(message.accuracyM);
                return writer;
            };

            /**
             * Decodes a Location message from the specified reader or buffer.
             * @function decode
             * @memberof vehicle.v1.Location
             * @static
             * @param {$protobuf.Reader|Uint8Array} reader Reader or buffer to decode from
             * @param {number} [length] Message length if known beforehand
             * @returns {vehicle.v1.Location} Location
             * @throws {Error} If the payload is not a reader or valid buffer
             * @throws {$protobuf.util.ProtocolError} If required fields are missing
             */
            Location.decode = function decode(reader, length, error, long) {
                if (!(reader instanceof $Reader))
                    reader = $Reader.create(reader);
                if (long === undefined)
                    long = 0;
                if (long > $Reader.recursionLimit)
                    throw Error("maximum nesting depth exceeded");
                let end, message;
                if (length === undefined)
                    end = reader.len;
                else {
                    end = reader.pos + length;
                    if (end > reader.len)
                        throw RangeError("index out of range");
                    length = reader.len;
                    reader.len = end;
                }
                message = new $root.vehicle.v1.Location();
                while (reader.pos < end) {
                    let tag = reader.uint32();
                    if (tag === error)
                        break;
                    switch (tag >>> 3) {
                    case 1: {
                            message.latitude = reader.double();
                            break;
                        }
                    case 2: {
                            message.longitude = reader.double();
                            break;
                        }
                    case 3: {
                            message.headingDeg = reader.double();
                            break;
                        }
                    case 4: {
                            message.altitudeM = reader.double();
                            break;
                        }
                    case 5: {
                            message.accuracyM = reader.double();
                            break;
                        }
                    default:
                        reader.skipType(tag & 7, long);
                        break;
                    }
                }
                if (length !== undefined) {
                    if (reader.pos !== end)
                        throw RangeError("index out of range");
                    reader.len = length;
                }
                return message;
            };

            /**
             * Gets the default type url for Location
             * @function getTypeUrl
             * @memberof vehicle.v1.Location
             * @static
             * @param {string} [typeUrlPrefix] your custom typeUrlPrefix(default "type.googleapis.com")
             * @returns {string} The default type url
             */
            Location.getTypeUrl = function getTypeUrl(typeUrlPrefix) {
                if (typeUrlPrefix === undefined) {
                    typeUrlPrefix = "type.googleapis.com";
                }
                return typeUrlPrefix + "/vehicle.v1.Location";
            };

            return Location;
        })();

        return v1;
    })();

    return vehicle;
})();

export { $root as default };
