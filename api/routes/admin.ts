// Operator endpoints, behind the admin bearer token.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { VIN_PATTERN } from '../../identity/vin.ts';
import { hashSecret, newSecret, tokensEqual } from '../../identity/secrets.ts';
import { ApiError } from '../errors.ts';

export interface AdminDeps {
  adminToken: string;
  /** scrypt N for new secrets. */
  secretCost: number;
  vehicles: {
    create(v: { vin: string; ownerId: string; secretHash: string }): Promise<{ vin: string; ownerId: string; createdAt: Date }>;
  };
}

const ProvisionBody = z
  .object({
    vin: z.string().regex(VIN_PATTERN, 'must be an ISO 3779 VIN: 17 characters of 0-9 and A-Z without I, O, Q'),
    ownerId: z.string().min(1).max(128).regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces'),
  })
  .strict();

const Provisioned = z.object({ vin: z.string(), secret: z.string() });

export function bearer(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1]! : null;
}

export const adminRoutes: FastifyPluginAsync<AdminDeps> = async (app0, deps) => {
  const app = app0.withTypeProvider<ZodTypeProvider>();

  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/v1/admin/')) return;
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
};
