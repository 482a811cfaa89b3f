// The stream hub against a model of the stream log (the StreamStore port): transactions
// get ids when they begin and commit in any order; the horizon is the oldest one still
// running. Consumers resume from their last position at random moments, some while
// a read of the tail is under way; each must see every record of its vehicle exactly once.
import { describe, expect, it } from 'vitest';
import { createStreamHub } from '../../stream/hub.ts';
import type { StreamStore } from '../../stream/ports.ts';
import type { StreamPos, StreamRecord, StreamSubscriber as Subscriber } from '../../proto/stream.ts';

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

interface Entry {
  tx: number;
  vin: string;
  seqs: number[];
}

function modelStore(rand: () => number) {
  let nextXid = 100;
  const running = new Set<number>();
  const entries: Entry[] = [];
  const delay = () => new Promise<void>((r) => setTimeout(r, Math.floor(rand() * 3)));
  const rec = (e: Entry, i: number): StreamRecord => ({ vin: e.vin, tx: e.tx, ord: i + 1, recordedAtMs: e.seqs[i]!, json: () => String(e.seqs[i]), line: (_p, out, at) => at + out.write(String(e.seqs[i]), at, 'latin1') });
  const after = (tx: number, ord: number, p: StreamPos) => tx > p.tx || (tx === p.tx && ord > p.ord);
  const store: StreamStore = {
    async horizon() {
      await delay();
      const h = running.size ? Math.min(...running) : nextXid;
      return { h, waiting: entries.some((e) => e.tx >= h) };
    },
    async range(lo, hi, vins) {
      const snap = entries.filter((e) => e.tx >= lo && e.tx < hi && vins.includes(e.vin));
      await delay();
      return snap.sort((a, b) => (a.vin < b.vin ? -1 : a.vin > b.vin ? 1 : a.tx - b.tx)).flatMap((e) => e.seqs.map((_, i) => rec(e, i)));
    },
    async page(vin, a, bound, maxRecords) {
      const p = a ?? { tx: 0, ord: 0 };
      const candidates = entries
        .filter((e) => e.vin === vin && e.tx < bound && (e.tx > p.tx || (e.tx === p.tx && e.seqs.length > p.ord)))
        .sort((x, y) => x.tx - y.tx);
      // Whole entries while fewer than maxRecords records came before (as storage does).
      const es: Entry[] = [];
      let before = 0;
      for (const e of candidates) {
        if (before >= maxRecords) break;
        es.push(e);
        before += e.seqs.length;
      }
      await delay();
      if (es.length === 0) return { records: [], last: null };
      const records = es.flatMap((e) => e.seqs.map((_, i) => rec(e, i))).filter((r) => after(r.tx, r.ord, p));
      return { records, last: { tx: es[es.length - 1]!.tx, ord: Number.MAX_SAFE_INTEGER } };
    },
  };
  return {
    store,
    begin(): number {
      const x = nextXid++;
      running.add(x);
      return x;
    },
    commit(x: number, vin: string, seqs: number[]) {
      entries.push({ tx: x, vin, seqs });
      running.delete(x);
    },
    abort(x: number) {
      running.delete(x);
    },
    all: (vin: string) => entries.filter((e) => e.vin === vin).flatMap((e) => e.seqs),
  };
}

class Consumer implements Subscriber {
  closed = false;
  got: StreamRecord[] = [];
  constructor(readonly vin: string) {}
  deliver(records: readonly StreamRecord[], _live = false) {
    if (!this.closed) this.got.push(...records);
  }
  busy() {
    return false;
  }
  async ready() {}
  recheck() {}
  last(): StreamPos | null {
    const r = this.got[this.got.length - 1];
    return r ? { tx: r.tx, ord: r.ord } : null;
  }
}

