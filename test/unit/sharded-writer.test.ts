// storage/writer/sharded-writer.ts with fakes that honour the ports (Shards, BatchWriter): each
// message to its VIN's shard writer only, its promise settled by that writer; a moving
// bucket's messages held and released to the new shard when the map changes; room asked
// per VIN's shard; close() refuses what is held (not acknowledged, so resent).
import { describe, expect, it } from 'vitest';
import { createShardedWriter } from '../../storage/writer/sharded-writer.ts';
import type { BatchWriter, WriteItem } from '../../storage/writer/writer.ts';
import type { Shards } from '../../storage/driver/shards.ts';
import type { Db } from '../../storage/driver/db.ts';
import { STO_ERR, isStorageError } from '../../storage/errors.ts';

function fakeShards(owner: Record<string, number>) {
  const moving = new Set<string>();
  const listeners = new Set<() => void>();
  const shards: Shards = {
    sharded: true,
    count: 2,
    db: () => ({}) as Db,
    all: () => [],
    shardOf: (vin) => owner[vin] ?? 0,
    dbOf: () => ({}) as Db,
    label: (i) => `shard${i}`,
    isMoving: (vin) => moving.has(vin),
    onChange(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    reload: async () => {},
    close: async () => {},
  };
  return { shards, moving, owner, changed: () => listeners.forEach((f) => f()) };
}

function fakeWriter() {
  interface Entry {
    item: WriteItem;
    settled: boolean;
    resolve: () => void;
    reject: (e: Error) => void;
  }
  const pending: Entry[] = [];
  let room = true;
  const w: BatchWriter & { pendingItems: Entry[]; setRoom(r: boolean): void } = {
    // Entries stay listed once settled, so that tests can look at what each writer got.
    pendingItems: pending,
    setRoom: (r) => (room = r),
    write: (item) =>
      new Promise<void>((resolve, reject) => {
        const e: Entry = {
          item,
          settled: false,
          resolve: () => {
            e.settled = true;
            resolve();
          },
          reject: (err) => {
            e.settled = true;
            reject(err);
          },
        };
        pending.push(e);
      }),
    hasRoom: () => room,
    whenRoom: () => Promise.resolve(),
    isRejected: () => false,
    degraded: false,
    pending: () => {
      const n = pending.filter((e) => !e.settled).length;
      return { rows: n, items: n, inFlight: 0, waitingRows: 0 };
    },
    close: async () => {},
  };
  return w;
}

const item = (vin: string, seq = 1): WriteItem => ({
  telemetry: [{ vin, seq, recordedAtMs: 1_700_000_000_000 + seq, technical: null, consumption: null, location: null, shareObfcm: false }],
  quarantine: [],
});

describe('createShardedWriter', () => {
  it('sends each message to its VIN\'s shard writer, settled by that writer alone', async () => {
    const f = fakeShards({ A: 0, B: 1 });
    const w = [fakeWriter(), fakeWriter()];
    const sw = createShardedWriter(f.shards, w);
    let aDone = false;
    let bDone = false;
    void sw.write(item('A')).then(() => (aDone = true));
    void sw.write(item('B')).then(() => (bDone = true));
    expect(w[0]!.pendingItems.map((p) => p.item.telemetry[0]!.vin)).toEqual(['A']);
    expect(w[1]!.pendingItems.map((p) => p.item.telemetry[0]!.vin)).toEqual(['B']);
    w[0]!.pendingItems[0]!.resolve();
    await new Promise((r) => setImmediate(r));
    expect([aDone, bDone]).toEqual([true, false]);
    // Room is per shard: shard 1 full holds back only its own VINs.
    w[1]!.setRoom(false);
    expect([sw.hasRoom('A'), sw.hasRoom('B'), sw.hasRoom()]).toEqual([true, false, false]);
    expect(sw.pending()).toEqual({ rows: 1, items: 1, inFlight: 0, waitingRows: 0 });
  });

  it('holds a moving bucket\'s messages and releases them to the new shard when the map changes', async () => {
    const f = fakeShards({ A: 0, B: 1 });
    const w = [fakeWriter(), fakeWriter()];
    const sw = createShardedWriter(f.shards, w);
    f.moving.add('B');
    let done = false;
    void sw.write(item('B', 7)).then(() => (done = true));
    expect(w[0]!.pendingItems.length + w[1]!.pendingItems.length).toBe(0);
    expect(sw.held()).toEqual({ items: 1, rows: 1 });
    expect(sw.hasRoom('B')).toBe(false);
    // A change that leaves it moving keeps it held.
    f.changed();
    expect(sw.held().items).toBe(1);
    // The move ends on shard 0: the held message goes there, and only there.
    f.moving.delete('B');
    f.owner.B = 0;
    f.changed();
    expect(sw.held()).toEqual({ items: 0, rows: 0 });
    expect(w[0]!.pendingItems.map((p) => p.item.telemetry[0]!.seq)).toEqual([7]);
    expect(w[1]!.pendingItems).toEqual([]);
    w[0]!.pendingItems[0]!.resolve();
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(true);
  });

  it('close() refuses what is held with STO_ERR_CLOSED, and later writes too', async () => {
    const f = fakeShards({ A: 0 });
    const sw = createShardedWriter(f.shards, [fakeWriter(), fakeWriter()]);
    f.moving.add('A');
    const held = sw.write(item('A')).then(() => null, (e: unknown) => e);
    await sw.close(0);
    expect(isStorageError(await held, STO_ERR.CLOSED)).toBe(true);
    expect(isStorageError(await sw.write(item('A')).then(() => null, (e: unknown) => e), STO_ERR.CLOSED)).toBe(true);
  });

  it('refuses a writer count that is not the shard count', () => {
    expect(() => createShardedWriter(fakeShards({}).shards, [fakeWriter()])).toThrow(/1 writers for 2 shards/);
  });
});
