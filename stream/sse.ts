// One live stream's session: Server-Sent Events written to one HTTP response, with the
// resume cursor of every event, the consumer's bound, the keep-alive, the pause while its
// terms are checked again, and the last event that says why it ended and where to resume
// (README "Live CarData"). And the sessions of a process: how many each caller has open,
// what they hold, why they ended. The routes (api/routes/stream.ts) decide who may open
// one and on what terms; the fan-out (hub.ts) feeds it.
import type { ServerResponse } from 'node:http';
import type { LineProjection, StreamPos, StreamRecord, StreamStats, StreamSubscriber } from '../proto/stream.ts';
import { cursorEncoder, cursorWriter } from './cursor.ts';

// ---------------------------------------------------------------------------
// One consumer.

/** What a consumer may see now: its periods and line shape, or why its stream ends. */
export type Access = { end: string } | { periods: readonly { fromMs: number; toMs: number | null }[]; projection: LineProjection };

/** Why a stream ended, as its last event says. */
export type EndReason = 'slow_consumer' | 'ownership_ended' | 'revoked' | 'expired' | 'restricted' | 'shutdown' | 'error' | 'token_expired' | 'token_revoked' | (string & {});

export interface SessionOptions {
  vin: string;
  /** The grant a recipient's stream reads through. */
  grantId?: string;
  res: ServerResponse;
  /** The request's cursor, when resuming (or where a ?from= stream starts). */
  start: StreamPos | null;
  /** ?from=: only records measured at or after this are sent, in the backlog and live alike. */
  fromMs?: number | null;
  /** Sharded storage: the shard whose log the stream reads (its cursors name it). */
  shard?: number;
  access: Exclude<Access, { end: string }>;
  check: () => Promise<Access>;
  keepAliveMs: number;
  bufferBytes: number;
  onClose: (s: SseSession) => void;
  onEnd?: (reason: EndReason) => void;
  /** Called with the records actually sent, and the earliest and latest of their measurement times (for disclosures). */
  onSent?: (n: number, minMs: number, maxMs: number) => void;
  /**
   * The access token that opened the stream: the stream ends with it (`token_expired` at
   * its expiry, `token_revoked` when a check after a revocation refuses it).
   */
  credential?: Credential;
  /**
   * The vehicle's connectivity status (README "Connectivity"), for streams that may see it:
   * sent as `event: status` when the stream begins and whenever `online` or `since` changes.
   * Null answered: nothing to send now.
   */
  status?: () => Promise<StatusEvent | null>;
  /**
   * Rewrites each record's line before it is sent (`?names=vss`: keyed by VSS path,
   * proto/vss-records.ts); absent: the export's line as it is, written without a string.
   */
  lineMap?: (line: string) => string;
}

/** The object of an `event: status` (GET /v1/vehicles/{vin}/status's answer). */
export interface StatusEvent {
  online: boolean;
  since: string | null;
  [key: string]: unknown;
}

/** What let a stream in, as long as it lasts. */
export interface Credential {
  /** When the token expires, ms since the epoch. */
  expiresAtMs: number;
  /** Checks the token again: null while it holds, else why the stream must end. */
  check(): Promise<EndReason | null>;
}

/** How long an ended stream's unread bytes are kept for its consumer, ms. */
const END_GRACE_MS = 30_000;

/**
 * Events are framed here, then copied out in one piece per delivery: the lines are written
 * straight into it as bytes (StreamRecord#line), with no string per record, no joined chunk
 * and no UTF-8 encoding of one in the socket write.
 */
const FRAME = Buffer.allocUnsafe(256 * 1024);
/** Room kept free for one event: a line (at most 16 KiB, StreamRecord#line) and its framing. */
const EVENT_ROOM = 16 * 1024 + 256;
const ID = Buffer.from('id: ', 'latin1');
const RECORD_DATA = Buffer.from('\nevent: record\ndata: ', 'latin1');

export class SseSession implements StreamSubscriber {
  readonly vin: string;
  readonly grantId?: string;
  /** When the grant it reads through ends by itself (expiry), ms; Infinity for the owner's. */
  expiresAtMs = Infinity;
  /** What let it in (its access token), when the route says. */
  readonly credential: Credential | null;
  private credentialCheck: Promise<void> | null = null;
  closed = false;
  private readonly res: ServerResponse;
  private readonly encode: (p: StreamPos) => string;
  private readonly writeCursor: (out: Buffer, at: number, p: StreamPos) => number;
  private access: Exclude<Access, { end: string }>;
  /** Position of the last event sent (or where the stream started): what a resume continues after. */
  private pos: StreamPos | null;
  private paused = false;
  private recheckAgain = false;
  private held: StreamRecord[] = [];
  private readonly keepAlive: NodeJS.Timeout;
  private killTimer: NodeJS.Timeout | null = null;
  private readonly o: SessionOptions;
  /** `online|since` of the last status sent; a status read in flight, and whether another is wanted after it. */
  private lastStatus: string | null = null;
  private statusReading = false;
  private statusAgain = false;

