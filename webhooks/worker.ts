// The webhook delivery worker (docs/webhooks.md): every instance runs one; each endpoint is
// delivered to by the one instance holding its lease. Per (endpoint, grant) a cursor over
// the vehicle's stream log (stream/log.ts: committed records in commit order) says what was
// delivered; the next delivery is stored (its webhook-id and last position) before its
// first attempt, sent while the grant's and the vehicle's rows are held FOR SHARE, and the
// cursor moves, with the day's disclosure, in that same transaction after the 2xx.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { Webhook as Signer } from 'standardwebhooks';
import type { Db } from '../storage/driver/db.ts';
import type { StreamLogRepo } from '../stream/log.ts';
import { encodeCursor } from '../stream/cursor.ts';
import type { LineProjection, StreamPos, StreamRecord } from '../proto/stream.ts';
import { grantStatus, recipientRead } from '../access/grants.ts';
import { logBacklog, type LeasedWebhook, type WebhookGrantState, type WebhookRepo } from '../storage/repos/webhooks.ts';
import type { UrlChecker, CheckedTarget } from './safety.ts';
import { createAgents, post, type SendLimits, type SendResult } from './send.ts';

export interface WorkerOptions {
  /** This process's name (the lease holder). */
  instance: string;
  /** An endpoint's lease lasts this long unless renewed (every third of it), ms. */
  leaseMs: number;
  /** How often the worker looks for work without being woken, ms. */
  pollMs: number;
  /** Deliveries in flight at once, all endpoints. */
  concurrency: number;
  /** Deliveries in flight at once to one endpoint (one while it fails). */
  perEndpoint: number;
  /** Most endpoints one instance holds. */
  maxEndpoints: number;
  /** First retry after this, ms; then ×2, ×6, ×12, … up to retryMaxMs. */
  retryFirstMs: number;
  retryMaxMs: number;
  /** An endpoint failing this long (and still failing) is disabled, ms. */
  disableAfterMs: number;
  /** Records per delivery at most. */
  maxRecords: number;
  /** Where a new grant's cursor starts: this long before the later of the endpoint's and the grant's creation (commit time), ms. */
  startMarginMs: number;
  /** An endpoint's host is resolved (and checked) again after this, ms. */
  resolveEveryMs: number;
  limits: SendLimits;
}

export interface WorkerMetrics {
  delivered(kind: string, records: number, latencyMs: number | null, requestMs: number): void;
  failed(reason: string): void;
  retried(): void;
  backlog(byState: Record<string, number>): void;
}

export interface WorkerDeps {
  repo: WebhookRepo;
  /** Shard i's stream log and database (one shard without SHARD_URLS). */
  logs: readonly StreamLogRepo[];
  shardDbs: readonly Db[];
  shardOf(vin: string): number;
  /** Whether cursors name their shard (SHARD_URLS). */
  sharded: boolean;
  checker: UrlChecker;
  metrics?: WorkerMetrics;
  log: Logger;
}

/** The retry delays: first, ×2, ×6, ×12, ×30, … (5 s, 10 s, 30 s, 1 min, 2.5 min, …) capped at max. */
export function retryDelay(failures: number, firstMs: number, maxMs: number): number {
  const steps = [1, 2, 6, 12, 30, 60, 120, 240, 480, 720];
  const k = steps[Math.min(Math.max(failures, 1), steps.length) - 1]!;
  return Math.min(firstMs * k, maxMs);
}

/** The webhook-id of a delivery: the same for every attempt of it (Standard Webhooks: receivers dedupe by it). */
export function deliveryId(webhookId: string, grantId: string, kind: string, from: StreamPos | null, to: StreamPos | null): string {
  const h = createHash('sha256').update(`${webhookId}|${grantId}|${kind}|${from ? `${from.tx}.${from.ord}` : ''}|${to ? `${to.tx}.${to.ord}` : ''}`).digest('base64url');
  return `msg_${h.slice(0, 27)}`;
}

const cmp = (a: StreamPos, b: StreamPos): number => (a.tx !== b.tx ? a.tx - b.tx : a.ord - b.ord);

/** Rounds (the look for work over every endpoint held) at most this often when woken, ms. */
const MIN_ROUND_GAP_MS = 50;