describe('stream hub', () => {
  // Slice 0: every vehicle's part of a tail read is handed out after a turn of the event
  // loop, so consumers attach and resume while a read is half handed out.
  for (const [seed, dispatchSliceMs] of [[1, 5], [2, 5], [3, 5], [4, 0], [5, 0], [6, 0], [7, 0]] as const) {
    it(`hands every record over exactly once across resumes (seed ${seed}, slices of ${dispatchSliceMs} ms)`, async () => {
      const rand = rng(seed);
      const m = modelStore(rand);
      const hub = createStreamHub({ store: m.store, pollMs: 20, waitPollMs: 1, pageRecords: 3, dispatchSliceMs });
      await hub.start();
      const vins = ['V1', 'V2', 'V3'];
      let seq = 0;
      // Writers: overlapping transactions, committed in random order, some aborted.
      const writers = (async () => {
        const open: { x: number; vin: string; n: number }[] = [];
        for (let i = 0; i < 150; i++) {
          open.push({ x: m.begin(), vin: vins[Math.floor(rand() * vins.length)]!, n: 1 + Math.floor(rand() * 4) });
          while (open.length > 0 && (open.length > 3 || rand() < 0.5)) {
            const t = open.splice(Math.floor(rand() * open.length), 1)[0]!;
            if (rand() < 0.05) m.abort(t.x);
            else m.commit(t.x, t.vin, Array.from({ length: t.n }, () => ++seq));
            hub.wake();
          }
          await new Promise((r) => setTimeout(r, Math.floor(rand() * 3)));
        }
        for (const t of open) {
          m.commit(t.x, t.vin, Array.from({ length: t.n }, () => ++seq));
          hub.wake();
        }
      })();
      // Per vehicle a consumer from the start of the log, reconnecting now and then from its last position.
      const chains = vins.map(async (vin) => {
        const seen: StreamRecord[] = [];
        let pos: StreamPos | null = { tx: 0, ord: 0 };
        for (let round = 0; round < 6; round++) {
          const c = new Consumer(vin);
          void hub.open(c, { after: pos, fromMs: null });
          await new Promise((r) => setTimeout(r, 5 + Math.floor(rand() * 40)));
          c.closed = true;
          hub.close(c);
          seen.push(...c.got);
          pos = c.last() ?? pos;
          // Away for a while: nobody listens to this vehicle, the tail goes on without it.
          await new Promise((r) => setTimeout(r, Math.floor(rand() * 6)));
        }
        await writers;
        const c = new Consumer(vin);
        await hub.open(c, { after: pos, fromMs: null });
        const want = m.all(vin).length;
        for (let k = 0; k < 200 && seen.length + c.got.length < want; k++) await new Promise((r) => setTimeout(r, 10));
        await new Promise((r) => setTimeout(r, 30));
        c.closed = true;
        hub.close(c);
        seen.push(...c.got);
        return seen;
      });
      const results = await Promise.all(chains);
      await hub.stop();
      for (let v = 0; v < vins.length; v++) {
        const got = results[v]!.map((r) => Number(r.json({ categories: [], nulled: [] })));
        const want = m.all(vins[v]!);
        expect(got.length).toBe(want.length);
        expect(new Set(got).size).toBe(got.length);
        expect([...got].sort((a, b) => a - b)).toEqual([...want].sort((a, b) => a - b));
        // In cursor order.
        const ps = results[v]!;
        for (let i = 1; i < ps.length; i++) expect(ps[i]!.tx > ps[i - 1]!.tx || (ps[i]!.tx === ps[i - 1]!.tx && ps[i]!.ord > ps[i - 1]!.ord)).toBe(true);
      }
    });
  }
});

describe('stream hub, idle tail', () => {
  it('reads what was committed unannounced while nobody listened as paged backlog, then polls for more', async () => {
    const m = modelStore(rng(7));
    const hub = createStreamHub({ store: m.store, pollMs: 20, waitPollMs: 1, pageRecords: 5 });
    await hub.start();
    // The tail's first look (a poll after start) has been, and with nobody listening it
    // schedules no other: from here on only a wake-up or a consumer moves it.
    for (let k = 0; k < 200 && hub.stats().cycles < 1; k++) await new Promise((r) => setTimeout(r, 10));
    expect(hub.stats().cycles).toBe(1);
    const start = (await m.store.horizon()).h;
    // Commits that wake nobody (another writer without NOTIFY, a lost notification).
    for (let i = 0; i < 40; i++) m.commit(m.begin(), 'V1', [3 * i + 1, 3 * i + 2, 3 * i + 3]);
    const pages: { n: number; live: boolean }[] = [];
    const c = new (class extends Consumer {
      override deliver(records: readonly StreamRecord[], live: boolean) {
        pages.push({ n: records.length, live });
        super.deliver(records, live);
      }
    })('V1');
    await hub.open(c, { after: { tx: start - 1, ord: 0 }, fromMs: null });
    expect(c.got.length).toBe(120);
    // As backlog pages of about pageRecords each, nothing of it as one live read.
    expect(pages.every((p) => !p.live && p.n <= 6)).toBe(true);
    // Attached: a later unannounced commit arrives by the safety poll alone.
    m.commit(m.begin(), 'V1', [121]);
    for (let k = 0; k < 100 && c.got.length < 121; k++) await new Promise((r) => setTimeout(r, 10));
    expect(c.got.map((r) => Number(r.json({ categories: [], nulled: [] })))).toEqual(Array.from({ length: 121 }, (_, i) => i + 1));
    c.closed = true;
    hub.close(c);
    await hub.stop();
  });
});

