// A recipient's service clients (README "For recipients"): the operator registers one (a
// secret shown once, or the client's public keys for private_key_jwt), lists them, deletes
// one, which ends every token it holds on every instance (open streams included). Registered
// inside the admin plugin: its admin-token guard covers these routes.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError } from '../errors.ts';
import { SUBJECT_MAX_LENGTH, SUBJECT_PATTERN, SUBJECT_RULE } from '../../identity/subject.ts';
import { hashSecret, newSecret } from '../../identity/secrets.ts';
import { checkClientJwks, newServiceClientId, SERVICE_CLIENT_ID_PATTERN } from '../../identity/service-clients.ts';
import type { ServiceClientStore, StoreFailures } from '../ports.ts';

export interface ServiceClientRouteDeps {
  clients: Pick<ServiceClientStore, 'create' | 'list'>;
  /** Deletes the client and revokes its tokens (app/sign-in.ts); null when no embedded provider runs here. */
  remove(recipientId: string, clientId: string): Promise<'removed' | 'no-recipient' | 'no-client' | null>;
  /** Whether the embedded provider runs here (the one that issues the clients' tokens). */
  available(): boolean;
  /** scrypt N of the stored secret hash. */
  secretCost: number;
  failures: Pick<StoreFailures, 'isNotFound'>;
}

const Params = z.object({ id: z.string().min(1).max(SUBJECT_MAX_LENGTH).regex(SUBJECT_PATTERN, `must be ${SUBJECT_RULE}`) }).strict();
const ClientParams = Params.extend({ clientId: z.string().regex(SERVICE_CLIENT_ID_PATTERN, 'not a client id (svc_…)') }).strict();
const Client = z.object({ clientId: z.string(), recipientId: z.string(), authMethod: z.string(), createdAt: z.string() });

export const serviceClientRoutes: FastifyPluginAsync<ServiceClientRouteDeps> = async (app0, deps) => {
  const app = app0.withTypeProvider<ZodTypeProvider>();
  const notHere = () => new ApiError(409, 'API_ERR_CONFLICT', 'no embedded OpenID Provider runs here (OIDC_EMBEDDED=off, or OIDC_ISSUER set with OIDC_EMBEDDED=auto): register service clients at your OpenID Provider (README "Service clients")');
  const needProvider = () => {
    if (!deps.available()) throw notHere();
  };
  const out = (c: { clientId: string; recipientId: string; authMethod: string; createdAt: Date }) => ({ clientId: c.clientId, recipientId: c.recipientId, authMethod: c.authMethod, createdAt: c.createdAt.toISOString() });

  /**
   * Registers a service client of recipient `id`: without a body, a client secret (shown
   * once, stored as a hash) for client_secret_basic or client_secret_post; with `{"jwks"}`,
   * the client's public keys for private_key_jwt (RFC 7523).
   */
  app.post(
    '/v1/admin/recipients/:id/clients',
    {
      schema: {
        params: Params,
        body: z.object({ jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).strict().optional() }).strict().nullish(),
        response: { 201: Client.extend({ clientSecret: z.string().optional() }) },
      },
    },
    async (req, reply) => {
      needProvider();
      const jwks = req.body?.jwks ?? null;
      if (jwks !== null) {
        const problem = await checkClientJwks(jwks);
        if (problem) throw new ApiError(400, 'API_ERR_VALIDATION', `body.jwks.${problem}`);
      }
      const secret = jwks === null ? newSecret() : null;
      let made;
      try {
        made = await deps.clients.create({
          clientId: newServiceClientId(),
          recipientId: req.params.id,
          authMethod: jwks === null ? 'client_secret_basic' : 'private_key_jwt',
          secretHash: secret === null ? null : await hashSecret(secret, deps.secretCost),
          jwks,
        });
      } catch (err) {
        if (deps.failures.isNotFound(err)) throw new ApiError(404, 'API_ERR_NOT_FOUND', `recipient ${req.params.id} not found`);
        throw err;
      }
      req.log.info({ event: 'service_client_registered', recipient: made.recipientId, client_id: made.clientId, auth_method: made.authMethod }, 'service client registered');
      return reply
        .status(201)
        .header('cache-control', 'no-store')
        .send({ ...out(made), ...(secret === null ? {} : { clientSecret: secret }) });
    },
  );

  /** A recipient's service clients, oldest first (never a secret). */
  app.get('/v1/admin/recipients/:id/clients', { schema: { params: Params, response: { 200: z.object({ clients: z.array(Client) }) } } }, async (req) => {
    const list = await deps.clients.list(req.params.id);
    if (list === null) throw new ApiError(404, 'API_ERR_NOT_FOUND', `recipient ${req.params.id} not found`);
    return { clients: list.map(out) };
  });

  /** Deletes a service client: no new token, and every token it holds refused here before the answer, elsewhere within a second. */
  app.delete('/v1/admin/recipients/:id/clients/:clientId', { schema: { params: ClientParams } }, async (req, reply) => {
    needProvider();
    const r = await deps.remove(req.params.id, req.params.clientId);
    if (r === null) throw notHere();
    if (r === 'no-recipient') throw new ApiError(404, 'API_ERR_NOT_FOUND', `recipient ${req.params.id} not found`);
    if (r === 'no-client') throw new ApiError(404, 'API_ERR_NOT_FOUND', `recipient ${req.params.id} has no client ${req.params.clientId}`);
    req.log.info({ event: 'service_client_deleted', recipient: req.params.id, client_id: req.params.clientId }, 'service client deleted; its tokens revoked');
    return reply.status(204).send();
  });
};
