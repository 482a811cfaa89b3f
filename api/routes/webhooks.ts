// Recipients' webhooks (README "For recipients", docs/webhooks.md): a recipient (a person
// or a service of a workshop or third party) registers an endpoint; the gateway pushes the
// records of its grants and their grant.* events there, signed (Standard Webhooks).
import { randomBytes } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { TokenVerifier } from '../auth.ts';
import type { GrantStore } from '../ports.ts';
import type { Webhook, WebhookService } from '../../proto/webhooks.ts';
import { WEBHOOK_EVENT_KINDS } from '../../proto/webhooks.ts';
import { caller, rolesHook } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { isoTime } from './cardata.ts';

export interface WebhookRouteDeps {
  tokens: TokenVerifier;
  grants: Pick<GrantStore, 'get'>;
  /** null: webhooks are not delivered by this gateway (the embedded database): 503. */
  webhooks: WebhookService | null;
  /** Most endpoints per recipient. */
  maxPerRecipient: number;
  /** How far back a replay may reach, ms (the stream log's retention). */
  replayWindowMs: number;
}

const RECIPIENT = { roles: ['workshop', 'third_party'] as const };
const IdParams = z.object({ id: z.string().uuid('must be a webhook id (a UUID)') }).strict();
const GrantId = z.string().uuid('must be a grant id (a UUID)');

const WebhookOut = z.object({
  id: z.string(),
  url: z.string(),
  grantIds: z.array(z.string()).nullable(),
  events: z.array(z.enum(['records', 'grants'])),
  status: z.enum(['active', 'disabled']),
  disabledReason: z.string().nullable(),
  createdAt: z.string(),
  lastSuccessAt: z.string().nullable(),
  lastFailureAt: z.string().nullable(),
  lastFailure: z.string().nullable(),
  consecutiveFailures: z.number(),
  nextAttemptAt: z.string().nullable(),
});
const WebhookDetail = WebhookOut.extend({
  backlog: z.object({ records: z.number(), oldestUndeliveredAt: z.string().nullable() }),
});

function out(w: Webhook) {
  return {
    id: w.id,
    url: w.url,
    grantIds: w.grantIds,
    events: w.events,
    status: w.status,
    disabledReason: w.disabledReason,
    createdAt: w.createdAt.toISOString(),
    lastSuccessAt: w.lastSuccessAt?.toISOString() ?? null,
    lastFailureAt: w.lastFailureAt?.toISOString() ?? null,
    lastFailure: w.lastFailure,
    consecutiveFailures: w.consecutiveFailures,
    nextAttemptAt: w.nextAttemptAt?.toISOString() ?? null,
  };
}

export const webhookRoutes: FastifyPluginAsync<WebhookRouteDeps> = async (app0, deps) => {
  const app = app0.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', rolesHook(deps.tokens));
  const service = (): WebhookService => {
    if (!deps.webhooks) throw new ApiError(503, 'API_ERR_UNAVAILABLE', 'webhooks need PostgreSQL (DATABASE_URL); the embedded database does not deliver them');
    return deps.webhooks;
  };
  const notFound = (id: string) => new ApiError(404, 'API_ERR_NOT_FOUND', `webhook ${id} not found`);

  app.post(
    '/v1/webhooks',
    {
      config: RECIPIENT,
      schema: {
        body: z
          .object({
            url: z.string().min(1).max(2048),
            grantIds: z.array(GrantId).min(1).max(1000).optional(),
            events: z.array(z.enum(['records', 'grants'])).min(1).max(WEBHOOK_EVENT_KINDS.length).optional(),
          })
          .strict(),
        response: { 201: WebhookOut.extend({ secret: z.string() }) },
      },
    },
    async (req, reply) => {
      const p = caller(req);
      const role = p.role as 'workshop' | 'third_party';
      const svc = service();
      const problem = await svc.checkUrl(req.body.url);
      if (problem) throw new ApiError(400, 'API_ERR_WEBHOOK_URL', `body.url: ${problem}`);
      const grantIds = req.body.grantIds ? [...new Set(req.body.grantIds)] : null;
      for (const id of grantIds ?? []) {
        // Another recipient's grant, or none: the same answer.
        const g = await deps.grants.get(id);
        if (!g || g.recipientId !== p.subject || g.recipientRole !== role) throw new ApiError(404, 'API_ERR_NOT_FOUND', `grant ${id} not found`);
      }
      if ((await svc.list(p.subject, role)).length >= deps.maxPerRecipient) {
        throw new ApiError(409, 'API_ERR_CONFLICT', `at most ${deps.maxPerRecipient} webhooks per recipient; delete one first`);
      }
      // Standard Webhooks: a random key of 24 bytes, base64, prefixed whsec_.
      const secret = `whsec_${randomBytes(24).toString('base64')}`;
      const events = req.body.events ? WEBHOOK_EVENT_KINDS.filter((e) => req.body.events!.includes(e)) : [...WEBHOOK_EVENT_KINDS];
      const w = await svc.create({ recipientId: p.subject, recipientRole: role, url: req.body.url, secret, grantIds, events });
      req.log.info({ event: 'webhook_created', webhook_id: w.id, recipient: p.subject, grants: grantIds?.length ?? 'all' }, 'webhook created');
      return reply.status(201).header('cache-control', 'no-store').send({ ...out(w), secret });
    },
  );

  app.get('/v1/webhooks', { config: RECIPIENT, schema: { response: { 200: z.object({ webhooks: z.array(WebhookOut) }) } } }, async (req) => {
    const p = caller(req);
    return { webhooks: (await service().list(p.subject, p.role as 'workshop' | 'third_party')).map(out) };
  });

  app.get('/v1/webhooks/:id', { config: RECIPIENT, schema: { params: IdParams, response: { 200: WebhookDetail } } }, async (req) => {
    const p = caller(req);
    const svc = service();
    const w = await svc.get(req.params.id, p.subject, p.role as 'workshop' | 'third_party');
    if (!w) throw notFound(req.params.id);
    const b = await svc.backlog(w.id);
    return { ...out(w), backlog: { records: b.records, oldestUndeliveredAt: b.oldestUndeliveredAt?.toISOString() ?? null } };
  });

  app.delete('/v1/webhooks/:id', { config: RECIPIENT, schema: { params: IdParams } }, async (req, reply) => {
    const p = caller(req);
    if (!(await service().remove(req.params.id, p.subject, p.role as 'workshop' | 'third_party'))) throw notFound(req.params.id);
    req.log.info({ event: 'webhook_deleted', webhook_id: req.params.id, recipient: p.subject }, 'webhook deleted');
    return reply.status(204).send();
  });

  app.post(
    '/v1/webhooks/:id/replay',
    {
      config: RECIPIENT,
      schema: {
        params: IdParams,
        body: z.object({ from: isoTime, grantId: GrantId.optional() }).strict(),
        response: { 202: z.object({ id: z.string(), from: z.string(), grants: z.number() }) },
      },
    },
    async (req, reply) => {
      const p = caller(req);
      const fromMs = req.body.from.getTime();
      if (fromMs < Date.now() - deps.replayWindowMs) {
        throw new ApiError(400, 'API_ERR_VALIDATION', `body.from: a replay reaches back ${Math.round(deps.replayWindowMs / 86_400_000)} days at most; use the grant's CarData export for older data`);
      }
      const n = await service().replay(req.params.id, p.subject, p.role as 'workshop' | 'third_party', fromMs, req.body.grantId ?? null);
      if (n === null) throw notFound(req.params.id);
      return reply.status(202).send({ id: req.params.id, from: req.body.from.toISOString(), grants: n });
    },
  );
};