/** A log entry of one record, for the tests that set the horizon by hand. */
interface Fixed {
  vin: string;
  tx: number;
  seq: number;
}
const fixedRec = (e: Fixed): StreamRecord => ({ vin: e.vin, tx: e.tx, ord: 1, recordedAtMs: e.seq, json: () => `${e.vin}:${e.seq}`, line: (_p, out, at) => at + out.write(`${e.vin}:${e.seq}`, at, 'latin1') });
/** A tail read of those entries: lo <= tx < hi, of the vehicles wanted, by vin then tx. */
const fixedRange = (entries: readonly Fixed[], lo: number, hi: number, want: readonly string[]): StreamRecord[] =>
  entries
    .filter((e) => e.tx >= lo && e.tx < hi && want.includes(e.vin))
    .sort((a, b) => (a.vin < b.vin ? -1 : a.vin > b.vin ? 1 : a.tx - b.tx))
    .map(fixedRec);
const vinsOf = (n: number): string[] => Array.from({ length: n }, (_, i) => `V${String(i + 1).padStart(2, '0')}`);

describe('stream hub, a read handed out in slices', () => {
  it('a consumer that catches up while a tail read is half handed out still gets that read\'s records', async () => {
    // One transaction (100) writes one record for each of V01..V20. Consumer B resumes on
    // V01 just before it; its (empty) backlog read returns exactly when the tail has handed
    // V01's part of the read to consumer C and yields: had B joined the tail then, it would
    // never get that record.
    const vins = vinsOf(20);
    let h = 100;
    const entries: Fixed[] = [];
    let gate: Promise<void> | null = null;
    let open!: () => void;
    gate = new Promise<void>((r) => (open = r));
    const store: StreamStore = {
      horizon: async () => ({ h, waiting: false }),
      range: async (lo, hi, want) => fixedRange(entries, lo, hi, want),
      async page(vin, a, bound) {
        if (vin === 'V01' && a?.tx === 99 && gate) {
          const g = gate;
          gate = null;
          await g;
        }
        const es = entries.filter((e) => e.vin === vin && e.tx < bound && (!a || e.tx > a.tx));
        return es.length ? { records: es.map(fixedRec), last: { tx: es[es.length - 1]!.tx, ord: Number.MAX_SAFE_INTEGER } } : { records: [], last: null };
      },
    };
    const hub = createStreamHub({ store, pollMs: 1000, waitPollMs: 1, dispatchSliceMs: 0 });
    await hub.start();
    const c = new (class extends Consumer {
      override deliver(records: readonly StreamRecord[], live: boolean) {
        super.deliver(records, live);
        open(); // B's backlog read comes back now, while the rest of the read waits its turn
      }
    })('V01');
    await hub.open(c, { after: null, fromMs: null });
    const others = vins.slice(1).map((v) => new Consumer(v));
    for (const o of others) await hub.open(o, { after: null, fromMs: null });
    const b = new Consumer('V01');
    const bOpen = hub.open(b, { after: { tx: 99, ord: 1 }, fromMs: null });
    for (const v of vins) entries.push({ vin: v, tx: 100, seq: 1 });
    h = 101;
    hub.wake();
    await bOpen;
    for (let k = 0; k < 100 && (b.got.length < 1 || others.some((o) => o.got.length < 1)); k++) await new Promise((r) => setTimeout(r, 5));
    expect(c.got.map((r) => r.json({ categories: [], nulled: [] }))).toEqual(['V01:1']);
    expect(b.got.map((r) => r.json({ categories: [], nulled: [] }))).toEqual(['V01:1']);
    expect(others.every((o) => o.got.length === 1)).toBe(true);
    await hub.stop();
  });
});

