// One MQTT message in, rows out: decode → validate → privacy filter → batch writer.
// The returned promise settles when the message may be acknowledged: for QoS 1 once
// every record is durable (stored or quarantined), for QoS 0 as soon as the writer has
// room. It rejects only when the message must NOT be acknowledged (shutdown).
import { createHash } from 'node:crypto';
import { TelemetryBatch, TelemetryRecord, type ITelemetryRecord } from '../proto/index.ts';
import { filterFor } from '../filters/privacy.ts';
import type { ConsentCache, ConsentTimeline } from './consent-cache.ts';
import { GW_ERR, GatewayError, type GatewayErrorCode } from './errors.ts';
import { longToNumber, validateRecord } from './validate.ts';
import type { GatewayMetrics, QuarantineRowOut, TelemetryRowOut, TelemetrySink } from './ports.ts';

export interface IngestLimits {
  /** Payloads larger than this are quarantined without their bytes. */
  maxPayloadBytes: number;
  /** Messages with more records than this are quarantined whole, without their bytes. */
  maxRecordsPerMessage: number;
  maxClockSkewMs: number;
  maxRecordAgeMs: number;
}

export interface Ingest {
  handle(vin: string, payload: Buffer, qos: 0 | 1 | 2): Promise<void>;
  /** Stops waiting for the database: messages still waiting for consent are refused (not acknowledged). */
  close(): void;
}

export interface IngestDeps {
  sink: TelemetrySink;
  consents: ConsentCache;
  limits: IngestLimits;
  metrics: GatewayMetrics;
  now?: () => number;
  /** Called for message-level failures worth a log line (never with payload contents). */
  onQuarantine?: (vin: string, reason: string, detail: string) => void;
  /** Called when consent could not be read and the message waits for the database. */
  onConsentUnavailable?: (vin: string, err: Error) => void;
}

function dedupeKey(vin: string, reason: string, bytes: Uint8Array): Buffer {
  return createHash('sha256').update(vin).update('\0').update(reason).update('\0').update(bytes).digest();
}

/**
 * Whether raw bytes (which may hold a position) may be kept: the stricter of the consent
 * when measured and when processed, as the filter applies it. For bytes whose measurement
 * times are unknown (undecodable, or not all safe integers) every period still in the
 * horizon must have allowed location.
 */
export function rawBytesAllowed(tl: ConsentTimeline, recordedAtMs: readonly number[] | null): boolean {
  if (!tl.current().location) return false;
  if (recordedAtMs === null) return tl.periods.every((p) => p.location);
  return recordedAtMs.every((t) => tl.stateFor(t).location);
}

/** The measurement times of a decoded batch, or null when one is missing or not exact. */
function batchTimes(records: readonly ITelemetryRecord[]): number[] | null {
  const out: number[] = [];
  for (const r of records) {
    const t = longToNumber(r.recordedAtMs);
    if (t === null || r.recordedAtMs == null) return null;
    out.push(t);
  }
  return out;
}

