// The HTTP API (buildApp) on in-memory ports, for route tests through app.inject().
// Authentication is the real one: the gateway's token service (identity/tokens.ts) with a
// random key, behind the real authenticator (identity/authenticate.ts), whose deny list
// is the fake minted-token store. Tokens of every kind of caller are minted here.
import { channel } from 'node:diagnostics_channel';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppOptions } from '../../../api/app.ts';
import type { StreamFeed, StreamPositions } from '../../../api/ports.ts';
import type { SignInProvider } from '../../../api/routes/oidc.ts';
import { createStreamSessions, type StreamSessions } from '../../../stream/sse.ts';
import { createAuthenticator } from '../../../identity/authenticate.ts';
import { createTokenService, randomKey, type Role } from '../../../identity/tokens.ts';
import { createApiWorld, fakeFailures, FakeStoreError, type ApiStores, type ApiWorld } from './api-stores.ts';
import { createFakeServiceClients } from './service-clients.ts';
import { createFakeWebhooks } from './webhooks.ts';

export const ADMIN_TOKEN = 'admin-token-for-route-tests-0123456789';

/** The live fan-out: remembers who is subscribed; a test delivers to them itself. */
type Subscriber = Parameters<StreamFeed['open']>[0];
type Start = Parameters<StreamFeed['open']>[1];

export function createFakeFeed() {
  const subs = new Set<Subscriber>();
  const opened: ({ sub: Subscriber } & Start)[] = [];
  const feed: StreamFeed = {
    async open(sub, opts) {
      subs.add(sub);
      opened.push({ sub, ...opts });
    },
    close(sub) {
      subs.delete(sub);
    },
  };
  return { feed, subs, opened };
}

/** Resume positions: cursors at or below `trimmed` have expired. */
export function createFakePositions(): StreamPositions & { trimmed: number } {
  return {
    trimmed: 0,
    async trimmedBelow() {
      return this.trimmed;
    },
    async startFor(_vin, fromMs) {
      return { tx: Math.max(1, Math.floor(fromMs / 1000)), ord: 0 };
    },
  };
}

/** The embedded OpenID Provider as the sign-in routes see it: one interaction `known`, one account. */
export function createFakeProvider(): SignInProvider {
  return {
    handle(_req, res) {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"provider":true}');
    },
    async interaction(_req, _res, uid) {
      return uid === 'known' ? { uid, prompt: 'login' } : uid === 'consented' ? { uid, prompt: 'consent' } : null;
    },
    async login(_req, _res, username, password) {
      return username === 'alice' && password === 'correct horse battery' ? '/oidc/auth/next' : null;
    },
    async consent() {
      return '/oidc/auth/after-consent';
    },
    async abort() {
      return '/oidc/auth/aborted';
    },
  };
}

export interface ApiHarness {
  app: FastifyInstance;
  /** Every route the app registered (HEAD routes fastify adds beside GET ones left out), as 'METHOD /url'. */
  routes: string[];
  stores: ApiStores;
  world: ApiWorld;
  feed: ReturnType<typeof createFakeFeed>;
  positions: ReturnType<typeof createFakePositions>;
  streamSessions: StreamSessions;
  /** jtis revoked through DELETE /v1/admin/tokens/{jti} on this instance. */
  revokedHere: string[];
  /** Subjects revoked through the admin API, in order ({issuer: null}: at every issuer). */
  revokedSubjects: { issuer: string | null; subject: string }[];
  rotated: string[];
  /** The service clients the admin routes registered and deleted. */
  serviceClients: ReturnType<typeof createFakeServiceClients>;
  /** A valid token of this role and subject (real signature, real verification). */
  token(role: Role, subject: string, opts?: { ttlSeconds?: number; revoked?: boolean }): Promise<string>;
  /** A token that expired an hour ago. */
  expiredToken(role: Role, subject: string): Promise<string>;
  /** A valid token of `role`/`from` with its subject rewritten to `to` (signature no longer matches). */
  tamperedToken(role: Role, from: string, to: string): Promise<string>;
  /** A token signed with a key this gateway does not have. */
  foreignToken(role: Role, subject: string): Promise<string>;
}