describe('stream hub, reading while handing out', () => {
  it('reads the next part of the tail while the last is still being handed out, and hands both out in order', async () => {
    const vins = vinsOf(20);
    let h = 100;
    const entries: Fixed[] = [];
    let handedOut = 0;
    let handedOutAtSecondRead = -1;
    const store: StreamStore = {
      horizon: async () => ({ h, waiting: false }),
      range: async (lo, hi, want) => {
        if (lo === 101) handedOutAtSecondRead = handedOut;
        return fixedRange(entries, lo, hi, want);
      },
      page: async () => ({ records: [], last: null }),
    };
    const hub = createStreamHub({ store, pollMs: 1000, waitPollMs: 1, dispatchSliceMs: 0 });
    await hub.start();
    let first = true;
    const consumers = vins.map(
      (v) =>
        new (class extends Consumer {
          override deliver(records: readonly StreamRecord[], live: boolean) {
            super.deliver(records, live);
            handedOut += records.length;
            // A slow socket: 20 of these take longer than the wake-up's timer (1 ms).
            for (const t = performance.now(); performance.now() - t < 0.5; );
            if (first) {
              // The first vehicle's record of the first read is out: the second read's
              // records are committed now, and their wake-up comes mid hand-out.
              first = false;
              for (const x of vins) entries.push({ vin: x, tx: 101, seq: 2 });
              h = 102;
              hub.wake();
            }
          }
        })(v),
    );
    for (const c of consumers) await hub.open(c, { after: null, fromMs: null });
    for (const v of vins) entries.push({ vin: v, tx: 100, seq: 1 });
    h = 101;
    hub.wake();
    for (let k = 0; k < 200 && consumers.some((c) => c.got.length < 2); k++) await new Promise((r) => setTimeout(r, 5));
    for (const c of consumers) expect(c.got.map((r) => r.json({ categories: [], nulled: [] }))).toEqual([`${c.vin}:1`, `${c.vin}:2`]);
    // The second read ran while the first was being handed out (20 records).
    expect(handedOutAtSecondRead).toBeGreaterThan(0);
    expect(handedOutAtSecondRead).toBeLessThan(vins.length);
    await hub.stop();
  });
});

describe('stream hub, a stream that fails while a read is handed out', () => {
  it('ends that stream, and the read still reaches every other stream', async () => {
    let h = 100;
    const entries: Fixed[] = [];
    const store: StreamStore = {
      horizon: async () => ({ h, waiting: false }),
      range: async (lo, hi, want) => fixedRange(entries, lo, hi, want),
      page: async () => ({ records: [], last: null }),
    };
    const errors: string[] = [];
    const hub = createStreamHub({ store, pollMs: 1000, waitPollMs: 1, onError: (e) => errors.push(e.message) });
    await hub.start();
    const ended: string[] = [];
    const broken = new (class extends Consumer {
      override deliver(): void {
        throw new Error('socket gone');
      }
      end(reason: string) {
        ended.push(reason);
        this.closed = true;
      }
    })('V1');
    const sameVehicle = new Consumer('V1');
    const other = new Consumer('V2');
    for (const c of [broken, sameVehicle, other]) await hub.open(c, { after: null, fromMs: null });
    entries.push({ vin: 'V1', tx: 100, seq: 1 }, { vin: 'V2', tx: 100, seq: 2 });
    h = 101;
    hub.wake();
    for (let k = 0; k < 100 && (other.got.length < 1 || sameVehicle.got.length < 1); k++) await new Promise((r) => setTimeout(r, 5));
    expect(sameVehicle.got.map((r) => r.json({ categories: [], nulled: [] }))).toEqual(['V1:1']);
    expect(other.got.map((r) => r.json({ categories: [], nulled: [] }))).toEqual(['V2:2']);
    expect(ended).toEqual(['error']);
    expect(errors).toEqual(['socket gone']);
    expect(hub.stats().subscribers).toBe(2);
    await hub.stop();
  });
});