  constructor(o: SessionOptions) {
    this.o = o;
    this.vin = o.vin;
    if (o.grantId !== undefined) this.grantId = o.grantId;
    this.res = o.res;
    this.credential = o.credential ?? null;
    this.access = o.access;
    this.encode = cursorEncoder(o.vin, o.shard);
    this.writeCursor = cursorWriter(o.vin, o.shard);
    this.pos = o.start ? { tx: o.start.tx, ord: o.start.ord } : null;
    this.keepAlive = setInterval(() => this.comment('keep-alive'), o.keepAliveMs);
    this.res.on('close', () => this.closeNow());
  }

  private comment(text: string): void {
    if (!this.closed) this.res.write(`: ${text}\n\n`);
  }

  /** The first bytes: a comment, so clients and proxies see the stream has begun. */
  begin(): void {
    this.comment('keep-alive');
    this.refreshStatus();
  }

  /** Reads the vehicle's status and sends it when `online` or `since` changed (no id: a status is no resume point). */
  refreshStatus(): void {
    const read = this.o.status;
    if (!read || this.closed) return;
    if (this.statusReading) {
      this.statusAgain = true;
      return;
    }
    this.statusReading = true;
    read().then(
      (st) => {
        this.statusReading = false;
        if (st && !this.closed) {
          const key = `${st.online}|${st.since}`;
          if (key !== this.lastStatus) {
            this.lastStatus = key;
            this.res.write(`event: status\ndata: ${JSON.stringify(st)}\n\n`);
          }
        }
        if (this.statusAgain) {
          this.statusAgain = false;
          this.refreshStatus();
        }
      },
      () => {
        // Cannot tell now: the next change asks again.
        this.statusReading = false;
      },
    );
  }

  deliver(records: readonly StreamRecord[], live: boolean): void {
    if (this.closed) return;
    if (this.paused) {
      // A consent, ownership or grant change is being checked: nothing goes out under the old terms.
      for (const r of records) this.held.push(r);
      if (this.held.length * 512 > this.o.bufferBytes) this.end('slow_consumer');
      return;
    }
    // Live records wait for no one: a consumer that has not taken what it was given before
    // (more than the bound still unread) is ended rather than buffered for. What is held
    // for it is therefore at most the bound plus one delivery.
    if (live && this.res.writableLength > this.o.bufferBytes) {
      this.end('slow_consumer');
      return;
    }
    this.write(records);
  }

  private write(records: readonly StreamRecord[]): void {
    const { periods, projection } = this.access;
    const out = FRAME;
    let o = 0;
    let pieces: Buffer[] | null = null;
    let last: StreamRecord | null = null;
    let n = 0;
    let minMs = Infinity;
    let maxMs = -Infinity;
    const fromMs = this.o.fromMs ?? -Infinity;
    for (const r of records) {
      const t = r.recordedAtMs;
      // A record stored late may lie below the stream's start in measurement time, even live.
      if (t < fromMs) continue;
      let inside = false;
      for (const p of periods) {
        if (t >= p.fromMs && (p.toMs === null || t < p.toMs)) {
          inside = true;
          break;
        }
      }
      if (!inside) continue;
      const mapped = this.o.lineMap ? this.o.lineMap(r.json(projection)) : null;
      if (out.length - o < EVENT_ROOM + (mapped === null ? 0 : Buffer.byteLength(mapped))) {
        (pieces ??= []).push(copyOf(out, o));
        o = 0;
      }
      out.set(ID, o);
      o = this.writeCursor(out, o + ID.length, r);
      out.set(RECORD_DATA, o);
      o += RECORD_DATA.length;
      o = mapped === null ? r.line(projection, out, o) : o + out.write(mapped, o, 'utf8');
      out[o++] = 10;
      out[o++] = 10;
      last = r;
      // Commit order is not measurement order (late records).
      if (t < minMs) minMs = t;
      if (t > maxMs) maxMs = t;
      n++;
    }
    if (last) {
      this.pos = { tx: last.tx, ord: last.ord };
      if (pieces) for (const piece of pieces) this.res.write(piece);
      this.res.write(copyOf(out, o));
      this.o.onSent?.(n, minMs, maxMs);
    }
  }

  startedAt(pos: StreamPos): void {
    this.pos ??= { tx: pos.tx, ord: pos.ord };
  }

  buffered(): number {
    return this.res.writableLength;
  }

  busy(): boolean {
    return this.paused || this.res.writableLength > this.o.bufferBytes / 2;
  }

