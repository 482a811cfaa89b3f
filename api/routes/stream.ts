// Live CarData (EU Data Act Art. 4(1), 5(1): "continuously and in real time where
// relevant"): Server-Sent Events, one event per stored record after its commit, each with
// an opaque resume cursor; a reconnect with Last-Event-ID (or ?after=) resumes with no gap
// and no duplicate. README "Live CarData" is the contract.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { TokenVerifier } from '../auth.ts';
import type { Principal } from '../../identity/tokens.ts';
import { GROUPS } from '../../proto/fields.ts';
import { caller, callerKey, ownerCaller, rolesHook } from '../auth.ts';
import { grantEnd, grantStatus, recipientRead, type Refusal } from '../../access/grants.ts';
import { ApiError, refusalError } from '../errors.ts';
import { decodeCursor } from '../../stream/cursor.ts';
import { SseSession, type Access, type Credential, type SessionOptions, type StreamSessions } from '../../stream/sse.ts';
import type { StreamPos } from '../../proto/stream.ts';
import type { ConsentStore, GrantStore, RightsStore, SeriesStore, StreamFeed, StreamPositions } from '../ports.ts';
import { statusJson, type ConnectivityReads } from './connectivity.ts';
import { isoTime } from './cardata.ts';
import { DESCRIBED_BY, NamesParam } from '../export.ts';
import { vssLine } from '../../proto/vss-records.ts';
import { VinParams } from './vehicles.ts';

export interface StreamDeps {
  tokens: TokenVerifier;
  rights: Pick<RightsStore, 'currentOwner' | 'periodsOf'>;
  consents: Pick<ConsentStore, 'timeline'>;
  feed: StreamFeed;
  positions: StreamPositions;
  /** Grants, for GET /v1/grants/{id}/stream; absent: no grant streams. */
  grants?: Pick<GrantStore, 'get' | 'discloseSession' | 'settleSession'>;
  /** Keep-alive comment interval, ms. */
  keepAliveMs: number;
  /** Bytes a consumer may leave unread before its stream is ended with a resume cursor. */
  bufferBytes: number;
  /** The open sessions of this instance (stream/sse.ts): bounds them per caller, counts them for metrics. */
  sessions: StreamSessions;
  /** Whether a verified token has been revoked since (its jti, subject or session), from memory: asked of every open stream after each revocation. */
  isRevokedNow(p: Principal): boolean;
  /** How far back ?from= may reach, ms (the stream log's retention). */
  fromWindowMs: number;
  /** Margin between measurement and commit for ?from= (the ingest's clock-skew bound and more), ms. */
  fromMarginMs: number;
  /** Connectivity: the owner's stream sends `event: status` when the vehicle's status changes; absent: no status events. */
  connectivity?: { reads: Pick<ConnectivityReads, 'status'>; series: Pick<SeriesStore, 'latest'> };
}

// ---------------------------------------------------------------------------
// Routes.

const StreamQuery = z
  .object({
    after: z.string().max(100).optional(),
    from: isoTime.optional(),
    /** `vss`: each record keyed by VSS path in VSS units (the line of the export with ?names=vss). */
    names: NamesParam,
  })
  .strict();

