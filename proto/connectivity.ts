// Connectivity (issue 26): a vehicle's MQTT connections as the data category `connectivity`,
// beside the telemetry groups. The shapes the broker reports, storage records and the API
// answers with. Types and constants only.
import { GROUPS, type Group } from './fields.ts';

/** Why a connection ended. */
export const DISCONNECT_REASONS = [
  /** The vehicle sent DISCONNECT (MQTT-3.14). */
  'clean',
  /** Nothing arrived for 1.5 × the keep-alive the vehicle asked for (MQTT-3.1.2-24). */
  'keepalive_timeout',
  /** The same VIN connected again on the same instance (MQTT-3.1.4-2). */
  'taken_over',
  /** A login for this VIN failed its check (wrong secret): no session was opened. */
  'refused',
  /** The socket closed or failed without DISCONNECT. */
  'connection_lost',
  /** The gateway closed it (a protocol violation, a rotated secret). */
  'closed_by_gateway',
  /** The instance holding it shut down. */
  'shutdown',
  /** The instance holding it died (found by another instance: its database session ended). */
  'instance_lost',
] as const;
export type DisconnectReason = (typeof DISCONNECT_REASONS)[number];

/** Every data category: the telemetry groups, then `connectivity` (not a telemetry column group). */
export const DATA_CATEGORIES = [...GROUPS, 'connectivity'] as const;
export type DataCategory = (typeof DATA_CATEGORIES)[number];

/** The telemetry groups among `categories`, in the contract's order. */
export function telemetryGroups(categories: readonly string[]): Group[] {
  return GROUPS.filter((g) => categories.includes(g));
}

/** GET /v1/vehicles/{vin}/status, and the stream's `event: status`. */
export interface ConnectivityStatus {
  vin: string;
  /** A connection of the vehicle is open on a live gateway instance. */
  online: boolean;
  /** Online: when the current connection opened; offline: when the last one ended (null: never seen in the window). */
  since: Date | null;
  /** The vehicle's latest connectivity event (a connect, or a disconnect); null: none. */
  lastSeenAt: Date | null;
}

/** One connection as exported (connectivity.ndjson of the CarData ZIP). */
export interface ConnectionRecord {
  vin: string;
  connectedAt: Date;
  /** null while open. */
  disconnectedAt: Date | null;
  reason: DisconnectReason | null;
  /** Short sessions folded into this row (flapping); 0: one session. */
  coalesced: number;
}

/** A time window of data, [from, to); `to` null: open. */
export interface ConnectivityWindow {
  from: Date;
  to: Date | null;
}

/** What the API reads (storage implements it; api/ports.ts names it). */
export interface ConnectivityStore {
  /** The vehicle's status as seen inside the windows (times clipped to them). */
  status(vin: string, windows: readonly ConnectivityWindow[]): Promise<ConnectivityStatus>;
  /** Connections overlapping the windows, oldest first. */
  connections(vin: string, windows: readonly ConnectivityWindow[]): Promise<ConnectionRecord[]>;
}
