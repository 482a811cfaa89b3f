// The live fan-out of committed records: one tailer per process reads the commit-ordered
// stream log past its horizon and hands each vehicle's new records to that vehicle's open
// streams. Consumers resuming from a cursor first read their own backlog from the log, up
// to the tailer's horizon, then join it: both read the same total order, so the hand-over
// has no gap and no duplicate.
//
// Wake-ups: this process's writer reports each commit (wake()); other processes' commits
// arrive as a NOTIFY (wake() again); a poll every `pollMs` covers a lost notification;
// while committed entries wait above the horizon (a transaction older than them still
// running), the tailer looks again every `waitPollMs`.
import type { StreamPos, StreamRecord, StreamStart, StreamSubscriber as Subscriber } from '../proto/stream.ts';
import type { StreamStore } from './ports.ts';

export interface StreamHub {
  /**
   * Runs the subscriber's backlog (after `after`), then attaches it to the live tail.
   * Resolves once attached (or when the subscriber closed meanwhile).
   */
  open(sub: Subscriber, opts: StreamStart): Promise<void>;
  /** Detaches a subscriber (idempotent). */
  close(sub: Subscriber): void;
  /** Something was committed (here or, by NOTIFY, elsewhere): read the log. */
  wake(): void;
  /** The consent, ownership or grants of `vin` changed. */
  invalidate(vin: string): void;
  /** Grant `id` was revoked or ended. */
  invalidateGrant(id: string): void;
  /** Every vehicle: after a lost change feed came back. */
  invalidateAll(): void;
  /** Whether a stream here follows `vin` (in its backlog or live). */
  follows(vin: string): boolean;
  /** The horizon the tailer has delivered up to. */
  readonly horizon: number;
  stats(): { subscribers: number; vehicles: number; horizon: number; cycles: number };
  /** Reads the horizon and starts the safety poll (after the schema is migrated). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface HubOptions {
  store: StreamStore;
  /** Safety poll while anyone listens, ms. Default 1000. */
  pollMs?: number;
  /**
   * Re-read interval while committed entries wait above the horizon, ms. Default 25: the
   * commit of the transaction they wait for wakes the tail by itself (a writer's here, a
   * NOTIFY from elsewhere); this covers the ones that end without a wake-up (a rollback).
   */
  waitPollMs?: number;
  /** Records per backlog page (whole log entries: a larger entry makes a larger page). Default 4000. */
  pageRecords?: number;
  /** A tail read is handed out in slices of about this long, ms, the event loop running between them. Default 20. */
  dispatchSliceMs?: number;
  onError?: (err: Error) => void;
}

/** a comes after b in cursor order. */
function after(a: StreamPos, b: StreamPos): boolean {
  return a.tx > b.tx || (a.tx === b.tx && a.ord > b.ord);
}

/** A read of the tail: from the start of the read until the horizon moved past what it read. */
interface Cycle {
  vins: Set<string>;
  done: Promise<void>;
}