  ready(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      // Also wakes up now and then: a pause for a recheck ends without a drain.
      const t = setTimeout(done, 50);
      this.res.once('drain', done);
      this.res.once('close', done);
    });
  }

  recheck(): void {
    if (this.closed) return;
    if (this.paused) {
      this.recheckAgain = true;
      return;
    }
    this.paused = true;
    void (async () => {
      try {
        do {
          this.recheckAgain = false;
          const a = await this.o.check();
          if (this.closed) return;
          if ('end' in a) {
            this.held = [];
            this.end(a.end);
            return;
          }
          this.access = a;
        } while (this.recheckAgain);
      } catch {
        // Cannot tell what is allowed now: send nothing until a check succeeds.
        if (!this.closed) setTimeout(() => ((this.paused = false), this.recheck()), 200).unref();
        return;
      }
      this.paused = false;
      const held = this.held;
      this.held = [];
      if (held.length) this.deliver(held, true);
    })();
  }

  /** Checks its token again (after a revocation); ends the stream when it no longer holds. One check at a time. */
  checkCredential(): void {
    const c = this.credential;
    if (!c || this.closed || this.credentialCheck) return;
    this.credentialCheck = c.check().then(
      (reason) => {
        this.credentialCheck = null;
        if (reason !== null) this.end(reason);
      },
      () => {
        // Cannot tell now: the next revocation, or the expiry, checks again.
        this.credentialCheck = null;
      },
    );
  }

  /** Ends the stream with a last event that says why and where to resume. */
  end(reason: EndReason, graceMs = END_GRACE_MS): void {
    if (this.closed) return;
    this.o.onEnd?.(reason);
    // Moved to another shard: no cursor of the old shard's log can resume (?from= does).
    const resumeFrom = reason === 'moved' || !this.pos ? null : this.encode(this.pos);
    const data = JSON.stringify({ reason, resumeFrom });
    this.res.write(`${resumeFrom ? `id: ${resumeFrom}\n` : ''}event: end\ndata: ${data}\n\n`);
    this.res.end();
    this.release();
    // A consumer that reads nothing never lets end() finish: after a while its buffer is
    // freed anyway (a slow one has that long to read the end event; a stuck one resumes
    // from the last event it did read).
    this.killTimer = setTimeout(() => this.res.destroy(), graceMs);
    this.killTimer.unref();
    this.res.once('close', () => this.killTimer && clearTimeout(this.killTimer));
  }

  private closeNow(): void {
    this.release();
  }

  private release(): void {
    if (this.closed) return;
    this.closed = true;
    this.held = [];
    clearInterval(this.keepAlive);
    this.o.onClose(this);
  }
}

/** The first `n` bytes of `b`, in a buffer of their own (the socket keeps it until sent). */
function copyOf(b: Buffer, n: number): Buffer {
  const c = Buffer.allocUnsafe(n);
  b.copy(c, 0, 0, n);
  return c;
}


/** The open sessions of a process, and how each caller's count is bounded. */
export interface StreamSessions {
  /** Counts one more stream of `caller` (its role and subject): the function that releases it, or null when the caller has `maxPerCaller` open already. */
  admit(caller: string): (() => void) | null;
  readonly maxPerCaller: number;
  /** Keeps `s` among the open sessions until its onClose. */
  add(s: SseSession): void;
  remove(s: SseSession): void;
  /** Counts a stream that ended, by reason. */
  ended(reason: EndReason): void;
  /** Ends each session whose access token expired by `nowMs`; rechecks each whose grant ended by itself (expiry). */
  sweepExpired(nowMs: number): void;
  /** Every session checks its access token again (a revocation was announced). */
  recheckCredentials(): void;
  /** The connectivity of `vin` changed: its sessions that may see it send its status when it differs. */
  statusChanged(vin: string): void;
  /** Ends every open session (shutdown), giving each `graceMs` to read its end event. */
  endAll(reason: EndReason, graceMs: number): void;
  stats(): StreamStats;
}

export function createStreamSessions(opts: { maxPerCaller: number }): StreamSessions {
  const open = new Set<SseSession>();
  const perCaller = new Map<string, number>();
  const endedBy: Record<string, number> = {};
  return {
    maxPerCaller: opts.maxPerCaller,
    admit(key) {
      const n = perCaller.get(key) ?? 0;
      if (n >= opts.maxPerCaller) return null;
      perCaller.set(key, n + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const m = (perCaller.get(key) ?? 1) - 1;
        if (m <= 0) perCaller.delete(key);
        else perCaller.set(key, m);
      };
    },
    add: (s) => void open.add(s),
    remove: (s) => void open.delete(s),
    ended(reason) {
      endedBy[reason] = (endedBy[reason] ?? 0) + 1;
    },
    sweepExpired(nowMs) {
      for (const s of [...open]) {
        if (s.credential && s.credential.expiresAtMs <= nowMs) s.end('token_expired');
        else if (s.expiresAtMs <= nowMs) s.recheck();
      }
    },
    recheckCredentials() {
      for (const s of open) s.checkCredential();
    },
    statusChanged(vin) {
      for (const s of open) if (s.vin === vin) s.refreshStatus();
    },
    endAll(reason, graceMs) {
      for (const s of [...open]) s.end(reason, graceMs);
    },
    stats() {
      let total = 0;
      let max = 0;
      for (const s of open) {
        const b = s.buffered();
        total += b;
        if (b > max) max = b;
      }
      return { open: open.size, bufferedBytes: total, maxBufferedBytes: max, ended: { ...endedBy } };
    },
  };
}