export async function createApiHarness(opts: { stream?: Partial<{ maxPerCaller: number; keepAliveMs: number; bufferBytes: number }>; app?: AppOptions } = {}): Promise<ApiHarness> {
  const { stores, world } = createApiWorld();
  const key = randomKey();
  const tokens = createTokenService([key]);
  const authenticator = createAuthenticator({
    verifiers: [tokens],
    isRevoked: async (p) =>
      revokedSubjects.some((r) => r.subject === p.subject && (r.issuer === null || r.issuer === p.issuer) && (p.issuedAt === null || p.issuedAt < r.before)) ||
      (p.jti !== null && stores.mintedTokens.isRevoked(p.jti)),
  });
  const feed = createFakeFeed();
  const positions = createFakePositions();
  const streamSessions = createStreamSessions({ maxPerCaller: opts.stream?.maxPerCaller ?? 4 });
  const revokedHere: string[] = [];
  const revokedSubjects: { issuer: string | null; subject: string; before: number }[] = [];
  const rotated: string[] = [];
  const serviceClients = createFakeServiceClients((id) => world.state.recipients.has(id), (msg) => new FakeStoreError('NOT_FOUND', msg));
  serviceClients.seed('svc_seeded', 'ws-1');
  // Every route, as registered: fastify announces each new instance on this channel
  // before any plugin runs, so the hook sees the routes of every plugin.
  const registered: { method: string; url: string }[] = [];
  const init = channel('fastify.initialization');
  const onInit = (msg: unknown) => {
    const fastify = (msg as { fastify: FastifyInstance }).fastify;
    fastify.addHook('onRoute', (r) => {
      for (const m of [r.method].flat()) registered.push({ method: m, url: r.url });
    });
    // inject()'s stand-in socket is no net.Socket: it lacks setNoDelay, which an event
    // stream calls on its socket once the head is written.
    fastify.addHook('onRequest', async (_req, reply) => {
      const socket = reply.raw.socket as { setNoDelay?: unknown } | null;
      if (socket && typeof socket.setNoDelay !== 'function') socket.setNoDelay = () => socket;
    });
  };
  init.subscribe(onInit);
  const app = await buildApp(
    {
      failures: fakeFailures,
      readiness: async () => ({ broker: true, database: true, databaseCheckedAt: new Date().toISOString(), instance: 'unit' }),
      admin: {
        adminToken: ADMIN_TOKEN,
        secretCost: 1024,
        vehicles: stores.vehicles,
        tokens,
        tokenTtlS: 3600,
        mintedTokens: stores.mintedTokens,
        onRevoked: (jti) => revokedHere.push(jti),
        revokeSubject: async (issuer, subject) => {
          const before = Date.now();
          revokedSubjects.push({ issuer, subject, before });
          return { before: new Date(before) };
        },
        issuers: () => [tokens.issuer, 'https://idp.example'],
        embeddedIssuer: () => 'https://idp.example',
        rotateSigningKey: async () => ['kid-new', 'kid-old'],
        accounts: stores.accounts,
        rights: stores.rights,
        recipients: stores.recipients,
        serviceClients: { clients: serviceClients.store, remove: (r, c) => serviceClients.store.remove(r, c, { issuer: 'https://idp.example', sid: `client:${c}`, expiresAt: new Date() }), available: () => true },
        onSecretRotated: (vin) => rotated.push(vin),
      },
      vehicles: { tokens: authenticator, consents: stores.consents, rights: stores.rights },
      cardata: {
        tokens: authenticator,
        consents: stores.consents,
        rights: stores.rights,
        reads: stores.reads,
        grants: stores.grants,
        obfcmReport: { defaultWindowDays: 30, maxRangeDays: 366 },
      },
      grants: {
        tokens: authenticator,
        recipients: stores.recipients,
        grants: stores.grants,
        checkins: stores.checkins,
        consents: stores.consents,
        rights: stores.rights,
        reads: stores.reads,
        limits: { grantMaxDays: 365, checkinCodeTtlS: 900, visitMaxHours: 72 },
      },
      portal: { tokens: authenticator, rights: stores.rights, series: stores.series },
      connectivity: { tokens: authenticator, rights: stores.rights, consents: stores.consents, grants: stores.grants, connectivity: stores.connectivity, series: stores.series },
      web: { oidc: { issuer: null, clientId: 'cardata-portal' } },
      description: {
        storage: () => ({ engine: 'timescaledb', shards: 1 }),
        retention: { afterContractDays: 2557, telemetryDays: 0, obfcmDays: 2557, streamLogDays: 7 },
        sendIntervalMs: 1000,
      },
      metrics: { text: async () => '# HELP up 1\nup 1\n', contentType: 'text/plain; version=0.0.4; charset=utf-8' },
      stream: {
        tokens: authenticator,
        rights: stores.rights,
        consents: stores.consents,
        feed: feed.feed,
        positions,
        grants: stores.grants,
        keepAliveMs: opts.stream?.keepAliveMs ?? 60_000,
        bufferBytes: opts.stream?.bufferBytes ?? 1 << 20,
        fromWindowMs: 7 * 86_400_000,
        fromMarginMs: 60_000,
        sessions: streamSessions,
        isRevokedNow: (p) => revokedSubjects.some((r) => r.subject === p.subject && (r.issuer === null || r.issuer === p.issuer) && (p.issuedAt === null || p.issuedAt < r.before)),
      },
      oidc: { provider: createFakeProvider },
      webhooks: { tokens: authenticator, grants: stores.grants, webhooks: createFakeWebhooks(), maxPerRecipient: 10, replayWindowMs: 7 * 86_400_000 },
    },
    // Many cells per caller in a second: the rate limit is tested on its own, not here.
    { rateLimitPerMinute: 1_000_000, ...opts.app },
  );
  init.unsubscribe(onInit);
  await app.ready();
  const gets = new Set(registered.filter((r) => r.method === 'GET').map((r) => r.url));
  const routes = [...new Set(registered.filter((r) => !(r.method === 'HEAD' && gets.has(r.url))).map((r) => `${r.method} ${r.url}`))].sort();

  const sign = async (service: ReturnType<typeof createTokenService>, role: Role, subject: string, ttlSeconds = 3600) => service.sign({ role, subject, ttlSeconds });
  return {
    app,
    routes,
    stores,
    world,
    feed,
    positions,
    streamSessions,
    revokedHere,
    revokedSubjects,
    rotated,
    serviceClients,
    async token(role, subject, o = {}) {
      const t = await sign(tokens, role, subject, o.ttlSeconds);
      if (o.revoked) world.minted(t.jti, role, subject, true);
      return t.token;
    },
    async expiredToken(role, subject) {
      return (await sign(createTokenService([key], () => Date.now() - 7_200_000), role, subject, 3600)).token;
    },
    async tamperedToken(role, from, to) {
      const [h, b, sig] = (await sign(tokens, role, from)).token.split('.') as [string, string, string];
      const body = { ...JSON.parse(Buffer.from(b, 'base64url').toString('utf8')), sub: to };
      return `${h}.${Buffer.from(JSON.stringify(body)).toString('base64url')}.${sig}`;
    },
    async foreignToken(role, subject) {
      return (await sign(createTokenService([{ kid: key.kid, secret: randomKey().secret }]), role, subject)).token;
    },
  };
}
