// One batch writer per shard, behind the single writer's interface (README "Sharding").
//
// An item (the rows of one MQTT message: one VIN) goes to the writer of its VIN's shard,
// so its promise, and with it the PUBACK, resolves after THAT shard commits. Each shard's
// writer has its own queue, pending bound, retries and degraded flag: a shard that is down
// fills only its own writer, and only the vehicles it owns wait (their PUBACKs held, their
// sockets no longer read); every other shard's vehicles keep flowing.
//
// While a VIN's bucket is being moved (shard_map state 'moving'), its items are held here,
// before any shard writer, and released to the bucket's new shard when the map says it is
// active again.
import type { BatchWriter, WriteItem } from './writer.ts';
import { STO_ERR, StorageError, isStorageError } from '../errors.ts';
import type { Shards } from '../driver/shards.ts';

export interface ShardedWriter {
  write(item: WriteItem): Promise<void>;
  /** Room in the writer of this VIN's shard (without a VIN: in every shard's writer). */
  hasRoom(vin?: string): boolean;
  whenRoom(vin?: string): Promise<void>;
  isRejected(err: unknown): boolean;
  /** True while every shard's writer is retrying failed writes (no shard takes rows). */
  readonly degraded: boolean;
  /** Indexes of the shards whose writers are retrying failed writes now. */
  degradedShards(): number[];
  /** Shard i's own writer. */
  shard(index: number): BatchWriter;
  /** Sum over the shards, plus the items held for a bucket move (in `waitingRows`). */
  pending(): { rows: number; items: number; inFlight: number; waitingRows: number };
  /** Items held because their bucket is moving. */
  held(): { items: number; rows: number };
  close(timeoutMs?: number): Promise<void>;
}

interface Held {
  vin: string;
  item: WriteItem;
  rows: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** The VIN an item is about (every row of a message carries the authenticated VIN). */
function vinOf(item: WriteItem): string | null {
  return item.telemetry[0]?.vin ?? item.quarantine[0]?.vin ?? null;
}

export function createShardedWriter(shards: Shards, writers: readonly BatchWriter[]): ShardedWriter {
  if (writers.length !== shards.count) throw new Error(`${writers.length} writers for ${shards.count} shards`);
  let held: Held[] = [];
  let heldRows = 0;
  let closed = false;
  let moveWaiters: (() => void)[] = [];

  const writerOf = (vin: string | null): BatchWriter => writers[vin === null ? 0 : shards.shardOf(vin)]!;

  const stopWatching = shards.onChange(() => {
    if (held.length) {
      const still: Held[] = [];
      for (const h of held) {
        if (shards.isMoving(h.vin)) {
          still.push(h);
          continue;
        }
        heldRows -= h.rows;
        writerOf(h.vin).write(h.item).then(h.resolve, h.reject);
      }
      held = still;
    }
    const w = moveWaiters;
    moveWaiters = [];
    for (const f of w) f();
  });

  return {
    write(item) {
      if (closed) return Promise.reject(new StorageError(STO_ERR.CLOSED, 'writer is closed'));
      const vin = vinOf(item);
      if (vin !== null && shards.isMoving(vin)) {
        const rows = item.telemetry.length + item.quarantine.length;
        return new Promise<void>((resolve, reject) => {
          held.push({ vin, item, rows, resolve, reject });
          heldRows += rows;
        });
      }
      return writerOf(vin).write(item);
    },
    hasRoom(vin) {
      if (vin === undefined) return writers.every((w) => w.hasRoom());
      return !shards.isMoving(vin) && writerOf(vin).hasRoom();
    },
    async whenRoom(vin) {
      if (vin === undefined) {
        for (const w of writers) await w.whenRoom();
        return;
      }
      while (shards.isMoving(vin) && !closed) await new Promise<void>((r) => moveWaiters.push(r));
      await writerOf(vin).whenRoom();
    },
    isRejected: (err) => isStorageError(err, STO_ERR.REJECTED),
    get degraded() {
      return writers.every((w) => w.degraded);
    },
    degradedShards: () => writers.flatMap((w, i) => (w.degraded ? [i] : [])),
    shard(index) {
      const w = writers[index];
      if (!w) throw new RangeError(`no shard ${index}`);
      return w;
    },
    pending() {
      const out = { rows: 0, items: 0, inFlight: 0, waitingRows: heldRows };
      for (const w of writers) {
        const p = w.pending();
        out.rows += p.rows;
        out.items += p.items;
        out.inFlight += p.inFlight;
        out.waitingRows += p.waitingRows;
      }
      return out;
    },
    held: () => ({ items: held.length, rows: heldRows }),
    async close(timeoutMs) {
      closed = true;
      stopWatching();
      // Held items cannot be written before the move ends: not acknowledged, so resent.
      const h = held;
      held = [];
      heldRows = 0;
      for (const x of h) x.reject(new StorageError(STO_ERR.CLOSED, 'writer closed while the bucket of these rows was moving'));
      for (const f of moveWaiters) f();
      moveWaiters = [];
      await Promise.all(writers.map((w) => w.close(timeoutMs)));
    },
  };
}
