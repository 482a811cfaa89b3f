// Operator endpoints, behind the admin bearer token.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { VIN_PATTERN } from '../../identity/vin.ts';
import { hashSecret, newSecret, tokensEqual } from '../../identity/secrets.ts';
import { ApiError } from '../errors.ts';
import { bearer } from '../auth.ts';
import { ROLES, type TokenService } from '../../identity/tokens.ts';
import { VinParams } from './vehicles.ts';

export interface AdminDeps {
  adminToken: string;
  /** scrypt N for new secrets. */
  secretCost: number;
  vehicles: {
    create(v: { vin: string; ownerId: string; secretHash: string }): Promise<{ vin: string; ownerId: string; createdAt: Date }>;
  };
  tokens: TokenService;
  /** Default and maximum token lifetime, seconds. */
  tokenTtlS: number;
  rights: {
    transfer(vin: string, newOwnerId: string, actor: string): Promise<{ ownerId: string; from: Date }>;
  };
  recipients: {
    create(r: { id: string; role: 'workshop' | 'third_party'; name: string }): Promise<{ id: string; role: string; name: string; createdAt: Date }>;
  };
}

const OwnerId = z.string().min(1).max(128).regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

const ProvisionBody = z
  .object({
    vin: z.string().regex(VIN_PATTERN, 'must be an ISO 3779 VIN: 17 characters of 0-9 and A-Z without I, O, Q'),
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
      const secret = newSecret();
      const secretHash = await hashSecret(secret, deps.secretCost);
      try {
        await deps.vehicles.create({ vin: req.body.vin, ownerId: req.body.ownerId, secretHash });
      } catch (err) {
        if ((err as { code?: string }).code === 'STO_ERR_CONFLICT') throw new ApiError(409, 'API_ERR_CONFLICT', `vehicle ${req.body.vin} is already provisioned`);
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
            ttlSeconds: z.number().int().min(1).max(30 * 24 * 3600).optional(),
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

  /** Registers a workshop or third party an owner may grant access to (Data Act Art. 5). */
  app.post(
    '/v1/admin/recipients',
    {
      schema: {
        body: z.object({ id: OwnerId, role: z.enum(['workshop', 'third_party']), name: z.string().trim().min(1).max(200) }).strict(),
        response: { 201: z.object({ id: z.string(), role: z.string(), name: z.string(), createdAt: z.string() }) },
      },
    },
    async (req, reply) => {
      try {
        const r = await deps.recipients.create(req.body);
        req.log.info({ event: 'recipient_registered', recipient: r.id, role: r.role }, 'recipient registered');
        return reply.status(201).send({ id: r.id, role: r.role, name: r.name, createdAt: r.createdAt.toISOString() });
      } catch (err) {
        if ((err as { code?: string }).code === 'STO_ERR_CONFLICT') throw new ApiError(409, 'API_ERR_CONFLICT', `recipient ${req.body.id} already exists`);
        throw err;
      }
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
        const code = (err as { code?: string }).code;
        if (code === 'STO_ERR_NOT_FOUND') throw new ApiError(404, 'API_ERR_NOT_FOUND', `vehicle ${req.params.vin} not found`);
        if (code === 'STO_ERR_CONFLICT') throw new ApiError(409, 'API_ERR_CONFLICT', (err as Error).message);
        throw err;
      }
    },
  );
};
