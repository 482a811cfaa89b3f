// What the gateway needs from the outside, as interfaces. app/ hands in the storage
// implementations; the gateway never imports storage/ itself.

import type { ConsentPeriod } from '../proto/consent.ts';
import type { QuarantineRow, TelemetryRow, WriteItem } from '../proto/records.ts';
import type { DisconnectReason } from '../proto/connectivity.ts';

/** The rows the gateway hands the writer (proto/records.ts). */
export type TelemetryRowOut = TelemetryRow;
export type QuarantineRowOut = QuarantineRow;

/** The batch writer, as the gateway sees it. */
export interface TelemetrySink {
  /**
   * Resolves once durable. Rejects when the rows are refused (bad data: `isRejected(err)`
   * is true) or when the sink is closed (`isRejected(err)` is false).
   */
  write(item: WriteItem): Promise<void>;
  /** Tells a refusal of the data apart from any other rejection of write(). */
  isRejected(err: unknown): boolean;
  /** Room for more rows of this VIN (with shards: in its shard's writer; without: the one writer's). */
  hasRoom(vin?: string): boolean;
  whenRoom(vin?: string): Promise<void>;
}

/** A consent state and when it came into force (the contract's shape). */
export type ConsentPeriodIn = ConsentPeriod;

export interface ConsentSource {
  timeline(vin: string, sinceMs: number): Promise<ConsentPeriodIn[]>;
}

export interface CredentialSource {
  getCredentials(vin: string): Promise<{ vin: string; secretHash: string } | null>;
}

/** Counters and histograms the gateway reports; app/ wires them to Prometheus. */
export interface GatewayMetrics {
  messageReceived(qos: number): void;
  recordsStored(n: number): void;
  quarantined(reason: string, n: number): void;
  refused(reason: string): void;
  pubackLatency(ms: number): void;
  connected(delta: number): void;
  consentCache(event: 'hit' | 'miss' | 'reload'): void;
}

/**
 * Where the broker reports each vehicle's connections (connectivity, issue 26). Called
 * synchronously from the broker's events; the implementation writes in the background and
 * never holds the broker up. `session`: an id the broker gives each authenticated connection.
 */
export interface ConnectivitySink {
  connected(session: string, vin: string, at: Date): void;
  disconnected(session: string, vin: string, connectedAt: Date, at: Date, reason: DisconnectReason): void;
  /** A login for a provisioned VIN failed its check. */
  refused(vin: string, at: Date): void;
}
