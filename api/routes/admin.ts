// Operator endpoints, behind the admin bearer token.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { VIN_PATTERN, VIN_RULE } from '../../identity/vin.ts';
import { SUBJECT_MAX_LENGTH, SUBJECT_PATTERN, SUBJECT_RULE } from '../../identity/subject.ts';
import { tokensEqual } from '../../identity/secrets.ts';
import { provisionVehicle } from '../provision.ts';
import { ApiError } from '../errors.ts';
import { bearer } from '../auth.ts';
import { MAX_TOKEN_TTL_S, ROLES, type TokenService } from '../../identity/tokens.ts';
import { VinParams } from './vehicles.ts';
import type { RightsStore, StoreFailures, VehicleStore } from '../ports.ts';

export interface AdminDeps {
  adminToken: string;
  /** scrypt N for new secrets. */
  secretCost: number;
  vehicles: VehicleStore;
  tokens: TokenService;
  /** Default and maximum token lifetime, seconds. */
  tokenTtlS: number;
  rights: Pick<RightsStore, 'transfer'>;
  /** Tells the stores' conflicts and misses apart from other failures. */
  failures: Pick<StoreFailures, 'isConflict' | 'isNotFound'>;
}

const OwnerId = z.string().min(1).max(SUBJECT_MAX_LENGTH).regex(SUBJECT_PATTERN, `must be ${SUBJECT_RULE}`);

const ProvisionBody = z
  .object({
    vin: z.string().regex(VIN_PATTERN, `must be ${VIN_RULE}`),
    ownerId: OwnerId,
  })
  .strict();

const Provisioned = z.object({ vin: z.string(), secret: z.string() });

export const adminRoutes: FastifyPluginAsync<AdminDeps> = async (app0, deps) => {
  const app = app0.withTypeProvider<ZodTypeProvider>();

  // This plugin is encapsulated: the hook guards exactly the routes registered below,
  // whatever the spelling of the URL (a prefix test on req.url missed %-encoded paths).
  app.addHook('onRequest', async (req, reply) => {
    const token = bearer(req);
    if (token === null || !tokensEqual(token, deps.adminToken)) {
      void reply.header('www-authenticate', 'Bearer realm="admin"');
      throw new ApiError(401, 'API_ERR_UNAUTHORIZED', token === null ? 'missing bearer token' : 'invalid admin token');
    }
  });

  /** Provisions a vehicle: its MQTT secret is returned once and stored only as a hash. */
  app.post(
    '/v1/admin/vehicles',
    { schema: { body: ProvisionBody, response: { 201: Provisioned } } },
    async (req, reply) => {
      let secret: string;
      try {
        ({ secret } = await provisionVehicle(deps.vehicles, deps.secretCost, { vin: req.body.vin, ownerId: req.body.ownerId }));
      } catch (err) {
        if (deps.failures.isConflict(err)) throw new ApiError(409, 'API_ERR_CONFLICT', `vehicle ${req.body.vin} is already provisioned`);
        throw err;
      }
      req.log.info({ event: 'vehicle_provisioned', vin: req.body.vin }, 'vehicle provisioned');
      return reply.status(201).header('cache-control', 'no-store').send({ vin: req.body.vin, secret });
    },
  );

  /** Mints an API bearer token for a customer, workshop or authority. */
  app.post(
    '/v1/admin/tokens',
    {
      schema: {
        body: z
          .object({
            role: z.enum(ROLES as [string, ...string[]]),
            subject: OwnerId,
            ttlSeconds: z.number().int().min(1).max(MAX_TOKEN_TTL_S).optional(),
          })
          .strict(),
        response: { 201: z.object({ token: z.string(), expiresAt: z.string() }) },
      },
    },
    async (req, reply) => {
      const ttl = req.body.ttlSeconds ?? deps.tokenTtlS;
      const t = deps.tokens.sign({ role: req.body.role as (typeof ROLES)[number], subject: req.body.subject, ttlSeconds: ttl });
      req.log.info({ event: 'token_minted', role: req.body.role, subject: req.body.subject, jti: t.jti, ttl_s: ttl }, 'token minted');
      return reply.status(201).header('cache-control', 'no-store').send({ token: t.token, expiresAt: new Date(t.expiresAt).toISOString() });
    },
  );

  /** The vehicle changes hands: a new ownership period, consent back to the defaults. */
  app.post(
    '/v1/admin/vehicles/:vin/transfer',
    {
      schema: {
        params: VinParams,
        body: z.object({ newOwnerId: OwnerId }).strict(),
        response: { 200: z.object({ vin: z.string(), ownerId: z.string(), since: z.string() }) },
      },
    },
    async (req) => {
      try {
        const p = await deps.rights.transfer(req.params.vin, req.body.newOwnerId, 'admin');
        req.log.info({ event: 'vehicle_transferred', vin: req.params.vin }, 'vehicle transferred');
        return { vin: req.params.vin, ownerId: p.ownerId, since: p.from.toISOString() };
      } catch (err) {
        if (deps.failures.isNotFound(err)) throw new ApiError(404, 'API_ERR_NOT_FOUND', `vehicle ${req.params.vin} not found`);
        if (deps.failures.isConflict(err)) throw new ApiError(409, 'API_ERR_CONFLICT', err instanceof Error ? err.message : String(err));
        throw err;
      }
    },
  );
};
