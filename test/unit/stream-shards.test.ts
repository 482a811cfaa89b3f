// stream/shards.ts: one stream hub per shard behind one. Each shard's log numbers its
// transactions on its own (here both from 100, so the same tx ids exist on both shards):
// a subscriber must be served by its vehicle's shard only, and get each of its records once.
import { describe, expect, it } from 'vitest';
import { createStreamHub } from '../../stream/hub.ts';
import { createShardedHub, shardedPositions } from '../../stream/shards.ts';
import type { StreamStore } from '../../stream/ports.ts';
import type { StreamPos, StreamRecord, StreamSubscriber as Subscriber } from '../../proto/stream.ts';

/** A shard's stream log: every entry committed at once (the horizon is the next id). */
function shardLog() {
  let next = 100;
  const entries: { tx: number; vin: string; seqs: number[] }[] = [];
  const rec = (e: { tx: number; vin: string; seqs: number[] }, i: number): StreamRecord => ({ vin: e.vin, tx: e.tx, ord: i + 1, recordedAtMs: e.seqs[i]!, json: () => `${e.vin}:${e.seqs[i]}`, line: (_p, out, at) => at + out.write(`${e.vin}:${e.seqs[i]}`, at, 'latin1') });
  const after = (tx: number, ord: number, p: StreamPos) => tx > p.tx || (tx === p.tx && ord > p.ord);
  const store: StreamStore = {
    async horizon() {
      return { h: next, waiting: false };
    },
    async range(lo, hi, vins) {
      return entries.filter((e) => e.tx >= lo && e.tx < hi && vins.includes(e.vin)).sort((a, b) => (a.vin < b.vin ? -1 : a.vin > b.vin ? 1 : a.tx - b.tx)).flatMap((e) => e.seqs.map((_, i) => rec(e, i)));
    },
    async page(vin, a, bound, maxEntries) {
      const p = a ?? { tx: 0, ord: 0 };
      const es = entries.filter((e) => e.vin === vin && e.tx < bound && e.seqs.some((_, i) => after(e.tx, i + 1, p))).sort((x, y) => x.tx - y.tx).slice(0, maxEntries);
      if (es.length === 0) return { records: [], last: null };
      return { records: es.flatMap((e) => e.seqs.map((_, i) => rec(e, i)).filter((r) => after(r.tx, r.ord, p))), last: { tx: es[es.length - 1]!.tx, ord: Number.MAX_SAFE_INTEGER } };
    },
  };
  return {
    store,
    write(vin: string, seqs: number[]) {
      entries.push({ tx: next++, vin, seqs });
    },
    trimmedBelow: async () => 7,
    startFor: async (vin: string) => ({ tx: entries.find((e) => e.vin === vin)?.tx ?? 0, ord: 0 }),
  };
}

function subscriber(vin: string): Subscriber & { got: string[] } {
  const got: string[] = [];
  return {
    vin,
    got,
    closed: false,
    deliver(records) {
      for (const r of records) got.push(r.json({ categories: [], nulled: [] }));
    },
    busy: () => false,
    ready: async () => {},
    recheck() {},
  };
}

const until = async (cond: () => boolean, ms = 2000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('createShardedHub', () => {
  it('routes each subscriber to its vehicle\'s shard: records once, only its own, although both shards use the same transaction ids', async () => {
    const logs = [shardLog(), shardLog()];
    const hubs = logs.map((l) => createStreamHub({ store: l.store, pollMs: 50 }));
    const shardOf = (vin: string) => (vin.startsWith('A') ? 0 : 1);
    const hub = createShardedHub(hubs, shardOf);
    // Backlog before the streams open: read by resume (cursor at the start), in open().
    logs[0]!.write('A1', [1, 2]);
    logs[1]!.write('B1', [1]);
    await hub.start();
    try {
      const a = subscriber('A1');
      const b = subscriber('B1');
      await hub.open(a, { after: { tx: 0, ord: 0 }, fromMs: null });
      await hub.open(b, { after: { tx: 0, ord: 0 }, fromMs: null });
      expect(a.got).toEqual(['A1:1', 'A1:2']);
      expect(b.got).toEqual(['B1:1']);
      expect(hub.stats().subscribers).toBe(2);
      // Live: the same tx id (101) on both shards; each shard's commit wakes its tailer.
      logs[0]!.write('A1', [3]);
      logs[1]!.write('B1', [2, 3]);
      hub.wakeShard(0);
      hub.wakeShard(1);
      await until(() => a.got.length === 3 && b.got.length === 3);
      // A commit of unknown shard (wake()) reaches both.
      logs[0]!.write('A1', [4]);
      logs[1]!.write('B1', [4]);
      hub.wake();
      await until(() => a.got.length === 4 && b.got.length === 4);
      await new Promise((r) => setTimeout(r, 120)); // a poll or two more: nothing is delivered twice
      expect(a.got).toEqual(['A1:1', 'A1:2', 'A1:3', 'A1:4']);
      expect(b.got).toEqual(['B1:1', 'B1:2', 'B1:3', 'B1:4']);
      expect(hubs[0]!.stats().subscribers).toBe(1);
      expect(hubs[1]!.stats().subscribers).toBe(1);
      hub.close(a);
      hub.close(b);
      expect(hub.stats().subscribers).toBe(0);
    } finally {
      await hub.stop();
    }
  });

  it('a map change ends the streams of the vehicles that moved (reason moved), detached from the old shard; the others stay', async () => {
    const logs = [shardLog(), shardLog()];
    const hubs = logs.map((l) => createStreamHub({ store: l.store, pollMs: 50 }));
    let movedToZero = false;
    const shardOf = (vin: string) => (vin.startsWith('A') || (movedToZero && vin === 'B2') ? 0 : 1);
    const hub = createShardedHub(hubs, shardOf);
    await hub.start();
    try {
      const ended: string[] = [];
      const mk = (vin: string) => Object.assign(subscriber(vin), { end: (reason: string) => ended.push(`${vin}:${reason}`) });
      const [a, b1, b2] = [mk('A1'), mk('B1'), mk('B2')];
      for (const x of [a, b1, b2]) await hub.open(x, { after: null, fromMs: null });
      hub.remap();
      expect(ended).toEqual([]);
      movedToZero = true;
      hub.remap();
      expect(ended).toEqual(['B2:moved']);
      expect(hubs[1]!.stats().subscribers).toBe(1);
      expect(hubs[0]!.stats().subscribers).toBe(1);
      // The one that stayed still gets its records.
      logs[1]!.write('B1', [5]);
      hub.wakeShard(1);
      await until(() => b1.got.length === 1);
      hub.remap();
      expect(ended).toEqual(['B2:moved']);
    } finally {
      await hub.stop();
    }
  });

  it('resume positions come from the vehicle\'s shard\'s log', async () => {
    const logs = [shardLog(), shardLog()];
    logs[1]!.write('B9', [1]);
    logs[1]!.trimmedBelow = async () => 42;
    const pos = shardedPositions(logs, (vin) => (vin.startsWith('A') ? 0 : 1));
    expect(await pos.trimmedBelow('A1')).toBe(7);
    expect(await pos.trimmedBelow('B9')).toBe(42);
    expect(await pos.startFor('B9', 0, 0)).toEqual({ tx: 100, ord: 0 });
    expect([pos.shardOf('A1'), pos.shardOf('B9')]).toEqual([0, 1]);
  });
});
