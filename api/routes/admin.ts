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
    /** Replaces the secret hash; false for an unknown VIN. */
    rotateSecret(vin: string, secretHash: string): Promise<boolean>;
  };
  /** After a rotation: close this process's sessions opened with the old secret (others learn by NOTIFY). */
  onSecretRotated?: (vin: string) => void;
  tokens: TokenService;
  /** Default and maximum token lifetime, seconds. */
  tokenTtlS: number;
  rights: {
    transfer(vin: string, newOwnerId: string, actor: string): Promise<{ ownerId: string; from: Date }>;
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

  /**
   * Rotates a vehicle's MQTT secret: the new one is returned once; the old one is refused
   * from now on and the sessions opened with it are closed.
   */
  app.post(
    '/v1/admin/vehicles/:vin/secret',
    // No query and no body: anything sent along is refused rather than ignored.
    { schema: { params: VinParams, querystring: z.object({}).strict(), response: { 200: Provisioned } } },
    async (req, reply) => {
      const secret = newSecret();
      const secretHash = await hashSecret(secret, deps.secretCost);
      if (!(await deps.vehicles.rotateSecret(req.params.vin, secretHash))) throw new ApiError(404, 'API_ERR_NOT_FOUND', `vehicle ${req.params.vin} not found`);
      deps.onSecretRotated?.(req.params.vin);
      req.log.info({ event: 'vehicle_secret_rotated', vin: req.params.vin }, 'vehicle secret rotated');
      return reply.status(200).header('cache-control', 'no-store').send({ vin: req.params.vin, secret });
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