export const streamRoutes: FastifyPluginAsync<StreamDeps> = async (app0, deps) => {
  const app = app0.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', rolesHook(deps.tokens));
  const sessions = deps.sessions;

  /**
   * The request's access token, for as long as the stream lasts: it ends at the token's
   * expiry (the sweep below) and when a revocation covers it (checked in memory after each).
   */
  const credentialOf = (p: Principal): Credential => ({
    expiresAtMs: p.expiresAt,
    check: async () => (deps.isRevokedNow(p) ? 'token_revoked' : null),
  });

  /** Disclosure updates of ended grant streams still being written (awaited at close). */
  const settling = new Set<Promise<void>>();
  app.addHook('onClose', async () => {
    await Promise.all([...settling]);
  });

  // SSE responses never end by themselves: end them before the server waits for them.
  app.addHook('preClose', async () => {
    // A consumer gets a second to read its end event; shutdown does not wait longer.
    sessions.endAll('shutdown', 1000);
  });

  /** The start position from Last-Event-ID (wins: EventSource sends it on reconnect) or ?after. */
  /** Where the stream starts; `shard`: the shard whose log that position is in (sharded storage). */
  type Start = { after: StreamPos | null; fromMs: number | null; shard?: number | undefined };
  async function startOf(req: FastifyRequest, vin: string, after: string | undefined, from: Date | undefined): Promise<Start> {
    const header = req.headers['last-event-id'];
    const text = typeof header === 'string' && header !== '' ? header : after;
    const shard = deps.positions.shardOf?.(vin);
    if (text !== undefined) {
      const pos = decodeCursor(vin, text);
      if (!pos) throw new ApiError(400, 'API_ERR_INVALID_CURSOR', 'the cursor (Last-Event-ID or ?after=) is not a cursor of this stream');
      if (pos.shard !== shard) {
        throw new ApiError(410, 'API_ERR_CURSOR_EXPIRED', "the vehicle's data moved to another storage shard since this cursor was given (a cursor counts in one shard's log); start again with ?from=");
      }
      if (pos.tx <= (await deps.positions.trimmedBelow(vin))) {
        throw new ApiError(410, 'API_ERR_CURSOR_EXPIRED', 'the cursor is older than the stream log keeps; start again with ?from= or the CarData export');
      }
      return { after: { tx: pos.tx, ord: pos.ord }, fromMs: null, shard };
    }
    if (from) {
      const fromMs = from.getTime();
      if (fromMs < Date.now() - deps.fromWindowMs) {
        throw new ApiError(400, 'API_ERR_VALIDATION', `querystring.from: the stream reaches back ${Math.round(deps.fromWindowMs / 86_400_000)} days at most; use the CarData export for older data`);
      }
      // Before the first entry that may hold such records (or a transaction still running):
      // the backlog from there keeps only records measured since `from`, then the stream goes live.
      const pos = await deps.positions.startFor(vin, fromMs, deps.fromMarginMs);
      return { after: { tx: pos.tx, ord: 0 }, fromMs, shard };
    }
    return { after: null, fromMs: null, shard };
  }

  function admit(key: string): () => void {
    const release = sessions.admit(key);
    if (!release) throw new ApiError(429, 'API_ERR_TOO_MANY_STREAMS', `at most ${sessions.maxPerCaller} open streams per caller; close one first`);
    return release;
  }

  /** Answers 200 text/event-stream and runs the session until the consumer leaves or it ends. */
  function serve(
    req: FastifyRequest,
    reply: FastifyReply,
    vin: string,
    start: Start,
    access: Exclude<Access, { end: string }>,
    check: () => Promise<Access>,
    release: () => void,
    credential: Credential,
    extra: Partial<Pick<SessionOptions, 'onSent' | 'onClose' | 'grantId' | 'lineMap' | 'status'>> & { expiresAtMs?: number } = {},
  ): void {
    void reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      // nginx and similar proxies: do not buffer the stream.
      'x-accel-buffering': 'no',
      link: DESCRIBED_BY,
    });
    // Events are small and must leave at once.
    res.socket?.setNoDelay?.(true);
    const session = new SseSession({
      vin,
      res,
      start: start.after,
      fromMs: start.fromMs,
      ...(start.shard !== undefined ? { shard: start.shard } : {}),
      access,
      check,
      keepAliveMs: deps.keepAliveMs,
      bufferBytes: deps.bufferBytes,
      credential,
      ...(extra.onSent ? { onSent: extra.onSent } : {}),
      ...(extra.grantId !== undefined ? { grantId: extra.grantId } : {}),
      ...(extra.lineMap ? { lineMap: extra.lineMap } : {}),
      ...(extra.status ? { status: extra.status } : {}),
      onEnd: (reason) => sessions.ended(reason),
      onClose: (s) => {
        sessions.remove(s);
        deps.feed.close(s);
        release();
        extra.onClose?.(s);
      },
    });
    if (extra.expiresAtMs !== undefined) session.expiresAtMs = extra.expiresAtMs;
    sessions.add(session);
    // A revocation that landed between the request's authentication and now found no session to end.
    session.checkCredential();
    session.begin();
    // The map changed between reading the start and now (the feed places the stream by the
    // map as it is now): the start counts in the old shard's log.
    if (deps.positions.shardOf && deps.positions.shardOf(vin) !== start.shard) {
      session.end('moved');
      return;
    }
    deps.feed.open(session, { after: start.after, fromMs: start.fromMs }).then(
      () => {
        // A change may have landed while the backlog was read: check once it is attached.
        session.recheck();
      },
      (err: Error) => {
        req.log.warn({ event: 'stream_failed', vin, err: err.message }, 'stream ended by an error');
        session.end('error');
      },
    );
  }

  // A grant or an access token that expires ends its streams within a second: a sweep, not
  // a timer per stream (grants run for up to a year, beyond what one timer can wait).
  const expirySweep = setInterval(() => sessions.sweepExpired(Date.now()), 500);
  expirySweep.unref();
  app.addHook('onClose', async () => clearInterval(expirySweep));

  const ownerAccess = async (vin: string, subject: string): Promise<Access> => {
    if ((await deps.rights.currentOwner(vin)) !== subject) return { end: 'ownership_ended' };
    const periods = await deps.rights.periodsOf(vin, subject);
    const tl = await deps.consents.timeline(vin, Date.now());
    const cur = tl[tl.length - 1]!;
    return {
      periods: periods.map((p) => ({ fromMs: p.from.getTime(), toMs: p.to ? p.to.getTime() : null })),
      // Stored records are filtered already; this keeps positions committed before an
      // opt-out (and not yet sent) from going out after it.
      projection: { categories: GROUPS, nulled: cur.location ? [] : ['location'] },
    };
  };

  app.get(
    '/v1/vehicles/:vin/stream',
    { config: { roles: ['customer'] as const }, schema: { params: VinParams, querystring: StreamQuery } },
    async (req, reply) => {
      const { vin } = req.params;
      const p = await ownerCaller(req, vin, deps.rights.currentOwner);
      const start = await startOf(req, vin, req.query.after, req.query.from);
      const access = await ownerAccess(vin, p.subject);
      if ('end' in access) throw new ApiError(404, 'API_ERR_NOT_FOUND', `vehicle ${vin} not found`);
      const release = admit(callerKey(p));
      req.log.info({ event: 'stream_opened', vin, resume: start.after !== null }, 'stream opened');
      const conn = deps.connectivity;
      // The vehicle's connectivity (README "Connectivity"): at the start and on each change.
      const status = conn
        ? async () => {
            const windows = (await deps.rights.periodsOf(vin, p.subject)).map((x) => ({ from: x.from, to: x.to }));
            return statusJson(await conn.reads.status(vin, windows), windows, conn.series);
          }
        : undefined;
      serve(req, reply, vin, start, access, () => ownerAccess(vin, p.subject), release, credentialOf(p), {
        ...(req.query.names === 'vss' ? { lineMap: vssLine } : {}),
        ...(status ? { status } : {}),
      });
      return reply;
    },
  );

  const grants = deps.grants;
  if (!grants) return;
  const GrantIdParams = z.object({ id: z.string().uuid('must be a grant id (a UUID)') }).strict();

  /**
   * What the recipient may see through grant `id` now (access/grants.ts decides), or why not:
   * the grant's categories, from the granting owner's periods within [dataFrom, end of the
   * grant); positions written as null while the owner refuses location.
   */
  const grantAccess = async (p: { role: string; subject: string }, id: string): Promise<{ vin: string; endMs: number; access: Access; refusal?: Refusal }> => {
    const now = new Date();
    const g = await grants.get(id);
    if (!g) return { vin: '', endMs: 0, access: { end: 'revoked' }, refusal: 'NOT_FOUND' };
    const periods = await deps.rights.periodsOf(g.vin, g.ownerId);
    const state = (await deps.consents.timeline(g.vin, now.getTime())).at(-1)!;
    const d = recipientRead({ role: p.role, subject: p.subject }, g, { ownerPeriods: periods, restricted: state.restricted, now, mode: 'stream' });
    const endMs = grantEnd(g).getTime();
    if (!d.ok) {
      const status = grantStatus(g, now);
      const end = d.refusal === 'RESTRICTED' ? 'restricted' : status === 'active' ? 'revoked' : status;
      return { vin: g.vin, endMs, access: { end }, refusal: d.refusal };
    }
    const cats = d.scope.categories;
    return {
      vin: g.vin,
      endMs,
      access: {
        periods: d.scope.windows.map((w) => ({ fromMs: w.from.getTime(), toMs: w.to ? w.to.getTime() : null })),
        // A field-level grant's fields only: the line builders write no other field (stream/held-rows.ts, copy-out.ts).
        projection: { categories: cats, nulled: !state.location && cats.includes('location') ? ['location'] : [], fields: d.scope.fields },
      },
    };
  };

  app.get(
    '/v1/grants/:id/stream',
    { config: { roles: ['workshop', 'third_party'] as const }, schema: { params: GrantIdParams, querystring: StreamQuery } },
    async (req, reply) => {
      const p = caller(req);
      const { id } = req.params;
      const first = await grantAccess(p, id);
      const refuse = (refusal: Refusal | undefined): never => {
        throw refusalError(refusal, { mode: 'stream', notFound: () => new ApiError(404, 'API_ERR_NOT_FOUND', `grant ${id} not found`) });
      };
      if ('end' in first.access) return refuse(first.refusal);
      const { vin } = first;
      const access = first.access;
      const start = await startOf(req, vin, req.query.after, req.query.from);
      const release = admit(callerKey(p));
      // One disclosure per stream session, filed before the first byte by the statement
      // that re-checks the grant and the restriction (as for the grant's export): who,
      // which grant, which categories, and the data the session may send (the grant's
      // windows, up to its end). A revocation committed before it cannot be streamed past.
      // When the session ends, the disclosure is narrowed to the measurement times it did
      // send (settleSession); should this process die first, the wider range stands.
      let disclosure: string | null = null;
      try {
        disclosure = await grants.discloseSession({
          grantId: id,
          role: p.role,
          subject: p.subject,
          endpoint: 'GET /v1/grants/{id}/stream',
          categories: access.projection.categories,
          fields: access.projection.fields ?? null,
          rangeFrom: access.periods[0] ? new Date(access.periods[0].fromMs) : null,
          rangeTo: access.periods.length && access.periods.at(-1)!.toMs !== null ? new Date(access.periods.at(-1)!.toMs!) : null,
        });
      } finally {
        if (disclosure === null) release();
      }
      if (disclosure === null) return refuse((await grantAccess(p, id)).refusal ?? 'NOT_FOUND');
      const filed = disclosure;
      let sentMin = Infinity;
      let sentMax = -Infinity;
      const onSent = (_n: number, minMs: number, maxMs: number): void => {
        if (minMs < sentMin) sentMin = minMs;
        if (maxMs > sentMax) sentMax = maxMs;
      };
      const onClose = (): void => {
        const sent = sentMin <= sentMax ? { from: new Date(sentMin), to: new Date(sentMax) } : null;
        const settled = grants.settleSession(filed, sent).then(
          () => {},
          (err: Error) => req.log.warn({ event: 'stream_disclosure_not_settled', grant_id: id, err: err.message }, 'the stream disclosure keeps the range filed at its start'),
        );
        settling.add(settled);
        void settled.finally(() => settling.delete(settled));
      };
      req.log.info({ event: 'grant_stream_opened', vin, grant_id: id, recipient: p.subject, resume: start.after !== null }, 'stream through a grant opened');
      const check = async (): Promise<Access> => (await grantAccess(p, id)).access;
      serve(req, reply, vin, start, access, check, release, credentialOf(p), { grantId: id, expiresAtMs: first.endMs, onSent, onClose, ...(req.query.names === 'vss' ? { lineMap: vssLine } : {}) });
      return reply;
    },
  );
};