export function createStreamHub(opts: HubOptions): StreamHub {
  const store = opts.store;
  const pollMs = opts.pollMs ?? 1000;
  const waitPollMs = opts.waitPollMs ?? 25;
  const pageRecords = opts.pageRecords ?? 4000;
  const sliceMs = opts.dispatchSliceMs ?? 20;
  /** Every subscriber of a vehicle, in backlog or attached. */
  const interest = new Map<string, Set<Subscriber>>();
  /** Subscribers reading through a grant, by grant id. */
  const byGrant = new Map<string, Set<Subscriber>>();
  /** Attached subscribers by vehicle, with the position of the last record each was given. */
  const live = new Map<string, Map<Subscriber, StreamPos>>();
  let lo = 0;
  let started = false;
  let inflight: Cycle | null = null;
  /**
   * The hand-out of the last read, under way while the next read runs (the database and
   * the sockets work at the same time). Reads are handed out one after the other, in
   * their order; a read ends (and the next may start) only once the one before it was
   * handed out, so at most one read waits in memory.
   */
  let handing: Promise<void> = Promise.resolve();
  let again = false;
  let stopped = false;
  let cycles = 0;
  let timer: NodeJS.Timeout | null = null;

  function schedule(ms: number): void {
    if (stopped || !started) return;
    if (timer) {
      // An earlier wake-up is kept: only a sooner one replaces a later one.
      if (ms > 0) return;
      clearTimeout(timer);
    }
    timer = setTimeout(() => {
      timer = null;
      void cycle();
    }, ms);
  }

  /** Hands an error to onError; one thrown there does not stop the tail. */
  function report(err: Error): void {
    try {
      opts.onError?.(err);
    } catch {
      // onError only logs; a logger's own failure has nowhere else to go
    }
  }

  /** The horizon and the records of `vins` from lo up to it. */
  async function readTail(vins: string[]): Promise<{ h: number; waiting: boolean; records: readonly StreamRecord[] }> {
    if (store.tail) return store.tail(lo, vins);
    const { h, waiting } = await store.horizon();
    return { h, waiting, records: h > lo && vins.length > 0 ? await store.range(lo, h, vins) : [] };
  }

  async function cycle(): Promise<void> {
    if (inflight) {
      again = true;
      return;
    }
    if (stopped) return;
    let resolveDone!: () => void;
    const c: Cycle = { vins: new Set(interest.keys()), done: new Promise<void>((r) => (resolveDone = r)) };
    inflight = c;
    let next = interest.size > 0 ? pollMs : -1;
    try {
      const { h, waiting, records } = await readTail([...c.vins]);
      await handing;
      // The horizon moves before the records below it are handed out: whoever attaches
      // from now on has read them in its own backlog (up to lo), and the hand-out passes
      // over what lies at or before a subscriber's position.
      if (h > lo) lo = h;
      if (records.length > 0) handing = dispatch(records).catch((err: Error) => report(err));
      cycles++;
      if (waiting && interest.size > 0) next = waitPollMs;
    } catch (err) {
      report(err as Error);
      next = Math.max(100, Math.min(pollMs, 1000));
    } finally {
      inflight = null;
      resolveDone();
    }
    if (again) {
      again = false;
      next = 0;
    }
    if (next >= 0) schedule(next);
  }

  /**
   * Hands a tail read to the attached subscribers, in slices of about `sliceMs` with the
   * event loop running between them. One read can carry a second of a fleet's records
   * (20,000 at the benchmark's closed loop: ~100 ms of lines and socket writes); in one
   * piece it held back everything else this process does, the ingest's database round
   * trips among them.
   *
   * Each pause lasts a whole turn of the event loop, which under load is 15-80 ms; the
   * slices are sized so that a read is handed out in a few of them. At 5 ms, a read of
   * 2,000-3,000 records (a busy second at half the benchmark's rate, with the gateway
   * waiting for a CPU) took 10-20 pauses: handing it out took 200-770 ms at p99 in four
   * runs, the largest part of the delivery latency. At 20 ms: 56-63 ms in two runs, with
   * the event loop's delay p99 unchanged (74-78 ms against 73-131).
   */
  async function dispatch(recs: readonly StreamRecord[]): Promise<void> {
    let i = 0;
    let sliceEnd = performance.now() + sliceMs;
    while (i < recs.length) {
      if (performance.now() >= sliceEnd) {
        await new Promise<void>((r) => setImmediate(r));
        if (stopped) return;
        sliceEnd = performance.now() + sliceMs;
      }
      const vin = recs[i]!.vin;
      let j = i + 1;
      while (j < recs.length && recs[j]!.vin === vin) j++;
      const subs = live.get(vin);
      if (subs) {
        const slice = recs.slice(i, j);
        for (const [s, pos] of subs) {
          if (s.closed) continue;
          // Only what lies after the subscriber's position (a stream that started live
          // began at a fresher horizon than the tailer's).
          let k = 0;
          while (k < slice.length && !after(slice[k]!, pos)) k++;
          if (k === slice.length) continue;
          const last = slice[slice.length - 1]!;
          pos.tx = last.tx;
          pos.ord = last.ord;
          try {
            s.deliver(k === 0 ? slice : slice.slice(k), true);
          } catch (err) {
            // One stream's failure is its own: it ends (with the cursor it reached, to
            // resume from), and the read goes on to the others. The horizon has moved
            // already, so a record not handed out now would never be.
            report(err as Error);
            hub.close(s);
            try {
              s.end?.('error');
            } catch (e) {
              report(e as Error);
            }
          }
        }
      }
      i = j;
    }
  }

  function add(map: Map<string, Set<Subscriber>>, s: Subscriber): void {
    let set = map.get(s.vin);
    if (!set) map.set(s.vin, (set = new Set()));
    set.add(s);
  }
  function remove(map: Map<string, Set<Subscriber>>, s: Subscriber): void {
    const set = map.get(s.vin);
    if (set?.delete(s) && set.size === 0) map.delete(s.vin);
  }
  function attach(s: Subscriber, pos: StreamPos): void {
    let m = live.get(s.vin);
    if (!m) live.set(s.vin, (m = new Map<Subscriber, StreamPos>()));
    m.set(s, { tx: pos.tx, ord: pos.ord });
  }
  function detach(s: Subscriber): void {
    const m = live.get(s.vin);
    if (m?.delete(s) && m.size === 0) live.delete(s.vin);
  }

  const hub: StreamHub = {
    async open(sub, o) {
      add(interest, sub);
      if (sub.grantId !== undefined) {
        let g = byGrant.get(sub.grantId);
        if (!g) byGrant.set(sub.grantId, (g = new Set()));
        g.add(sub);
      }
      // The safety poll runs while anyone listens, whether or not a commit woke the tail.
      schedule(pollMs);
      // While nobody was attached, nothing moved the tail's horizon but wake-ups: it may be
      // far behind (writes that announced nothing, a lost notification). A consumer that
      // attached at that old horizon would get everything since as one unpaged live read;
      // read it as backlog instead. Moving the horizon skips nobody's records: nobody is
      // attached, and no read of the tail is under way.
      const stale = live.size === 0 && !inflight;
      const fresh = stale || (!o.after && o.fromMs === null) ? (await store.horizon()).h : lo;
      if (stale && live.size === 0 && !inflight && fresh > lo) lo = fresh;
      // Without a cursor the stream starts live: at the current horizon (the tailer's may be
      // older while nobody listened; what lies between is not this stream's).
      let pos: StreamPos | null = o.after ?? (o.fromMs === null ? { tx: Math.max(lo, fresh), ord: 0 } : null);
      if (!o.after && pos) sub.startedAt?.(pos);
      let caughtUpTo = -1;
      // The next backlog page, read while the consumer takes the one before (the database
      // and the socket work at the same time). Any bound at or below the tail's horizon
      // gives the same records, so a page read under an older bound is still good.
      let ahead: { bound: number; page: ReturnType<StreamStore['page']> } | null = null;
      const read = (from: StreamPos | null, bound: number) => {
        const page = store.page(sub.vin, from, bound, pageRecords, o.fromMs);
        page.catch(() => {}); // awaited below, or dropped with a closed subscriber
        return { bound, page };
      };
      while (!sub.closed && !stopped) {
        const bound = lo;
        if (caughtUpTo !== bound) {
          if (!ahead && pos && pos.tx >= bound) {
            caughtUpTo = bound;
          } else {
            const cur = ahead ?? read(pos, bound);
            ahead = null;
            const pg = await cur.page;
            if (sub.closed) break;
            if (pg.last === null) caughtUpTo = cur.bound;
            else {
              pos = pg.last;
              if (pos.tx < lo) ahead = read(pos, lo);
              if (pg.records.length) sub.deliver(pg.records, false);
              while (sub.busy() && !sub.closed) await sub.ready();
              continue;
            }
          }
        }
        if (lo !== bound || caughtUpTo !== bound) continue;
        // Caught up to the horizon: join the tail, unless a read of the tail is under way
        // that was asked for before this vehicle had any subscriber (it would miss it).
        // A hand-out under way is of records below the horizon, which the backlog gave.
        if (!inflight || inflight.vins.has(sub.vin)) {
          attach(sub, pos ?? { tx: 0, ord: 0 });
          return;
        }
        await inflight.done;
      }
      hub.close(sub);
    },
    close(sub) {
      remove(interest, sub);
      detach(sub);
      if (sub.grantId !== undefined) {
        const g = byGrant.get(sub.grantId);
        if (g?.delete(sub) && g.size === 0) byGrant.delete(sub.grantId);
      }
    },
    wake() {
      if (interest.size > 0) schedule(0);
      else if (!timer) schedule(pollMs); // keep the horizon fresh, cheaply
    },
    invalidate(vin) {
      const set = interest.get(vin);
      if (set) for (const s of set) s.recheck();
    },
    invalidateGrant(id) {
      const set = byGrant.get(id);
      if (set) for (const s of set) s.recheck();
    },
    invalidateAll() {
      for (const set of interest.values()) for (const s of set) s.recheck();
    },
    follows: (vin) => interest.has(vin),
    get horizon() {
      return lo;
    },
    stats() {
      let n = 0;
      for (const s of interest.values()) n += s.size;
      return { subscribers: n, vehicles: interest.size, horizon: lo, cycles };
    },
    async start() {
      if (started) return;
      lo = (await store.horizon()).h;
      started = true;
      schedule(pollMs);
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      // The read under way ends with the pool at the latest; waiting for it is a courtesy.
      if (inflight) await Promise.race([inflight.done, new Promise<void>((r) => setTimeout(r, 2000).unref())]);
      await Promise.race([handing, new Promise<void>((r) => setTimeout(r, 2000).unref())]);
    },
  };
  return hub;
}

/**
 * Runs `fn` now, or once more after the run in flight when called during one: a burst of
 * calls costs at most two runs. For the NOTIFY that wakes the other instances.
 */
export function coalesced(fn: () => Promise<unknown>, onError: (err: Error) => void = () => {}): () => void {
  let running = false;
  let again = false;
  const run = (): void => {
    running = true;
    fn().then(
      () => {},
      (err: Error) => onError(err),
    ).finally(() => {
      running = false;
      if (again) {
        again = false;
        run();
      }
    });
  };
  return () => {
    if (running) again = true;
    else run();
  };
}