/** A pair with work, found by a round. */
interface Candidate {
  w: LeasedWebhook;
  s: WebhookGrantState;
  /** Horizon of the vehicle's shard's log in that round. */
  h: number;
  oldestAtMs: number | null;
}

/** What a step did: sent (2xx) or skipped (nothing to send) and the pair goes on; done: the pair has no more; the rest stop the job. */
type Outcome = 'sent' | 'skipped' | 'done' | 'wait' | 'lost' | 'failed' | 'idle';

export function createWebhookWorker(o: WorkerOptions, deps: WorkerDeps) {
  const { repo, log } = deps;
  const agents = createAgents();
  let endpoints = new Map<string, LeasedWebhook>();
  let leasedAt = 0;
  let syncedAt = 0;
  const targets = new Map<string, { url: string; at: number; target: CheckedTarget | null; problem: string | null }>();
  const signers = new Map<string, Signer>();
  /** Pairs with a delivery job running: `${webhook}|${grant}`. */
  const running = new Set<string>();
  const perEndpoint = new Map<string, number>();
  /** Pairs that must wait (a restriction) until then, ms. */
  const notBefore = new Map<string, number>();
  /** When this instance last wrote an endpoint's success, ms. */
  const successAt = new Map<string, number>();
  /** Endpoints backing off until then, ms (as stored). */
  const backoff = new Map<string, number>();
  /** Pairs with work found by the last round, not started yet (no free slot). */
  let queue: Candidate[] = [];
  let lastTickAt = 0;
  let timer: NodeJS.Timeout | null = null;
  let ticking: Promise<void> | null = null;
  let again = false;
  let stopped = false;
  const jobs = new Set<Promise<void>>();

  const signerOf = (w: LeasedWebhook): Signer => {
    let s = signers.get(w.id);
    if (!s) signers.set(w.id, (s = new Signer(w.secret)));
    return s;
  };

  async function targetOf(w: LeasedWebhook): Promise<{ target: CheckedTarget } | { problem: string }> {
    const now = Date.now();
    let t = targets.get(w.id);
    if (!t || t.url !== w.url || now - t.at > o.resolveEveryMs) {
      const c = await deps.checker.check(w.url);
      t = { url: w.url, at: now, target: c.ok ? c.target : null, problem: c.ok ? null : c.problem };
      // A new address: connections to the old one are not reused.
      if (c.ok) agents.drop(`${w.id}|`);
      targets.set(w.id, t);
    }
    return t.target ? { target: t.target } : { problem: t.problem ?? 'refused' };
  }

  async function send(w: LeasedWebhook, id: string, body: string): Promise<SendResult> {
    const t = await targetOf(w);
    if ('problem' in t) return { ok: false, status: null, reason: `address refused: ${t.problem}`, ms: 0 };
    const now = new Date();
    const headers = { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': signerOf(w).sign(id, now, body) };
    const agent = agents.agentFor(`${w.id}|${t.target.address}`, t.target.url.protocol === 'https:');
    return post(t.target, headers, body, o.limits, agent);
  }

  /** The records of (after, last] of the pair's vehicle (at most maxRecords), and the position the delivery ends at. */
  async function recordsAfter(s: WebhookGrantState, after: StreamPos, bound: number, upTo: StreamPos | null): Promise<{ records: StreamRecord[]; last: StreamPos | null }> {
    const log_ = deps.logs[deps.shardOf(s.vin)]!;
    const page = await log_.page(s.vin, after, upTo ? upTo.tx + 1 : bound, o.maxRecords, null);
    let records = page.records;
    if (upTo) records = records.filter((r) => cmp(r, upTo) <= 0);
    if (records.length > o.maxRecords) records = records.slice(0, o.maxRecords);
    let last: StreamPos | null;
    if (upTo) last = upTo;
    else if (records.length === o.maxRecords) last = { tx: records.at(-1)!.tx, ord: records.at(-1)!.ord };
    else last = page.last;
    return { records, last };
  }

  /**
   * One delivery of the pair (or a step that needs none): returns what happened. `h`: the
   * horizon of the vehicle's shard's log read this round.
   */
  async function step(w: LeasedWebhook, s: WebhookGrantState, h: number, oldestAtMs: number | null): Promise<Outcome> {
    const wantsGrants = w.events.includes('grants');
    const wantsRecords = w.events.includes('records');
    const now = new Date();
    const status = grantStatus(s.grant, now);
    type Plan = { kind: 'records'; id: string; records: StreamRecord[]; last: StreamPos } | { kind: 'event'; type: string; id: string; at: Date; created: boolean };
    let plan: Plan | null = null;
    if (s.pending) {
      if (s.pending.kind === 'records') {
        if (s.pending.tx === null || s.pending.ord === null || !s.after) return 'idle';
        const upTo = { tx: s.pending.tx, ord: s.pending.ord };
        const r = await recordsAfter(s, s.after, h, upTo);
        plan = { kind: 'records', id: s.pending.id, records: r.records, last: upTo };
      } else {
        const created = s.pending.kind === 'grant.created';
        plan = { kind: 'event', type: s.pending.kind, id: s.pending.id, at: eventTime(s, s.pending.kind), created };
      }
    } else if (wantsGrants && !s.createdSent) {
      plan = { kind: 'event', type: 'grant.created', id: deliveryId(w.id, s.grantId, 'grant.created', null, null), at: s.grant.createdAt, created: true };
    } else if (status !== 'active') {
      const type = `grant.${status}`;
      if (!wantsGrants) {
        // Nothing to tell: the pair is done.
        const r = await repo.underLocks(w.id, o.instance, s.vin, s.grantId, (tx) => repo.advance(tx, { webhookId: w.id, grantId: s.grantId, to: null, endedSent: true, records: 0 }, null));
        return r === null ? 'lost' : 'done';
      }
      plan = { kind: 'event', type, id: deliveryId(w.id, s.grantId, type, null, null), at: eventTime(s, type), created: false };
    } else if (wantsRecords && s.after) {
      const r = await recordsAfter(s, s.after, h, null);
      if (!r.last) return 'idle';
      if (r.records.length === 0) {
        // Erased since, or nothing of the entries left: the cursor moves on, nothing is sent.
        const last = r.last;
        const from = s.after;
        const x = await repo.underLocks(w.id, o.instance, s.vin, s.grantId, (tx) => repo.advance(tx, { webhookId: w.id, grantId: s.grantId, from, to: last, records: 0 }, null));
        if (x !== true) return 'lost';
        moved(s, last);
        return 'skipped';
      }
      plan = { kind: 'records', id: deliveryId(w.id, s.grantId, 'records', s.after, r.last), records: r.records, last: r.last };
    }
    if (!plan) return 'idle';
    if (s.pending) deps.metrics?.retried();
    else {
      // Stored before the first attempt: a retry, here or on another instance after a crash,
      // sends the same id and records. Only from the cursor this plan started at.
      const stored = await repo.setPending(w.id, s.grantId, s.after, plan.kind === 'records' ? { id: plan.id, kind: 'records', tx: plan.last.tx, ord: plan.last.ord } : { id: plan.id, kind: plan.type, tx: null, ord: null });
      if (!stored) return 'lost';
    }
    const p = plan;
    const from = s.after;
    let sent: SendResult | null = null;
    let count = 0;
    const done = await repo.underLocks(w.id, o.instance, s.vin, s.grantId, async (tx): Promise<Outcome> => {
      if (p.kind === 'event') {
        const body = JSON.stringify({ type: p.type, grantId: s.grantId, vin: s.vin, at: p.at.toISOString() });
        sent = await send(w, p.id, body);
        if (!sent.ok) return 'failed';
        await repo.advance(tx, { webhookId: w.id, grantId: s.grantId, to: null, ...(p.created ? { createdSent: true } : { endedSent: true }), records: 0 }, null);
        s.pending = null;
        if (p.created) s.createdSent = true;
        return p.created ? 'sent' : 'done';
      }
      // The terms as they stand now, with the rows held: what a revocation, transfer,
      // restriction or opt-out answered before this point excludes is not sent.
      const f = await repo.factsIn(tx, s.grantId);
      const consent = f.consent;
      const d = recipientRead({ role: w.recipientRole, subject: w.recipientId }, f.grant, { ownerPeriods: f.periods, restricted: consent.restricted, now: new Date(), mode: 'stream' });
      if (!d.ok) {
        if (d.refusal === 'RESTRICTED') return 'wait';
        // The grant ended (its event comes next) or never allowed streaming: these records are not the recipient's.
        const skip = d.refusal === 'MODE_NOT_GRANTED';
        if (!(await repo.advance(tx, { webhookId: w.id, grantId: s.grantId, from, to: skip ? p.last : null, records: 0 }, null))) return 'lost';
        if (skip) moved(s, p.last);
        else {
          s.pending = null;
          if (f.grant) s.grant = f.grant;
        }
        return 'skipped';
      }
      const cats = d.scope.categories;
      const projection: LineProjection = {
        categories: cats,
        nulled: !consent.location && cats.includes('location') ? ['location'] : [],
        ...(d.scope.fields ? { fields: d.scope.fields } : {}),
      };
      const windows = d.scope.windows.map((x) => ({ from: x.from.getTime(), to: x.to ? x.to.getTime() : Infinity }));
      const replayFrom = s.replay?.fromMs ?? null;
      const replayUntil = s.replay ? { tx: s.replay.untilTx, ord: s.replay.untilOrd } : null;
      const lines: string[] = [];
      let minMs = Infinity;
      let maxMs = -Infinity;
      let lastSent: StreamRecord | null = null;
      for (const r of p.records) {
        const t = r.recordedAtMs;
        if (replayFrom !== null && replayUntil && cmp(r, replayUntil) <= 0 && t < replayFrom) continue;
        if (!windows.some((x) => t >= x.from && t < x.to)) continue;
        lines.push(r.json(projection));
        if (t < minMs) minMs = t;
        if (t > maxMs) maxMs = t;
        lastSent = r;
      }
      if (!lastSent) {
        if (!(await repo.advance(tx, { webhookId: w.id, grantId: s.grantId, from, to: p.last, records: 0 }, null))) return 'lost';
        moved(s, p.last);
        return 'skipped';
      }
      const shard = deps.sharded ? deps.shardOf(s.vin) : undefined;
      const cursor = encodeCursor(s.vin, { tx: lastSent.tx, ord: lastSent.ord }, undefined, shard);
      const body = `{"type":"records","grantId":${JSON.stringify(s.grantId)},"vin":${JSON.stringify(s.vin)},"records":[${lines.join(',')}],"cursor":${JSON.stringify(cursor)}}`;
      sent = await send(w, p.id, body);
      if (!sent.ok) return 'failed';
      count = lines.length;
      const disclosed = cats.filter((c) => !projection.nulled.includes(c));
      const ok = await repo.advance(
        tx,
        { webhookId: w.id, grantId: s.grantId, from, to: p.last, records: lines.length },
        disclosed.length ? { recipientId: w.recipientId, role: w.recipientRole, categories: disclosed, fromMs: minMs, toMs: maxMs } : null,
      );
      // Sent and disclosed; a replay moved the cursor meanwhile: the next round starts from there.
      if (ok) moved(s, p.last);
      else s.pending = null;
      return 'sent';
    });
    if (done === null) return 'lost';
    const result = sent as SendResult | null;
    if ((done === 'sent' || done === 'done') && result?.ok) {
      // The endpoint's last success is written at most once a second while all goes well.
      const now2 = Date.now();
      if (w.consecutiveFailures > 0 || now2 - (successAt.get(w.id) ?? 0) >= 1000) {
        successAt.set(w.id, now2);
        await repo.succeeded(w.id);
      }
      if (w.consecutiveFailures > 0) {
        w.consecutiveFailures = 0;
        backoff.delete(w.id);
      }
      deps.metrics?.delivered(p.kind === 'records' ? 'records' : p.type, count, p.kind === 'records' && oldestAtMs !== null ? Date.now() - oldestAtMs : null, result.ms);
    } else if (done === 'failed' && result && !result.ok) {
      const f = await repo.failed(w.id, result.reason, (n) => retryDelay(n, o.retryFirstMs, o.retryMaxMs), o.disableAfterMs, result.gone ? `the endpoint answered 410 Gone` : null);
      w.consecutiveFailures = f.failures;
      backoff.set(w.id, Date.now() + (f.disabled ? Infinity : retryDelay(f.failures, o.retryFirstMs, o.retryMaxMs)));
      deps.metrics?.failed(result.status === null ? (result.reason.startsWith('address refused') ? 'address_refused' : result.reason.startsWith('no ') ? 'timeout' : 'connection') : result.status >= 300 && result.status < 400 ? 'redirect' : `http_${Math.floor(result.status / 100)}xx`);
      if (f.disabled) {
        endpoints.delete(w.id);
        log.warn({ event: 'webhook_disabled', webhook_id: w.id, recipient: w.recipientId, reason: result.reason }, 'webhook disabled');
      } else log.info({ event: 'webhook_delivery_failed', webhook_id: w.id, failures: f.failures, reason: result.reason }, 'webhook delivery failed; will retry');
    }
    return done;
  }

  /** Deliveries of one pair in a row, while there is more and they succeed (bounded). */
  async function job(w: LeasedWebhook, first: WebhookGrantState, h: number, oldestAtMs: number | null): Promise<void> {
    // Read again as the job starts: the round's view may be older than a job of this pair
    // that ended since. Then the step keeps `s` as stored (cursor, pending, events sent).
    const s = await repo.stateOf(w.id, first.grantId);
    if (!s) return;
    for (let i = 0; i < 50 && !stopped && endpoints.has(w.id); i++) {
      const r = await step(w, s, h, i === 0 ? oldestAtMs : null);
      if (r === 'wait') notBefore.set(`${w.id}|${s.grantId}`, Date.now() + 2000);
      if (r !== 'sent' && r !== 'skipped') return;
      if (w.consecutiveFailures > 0) return;
    }
  }

  async function tick(): Promise<void> {
    const now = Date.now();
    if (now - leasedAt >= o.leaseMs / 3) {
      const held = await repo.lease(o.instance, o.leaseMs, o.maxEndpoints);
      leasedAt = now;
      endpoints = new Map(held.map((w) => [w.id, w]));
      for (const w of held) {
        if (w.nextAttemptAt) backoff.set(w.id, w.nextAttemptAt.getTime());
        else backoff.delete(w.id);
      }
    }
    if (endpoints.size === 0) return;
    if (now - syncedAt >= 1000) {
      syncedAt = now;
      await repo.syncGrants([...endpoints.values()].filter((w) => w.grantIds === null).map((w) => w.id));
    }
    const due = [...endpoints.values()].filter((w) => (backoff.get(w.id) ?? 0) <= now);
    if (due.length === 0) return;
    const states = await repo.states(due.map((w) => w.id));
    // Place new cursors at the present (a little before: records committed as the endpoint or grant was made are included).
    for (const s of states) {
      if (s.after) continue;
      const w = endpoints.get(s.webhookId)!;
      const since = Math.max(w.createdAt.getTime(), s.grant.createdAt.getTime());
      const pos = await deps.logs[deps.shardOf(s.vin)]!.startFor(s.vin, since, o.startMarginMs);
      await repo.place(s.webhookId, s.grantId, pos);
      s.after = pos;
    }
    // Per shard: its horizon, and what each pair's cursor has below it.
    const byShard = new Map<number, WebhookGrantState[]>();
    for (const s of states) {
      const i = deps.shardOf(s.vin);
      let l = byShard.get(i);
      if (!l) byShard.set(i, (l = []));
      l.push(s);
    }
    const backlogOf = new Map<WebhookGrantState, { records: number; oldestAt: Date | null }>();
    const horizon = new Map<number, number>();
    const byState: Record<string, number> = { active: 0, retrying: 0 };
    for (const [i, list] of byShard) {
      const { h } = await deps.logs[i]!.horizon();
      horizon.set(i, h);
      const counts = await logBacklog(deps.shardDbs[i]!, list.map((s) => ({ vin: s.vin, after: s.after! })), h);
      list.forEach((s, k) => backlogOf.set(s, counts[k]!));
    }
    const found: Candidate[] = [];
    for (const s of states) {
      const w = endpoints.get(s.webhookId)!;
      const b = backlogOf.get(s)!;
      byState[w.consecutiveFailures > 0 ? 'retrying' : 'active']! += b.records;
      const key = `${s.webhookId}|${s.grantId}`;
      if (running.has(key)) continue;
      if ((notBefore.get(key) ?? 0) > now) continue;
      const wantsGrants = w.events.includes('grants');
      const work = s.pending !== null || (wantsGrants && !s.createdSent) || grantStatus(s.grant, new Date(now)) !== 'active' || (w.events.includes('records') && b.records > 0);
      if (work) found.push({ w, s, h: horizon.get(deps.shardOf(s.vin))!, oldestAtMs: b.oldestAt ? b.oldestAt.getTime() : null });
    }
    // The oldest backlog first; what finds no free slot now waits in the queue (the next round replaces it).
    found.sort((a, b) => (a.oldestAtMs ?? Infinity) - (b.oldestAtMs ?? Infinity));
    queue = found;
    startQueued();
    deps.metrics?.backlog(byState);
  }

  /** Starts queued pairs while slots are free (all endpoints, and the pair's endpoint). */
  function startQueued(): void {
    const left: Candidate[] = [];
    for (const c of queue) {
      const { w, s } = c;
      const key = `${s.webhookId}|${s.grantId}`;
      if (stopped || running.has(key) || !endpoints.has(w.id) || (backoff.get(w.id) ?? 0) > Date.now()) continue;
      const n = perEndpoint.get(w.id) ?? 0;
      if (running.size >= o.concurrency || n >= (w.consecutiveFailures > 0 ? 1 : o.perEndpoint)) {
        left.push(c);
        continue;
      }
      running.add(key);
      perEndpoint.set(w.id, n + 1);
      const p = job(w, s, c.h, c.oldestAtMs)
        .catch((err: Error) => log.warn({ event: 'webhook_job_failed', webhook_id: w.id, grant_id: s.grantId, err: err.message }, 'webhook delivery step failed; retrying'))
        .finally(() => {
          running.delete(key);
          const m = (perEndpoint.get(w.id) ?? 1) - 1;
          if (m <= 0) perEndpoint.delete(w.id);
          else perEndpoint.set(w.id, m);
          jobs.delete(p);
          // A slot is free: the next queued pair, without a new round.
          startQueued();
        });
      jobs.add(p);
    }
    queue = left;
  }

  function schedule(ms: number): void {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(run, ms);
    timer.unref?.();
  }

  function run(): void {
    timer = null;
    if (stopped) return;
    if (ticking) {
      again = true;
      return;
    }
    lastTickAt = Date.now();
    ticking = tick()
      .catch((err: Error) => log.warn({ event: 'webhook_tick_failed', err: err.message }, 'webhook worker round failed; retrying'))
      .finally(() => {
        ticking = null;
        if (again) {
          again = false;
          schedule(MIN_ROUND_GAP_MS);
        } else schedule(o.pollMs);
      });
  }

  /** Something may be due (a commit here, a new endpoint): look soon, at most one round per MIN_ROUND_GAP_MS. */
  function wake(): void {
    if (stopped) return;
    if (ticking) {
      again = true;
      return;
    }
    schedule(Math.max(5, lastTickAt + MIN_ROUND_GAP_MS - Date.now()));
  }

  return {
    start(): void {
      schedule(0);
    },
    wake,
    /** Stops looking for work, waits for deliveries in flight (bounded by their timeouts), gives up the leases. */
    async close(): Promise<void> {
      stopped = true;
      if (timer) clearTimeout(timer);
      await ticking;
      await Promise.allSettled([...jobs]);
      await repo.release(o.instance).catch(() => {});
      agents.close();
    },
  };
}

/** The pair's cursor moved to `to` (and its pending delivery is done). */
function moved(s: WebhookGrantState, to: StreamPos): void {
  s.after = { tx: to.tx, ord: to.ord };
  s.pending = null;
  if (s.replay && cmp(to, { tx: s.replay.untilTx, ord: s.replay.untilOrd }) >= 0) s.replay = null;
}

function eventTime(s: WebhookGrantState, type: string): Date {
  const g = s.grant;
  if (type === 'grant.created') return g.createdAt;
  if (type === 'grant.revoked') return g.revokedAt ?? new Date();
  if (type === 'grant.ended') return g.periodEndedAt ?? new Date();
  return g.expiresAt;
}

export type WebhookWorker = ReturnType<typeof createWebhookWorker>;
