// Reason codes of the gateway. Stored with quarantined data, counted in metrics,
// logged on refusals; stable: operators and tests match on them.
export const GW_ERR = {
  /** The payload is not a TelemetryBatch. */
  DECODE: 'GW_ERR_DECODE',
  /** The payload is larger than MAX_PAYLOAD_BYTES. */
  PAYLOAD_TOO_LARGE: 'GW_ERR_PAYLOAD_TOO_LARGE',
  /** More records in one message than MAX_RECORDS_PER_MESSAGE. */
  TOO_MANY_RECORDS: 'GW_ERR_TOO_MANY_RECORDS',
  /** The payload's vin is not the authenticated VIN. */
  VIN_MISMATCH: 'GW_ERR_VIN_MISMATCH',
  /** recorded_at_ms further in the future than MAX_CLOCK_SKEW_MS. */
  RECORDED_IN_FUTURE: 'GW_ERR_RECORDED_IN_FUTURE',
  /** recorded_at_ms older than MAX_RECORD_AGE_MS (or before 2000). */
  RECORDED_TOO_OLD: 'GW_ERR_RECORDED_TOO_OLD',
  /** seq beyond 2^53 (or negative): it could not be stored exactly. */
  BAD_SEQ: 'GW_ERR_BAD_SEQ',
  /** A value that is NaN or infinite. */
  NOT_FINITE: 'GW_ERR_NOT_FINITE',
  /** A value outside its physical range. */
  OUT_OF_RANGE: 'GW_ERR_OUT_OF_RANGE',
  /** The database refused the message's rows (not an outage). */
  STORAGE_REJECTED: 'GW_ERR_STORAGE_REJECTED',
  /** Connection refused: unknown VIN or wrong secret. */
  BAD_CREDENTIALS: 'GW_ERR_BAD_CREDENTIALS',
  /** Connection refused unchecked: too many failed authentications from the source address. */
  AUTH_RATE_LIMITED: 'GW_ERR_AUTH_RATE_LIMITED',
  /** Connection refused: the client certificate names another VIN (or none). */
  CERT_MISMATCH: 'GW_ERR_CERT_MISMATCH',
  /** Connection refused: client id is not the username (VIN). */
  CLIENT_ID_MISMATCH: 'GW_ERR_CLIENT_ID_MISMATCH',
  /** Publish to a topic other than the vehicle's own telemetry topic. */
  TOPIC_FORBIDDEN: 'GW_ERR_TOPIC_FORBIDDEN',
  /** A SUBSCRIBE: vehicles have no downlink, so every filter gets SUBACK 0x80. */
  SUBSCRIBE_FORBIDDEN: 'GW_ERR_SUBSCRIBE_FORBIDDEN',
  /** A PUBLISH with QoS 2: telemetry is QoS 0 or 1; the connection is closed. */
  QOS2_REFUSED: 'GW_ERR_QOS2_REFUSED',
  /** The first packet (CONNECT) announced more than MQTT_MAX_CONNECT_BYTES: closed before it is buffered. */
  CONNECT_TOO_LARGE: 'GW_ERR_CONNECT_TOO_LARGE',
  /** More than MQTT_MAX_CONNECTIONS_PER_ADDRESS connections from one source address (IPv6: one /64). */
  TOO_MANY_CONNECTIONS: 'GW_ERR_TOO_MANY_CONNECTIONS',
  /** Unauthenticated sockets together hold MQTT_PREAUTH_MAX_BYTES already: this one is closed. */
  PREAUTH_BUDGET: 'GW_ERR_PREAUTH_BUDGET',
  /** Client certificates are required (MQTT_REQUIRE_CLIENT_CERT): a login by secret alone is refused. */
  CERT_REQUIRED: 'GW_ERR_CERT_REQUIRED',
  /** The vehicle's secret was rotated: sessions opened with the old one are closed. */
  SECRET_ROTATED: 'GW_ERR_SECRET_ROTATED',
  /** An MQTT packet over MAX_PACKET_BYTES: the connection is closed. */
  PACKET_TOO_LARGE: 'GW_ERR_PACKET_TOO_LARGE',
  /** The database is unavailable: no PUBACK, the vehicle resends. */
  STORAGE_UNAVAILABLE: 'GW_ERR_STORAGE_UNAVAILABLE',
  /** The gateway is shutting down. */
  SHUTTING_DOWN: 'GW_ERR_SHUTTING_DOWN',
} as const;

export type GatewayErrorCode = (typeof GW_ERR)[keyof typeof GW_ERR];

export class GatewayError extends Error {
  readonly code: GatewayErrorCode;
  constructor(code: GatewayErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = 'GatewayError';
  }
}