export function createIngest(deps: IngestDeps): Ingest {
  const { sink, consents, limits, metrics } = deps;
  const now = deps.now ?? Date.now;

  function messageQuarantine(vin: string, reason: GatewayErrorCode, detail: string, payload: Buffer, keepBytes: boolean): QuarantineRowOut {
    metrics.quarantined(reason, 1);
    deps.onQuarantine?.(vin, reason, detail);
    return {
      vin,
      reason,
      detail,
      seq: null,
      recordedAtMs: null,
      payload: keepBytes ? payload : null,
      payloadBytes: payload.length,
      dedupeKey: dedupeKey(vin, reason, payload),
    };
  }

  let closed = false;
  const closeWaiters = new Set<() => void>();

  /**
   * The VIN's consent. When the database cannot tell (outage), the message waits and
   * retries: filtering with a state that may have missed an opt-out is not an option,
   * and neither is dropping the vehicle (its held PUBACK already stops its socket).
   */
  async function timeline(vin: string): Promise<ConsentTimeline> {
    const cached = consents.peek(vin);
    if (cached) return cached;
    let delay = 50;
    for (;;) {
      try {
        return await consents.load(vin);
      } catch (err) {
        if (closed) throw new GatewayError(GW_ERR.SHUTTING_DOWN, 'not processed: the gateway is shutting down');
        deps.onConsentUnavailable?.(vin, err as Error);
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            closeWaiters.delete(resolve);
            resolve();
          }, delay);
          closeWaiters.add(() => {
            clearTimeout(t);
            resolve();
          });
        });
        delay = Math.min(delay * 2, 2000);
      }
    }
  }

  async function build(vin: string, payload: Buffer): Promise<{ telemetry: TelemetryRowOut[]; quarantine: QuarantineRowOut[] }> {
    const telemetry: TelemetryRowOut[] = [];
    const quarantine: QuarantineRowOut[] = [];
    if (payload.length > limits.maxPayloadBytes) {
      // Bytes not kept: storing them would let anyone fill the quarantine.
      quarantine.push(messageQuarantine(vin, GW_ERR.PAYLOAD_TOO_LARGE, `${payload.length} bytes > ${limits.maxPayloadBytes}`, payload, false));
      return { telemetry, quarantine };
    }
    const tl = await timeline(vin);
    // Raw bytes may contain a position: kept only if location processing was allowed both
    // when they were measured and now (when unknown: throughout the horizon).
    let batch: { vin: string; records: ITelemetryRecord[] };
    try {
      batch = TelemetryBatch.decode(payload);
    } catch (err) {
      quarantine.push(messageQuarantine(vin, GW_ERR.DECODE, (err as Error).message.slice(0, 200), payload, rawBytesAllowed(tl, null)));
      return { telemetry, quarantine };
    }
    if (batch.vin !== vin) {
      // The authenticated identity wins; a payload naming another vehicle is not trusted.
      const keepRaw = rawBytesAllowed(tl, batchTimes(batch.records));
      quarantine.push(messageQuarantine(vin, GW_ERR.VIN_MISMATCH, `payload vin ${JSON.stringify(batch.vin.slice(0, 32))} is not the authenticated vin`, payload, keepRaw));
      return { telemetry, quarantine };
    }
    if (batch.records.length > limits.maxRecordsPerMessage) {
      // Quarantined as one row: thousands of tiny invalid records must not become thousands of rows.
      quarantine.push(
        messageQuarantine(vin, GW_ERR.TOO_MANY_RECORDS, `${batch.records.length} records > ${limits.maxRecordsPerMessage}; split the batch`, payload, false),
      );
      return { telemetry, quarantine };
    }
    const t = now();
    for (const rec0 of batch.records) {
      const recMs = Number(rec0.recordedAtMs ?? 0);
      const state = Number.isSafeInteger(recMs) ? tl.stateFor(recMs) : tl.current();
      // A refused position is dropped before anything looks at it: its value must not
      // reach a quarantine detail, a log line or any table, not even as "out of range".
      const rec: ITelemetryRecord = state.location || rec0.location == null ? rec0 : { seq: rec0.seq ?? null, recordedAtMs: rec0.recordedAtMs ?? null, technical: rec0.technical ?? null, consumption: rec0.consumption ?? null, location: null };
      const v = validateRecord(rec, t, limits);
      if (!v.ok) {
        // The record is kept in quarantine as re-encoded bytes, without its location
        // when that was refused when measured or now.
        const copy: ITelemetryRecord = { seq: rec.seq ?? null, recordedAtMs: rec.recordedAtMs ?? null };
        if (rec.technical) copy.technical = rec.technical;
        if (rec.consumption) copy.consumption = rec.consumption;
        if (rec.location && state.location) copy.location = rec.location;
        const bytes = Buffer.from(TelemetryRecord.encode(copy).finish());
        const seq = Number(rec.seq ?? 0);
        metrics.quarantined(v.reason, 1);
        quarantine.push({
          vin,
          reason: v.reason,
          detail: v.detail,
          seq: Number.isSafeInteger(seq) ? seq : null,
          // Kept only inside PostgreSQL's timestamptz range (4713 BC to 294276 AD), narrower than int64.
          recordedAtMs: Number.isSafeInteger(recMs) && recMs >= -210_866_803_200_000 && recMs < 9_224_318_016_000_000 ? recMs : null,
          payload: bytes,
          payloadBytes: bytes.length,
          dedupeKey: dedupeKey(vin, v.reason, bytes),
        });
        continue;
      }
      const f = filterFor(tl.stateFor(v.recordedAtMs))({
        vin,
        seq: v.seq,
        recordedAtMs: v.recordedAtMs,
        technical: rec.technical ?? null,
        consumption: rec.consumption ?? null,
        location: rec.location ?? null,
      });
      telemetry.push(f as TelemetryRowOut);
    }
    return { telemetry, quarantine };
  }

  async function writeDurably(vin: string, payload: Buffer, item: { telemetry: TelemetryRowOut[]; quarantine: QuarantineRowOut[] }): Promise<void> {
    try {
      await sink.write(item);
      if (item.telemetry.length) metrics.recordsStored(item.telemetry.length);
    } catch (err) {
      if (sink.isRejected(err)) {
        // The database refused these rows (not an outage): resending would not help, so
        // the message goes to quarantine and is acknowledged.
        const tl = consents.peek(vin);
        const keep = tl ? rawBytesAllowed(tl, null) : false;
        await sink.write({ telemetry: [], quarantine: [messageQuarantine(vin, GW_ERR.STORAGE_REJECTED, (err as Error).message.slice(0, 200), payload, keep)] });
        return;
      }
      throw new GatewayError(GW_ERR.SHUTTING_DOWN, 'not written: the gateway is shutting down');
    }
  }

  return {
    async handle(vin, payload, qos) {
      metrics.messageReceived(qos);
      const item = await build(vin, payload);
      const done = writeDurably(vin, payload, item);
      if (qos === 0) {
        // No acknowledgement to hold, but still backpressure: wait while the writer is full.
        done.catch(() => {});
        if (!sink.hasRoom(vin)) await sink.whenRoom(vin);
        return;
      }
      await done;
    },
    close() {
      closed = true;
      for (const f of closeWaiters) f();
      closeWaiters.clear();
    },
  };
}
