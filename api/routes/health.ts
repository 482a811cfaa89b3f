import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

/** databaseCheckedAt: when the database answer was obtained (probes are reused briefly); instance: which process answered (several run behind one load balancer). */
export type Readiness = () => Promise<{ broker: boolean; database: boolean; databaseCheckedAt?: string; instance?: string }>;

const ReadyBody = z.object({ status: z.enum(['ready', 'not_ready']), broker: z.boolean(), database: z.boolean(), databaseCheckedAt: z.string().optional(), instance: z.string().optional() });

export const healthRoutes: FastifyPluginAsync<{ readiness: Readiness }> = async (app0, opts) => {
  const app = app0.withTypeProvider<ZodTypeProvider>();
  /** Liveness: the process answers. */
  app.get('/healthz', { logLevel: 'warn', schema: { response: { 200: z.object({ status: z.literal('ok') }) } } }, async () => ({ status: 'ok' as const }));
  /** Readiness: the broker listens and the database answers. */
  app.get('/readyz', { logLevel: 'warn', schema: { response: { 200: ReadyBody, 503: ReadyBody } } }, async (_req, reply) => {
    const r = await opts.readiness().catch(() => ({ broker: false, database: false }));
    const ok = r.broker && r.database;
    return reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not_ready', ...r });
  });
};
