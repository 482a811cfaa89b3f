import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

/** databaseCheckedAt: when the database answer was obtained (probes are reused briefly); instance: which process answered (several run behind one load balancer). */
export type Readiness = () => Promise<{
  broker: boolean;
  database: boolean;
  /** The embedded OpenID Provider serves (absent: none runs here). Not ready while false: sign-ins sent here would fail. */
  signIn?: boolean;
  databaseCheckedAt?: string;
  instance?: string;
  /** With shards: the indexes of those down, comma-separated, or "none". */
  shardsDown?: string;
}>;

// The body is the pinned contract; when the shared database probe ran and which instance
// answered go in headers (x-database-checked-at, x-instance).
const ReadyBody = z.object({ status: z.enum(['ready', 'not_ready']), broker: z.boolean(), database: z.boolean() });

export const healthRoutes: FastifyPluginAsync<{ readiness: Readiness }> = async (app0, opts) => {
  const app = app0.withTypeProvider<ZodTypeProvider>();
  /** Liveness: the process answers. */
  app.get('/healthz', { logLevel: 'warn', schema: { response: { 200: z.object({ status: z.literal('ok') }) } } }, async () => ({ status: 'ok' as const }));
  /** Readiness: the broker listens, the database answers, and sign-in (when embedded) serves. */
  app.get('/readyz', { logLevel: 'warn', schema: { response: { 200: ReadyBody, 503: ReadyBody } } }, async (_req, reply) => {
    const r: Awaited<ReturnType<Readiness>> = await opts.readiness().catch(() => ({ broker: false, database: false }));
    const ok = r.broker && r.database && r.signIn !== false;
    if (r.signIn === false) void reply.header('x-sign-in', 'starting');
    if (r.databaseCheckedAt) void reply.header('x-database-checked-at', r.databaseCheckedAt);
    if (r.instance) void reply.header('x-instance', r.instance);
    if (r.shardsDown) void reply.header('x-shards-down', r.shardsDown);
    return reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not_ready', broker: r.broker, database: r.database });
  });
};
