// Operator endpoints, behind the admin bearer token.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { VIN_PATTERN, VIN_RULE } from '../../identity/vin.ts';
import { SUBJECT_MAX_LENGTH, SUBJECT_PATTERN, SUBJECT_RULE } from '../../identity/subject.ts';
import { hashPassword, tokensEqual } from '../../identity/secrets.ts';
import { provisionVehicle, rotateVehicleSecret } from '../provision.ts';
import { ApiError } from '../errors.ts';
import { bearer } from '../auth.ts';
import { ROLES, type Role } from '../../identity/tokens.ts';
import { VinParams } from './vehicles.ts';
import { serviceClientRoutes, type ServiceClientRouteDeps } from './service-clients.ts';
import type { AccountStore, MintedTokenStore, RecipientStore, RightsStore, StoreFailures, VehicleStore } from '../ports.ts';

export interface AdminDeps {
  adminToken: string;
  /** scrypt N for new secrets. */
  secretCost: number;
  vehicles: VehicleStore;
  /** After a rotation: close this process's sessions opened with the old secret (others learn by NOTIFY). */
  onSecretRotated?: (vin: string) => void;
  /** Mints the gateway's own tokens. */
  tokens: { sign(p: { role: Role; subject: string; ttlSeconds: number }): Promise<{ token: string; expiresAt: number; jti: string; issuedAt: number }> };
  /** Default and maximum token lifetime, seconds. */
  tokenTtlS: number;
  mintedTokens: MintedTokenStore;
  /** Told of a revocation on this instance before the answer (other instances hear of it by NOTIFY). */
  onRevoked(jti: string): void;
  /**
   * Refuses every token of the subject issued before now, at `issuer` (null: every trusted
   * issuer), and ends its sessions at the embedded provider: in force here before it
   * resolves, on every other instance within a second.
   */
  revokeSubject(issuer: string | null, subject: string): Promise<{ before: Date }>;
  /** The issuers whose tokens the API accepts. */
  issuers(): string[];
  /** The embedded provider's issuer, when it runs (its accounts' tokens carry it). */
  embeddedIssuer(): string | null;
  /**
   * Rotates the embedded provider's signing key: the kids in its JWKS, the new (signing) one
   * first; null when no embedded provider runs here.
   */
  rotateSigningKey?(): Promise<string[] | null>;
  accounts: AccountStore;
  rights: Pick<RightsStore, 'transfer'>;
  /** Tells the stores' conflicts and misses apart from other failures. */
  failures: Pick<StoreFailures, 'isConflict' | 'isNotFound'>;
  recipients: Pick<RecipientStore, 'create'>;
  /** Recipients' service clients (api/routes/service-clients.ts), behind this plugin's guard. */
  serviceClients: Omit<ServiceClientRouteDeps, 'failures' | 'secretCost'>;
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

  /**
   * Rotates a vehicle's MQTT secret: the new one is returned once; the old one is refused
   * from now on and the sessions opened with it are closed.
   */
  app.post(
    '/v1/admin/vehicles/:vin/secret',
    // No query and no body: anything sent along is refused rather than ignored.
    { schema: { params: VinParams, querystring: z.object({}).strict(), response: { 200: Provisioned } } },
    async (req, reply) => {
      const rotated = await rotateVehicleSecret(deps.vehicles, deps.secretCost, req.params.vin);
      if (!rotated) throw new ApiError(404, 'API_ERR_NOT_FOUND', `vehicle ${req.params.vin} not found`);
      const { secret } = rotated;
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
            // Capped at TOKEN_TTL_S: a longer lifetime is refused, not silently shortened.
            ttlSeconds: z.number().int().min(1).max(deps.tokenTtlS, `must be at most ${deps.tokenTtlS} (TOKEN_TTL_S)`).optional(),
          })
          .strict(),
        response: { 201: z.object({ token: z.string(), expiresAt: z.string(), jti: z.string() }) },
      },
    },
    async (req, reply) => {
      const ttl = req.body.ttlSeconds ?? deps.tokenTtlS;
      const t = await deps.tokens.sign({ role: req.body.role as Role, subject: req.body.subject, ttlSeconds: ttl });
      await deps.mintedTokens.record({ jti: t.jti, role: req.body.role, subject: req.body.subject, issuedAt: new Date(t.issuedAt), expiresAt: new Date(t.expiresAt) });
      req.log.info({ event: 'token_minted', role: req.body.role, subject: req.body.subject, jti: t.jti, ttl_s: ttl }, 'token minted');
      return reply.status(201).header('cache-control', 'no-store').send({ token: t.token, expiresAt: new Date(t.expiresAt).toISOString(), jti: t.jti });
    },
  );

  /** Revokes a minted token: refused by this instance before the answer, by every other within a second. */
  app.delete(
    '/v1/admin/tokens/:jti',
    { schema: { params: z.object({ jti: z.uuid('must be the jti of a minted token (a UUID)') }).strict() } },
    async (req, reply) => {
      const jti = req.params.jti.toLowerCase();
      if (!(await deps.mintedTokens.revoke(jti))) throw new ApiError(404, 'API_ERR_NOT_FOUND', `no minted token ${jti}`);
      deps.onRevoked(jti);
      req.log.info({ event: 'token_revoked', jti }, 'token revoked');
      return reply.status(204).send();
    },
  );

  const Account = z.object({ username: z.string(), subject: z.string(), role: z.string(), createdAt: z.string() });
  const accountOut = (a: { username: string; subject: string; role: string; createdAt: Date }) => ({ username: a.username, subject: a.subject, role: a.role, createdAt: a.createdAt.toISOString() });
  const Username = z.string().regex(/^[A-Za-z0-9._@+-]{1,128}$/, 'must be 1-128 characters of A-Z a-z 0-9 . _ @ + -');

  /** Creates a person's account at the embedded OpenID Provider. The password is stored only as a scrypt hash. */
  app.post(
    '/v1/admin/accounts',
    {
      schema: {
        body: z
          .object({
            username: Username,
            password: z.string().min(12, 'must be at least 12 characters').max(1024),
            role: z.enum(ROLES as [Role, ...Role[]]),
            /** Who the person is to the API (owner id, recipient id); default: the username. */
            subject: OwnerId.optional(),
          })
          .strict(),
        response: { 201: Account },
      },
    },
    async (req, reply) => {
      const subject = req.body.subject ?? req.body.username;
      try {
        const a = await deps.accounts.create({ username: req.body.username, subject, role: req.body.role, passwordHash: await hashPassword(req.body.password) });
        req.log.info({ event: 'account_created', username: a.username, role: a.role }, 'account created');
        return reply.status(201).send(accountOut(a));
      } catch (err) {
        if (deps.failures.isConflict(err)) throw new ApiError(409, 'API_ERR_CONFLICT', `an account with username ${req.body.username} or subject ${subject} exists`);
        throw err;
      }
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
        if (deps.failures.isConflict(err)) throw new ApiError(409, 'API_ERR_CONFLICT', `recipient ${req.body.id} already exists`);
        throw err;
      }
    },
  );

  // A child of this plugin: the admin-token hook above guards it too.
  await app.register(serviceClientRoutes, { ...deps.serviceClients, secretCost: deps.secretCost, failures: deps.failures });

  app.get('/v1/admin/accounts', { schema: { response: { 200: z.object({ accounts: z.array(Account) }) } } }, async () => ({ accounts: (await deps.accounts.list()).map(accountOut) }));

  /**
   * After a change to account `username` (its subject, or null: there was no such account,
   * 404): every token, session and refresh token of the person at the embedded provider
   * from before ends.
   */
  const endSessions = async (username: string, subject: string | null): Promise<void> => {
    if (subject === null) throw new ApiError(404, 'API_ERR_NOT_FOUND', `no account ${username}`);
    const issuer = deps.embeddedIssuer();
    if (issuer !== null) await deps.revokeSubject(issuer, subject);
  };

  /**
   * Deletes an account: no new sign-in, and every token, session and refresh token of the
   * person at the embedded provider ends (here before the answer, elsewhere within a second).
   */
  app.delete('/v1/admin/accounts/:username', { schema: { params: z.object({ username: Username }).strict() } }, async (req, reply) => {
    await endSessions(req.params.username, await deps.accounts.remove(req.params.username));
    req.log.info({ event: 'account_deleted', username: req.params.username }, 'account deleted; its sessions and tokens ended');
    return reply.status(204).send();
  });

  /**
   * Sets a new password: every token, session and refresh token of the person at the
   * embedded provider issued before ends (here before the answer, elsewhere within a second).
   */
  app.put(
    '/v1/admin/accounts/:username/password',
    { schema: { params: z.object({ username: Username }).strict(), body: z.object({ password: z.string().min(12, 'must be at least 12 characters').max(1024) }).strict() } },
    async (req, reply) => {
      await endSessions(req.params.username, await deps.accounts.setPassword(req.params.username, await hashPassword(req.body.password)));
      req.log.info({ event: 'account_password_changed', username: req.params.username }, 'password changed; the sessions and tokens before it ended');
      return reply.status(204).send();
    },
  );

  /**
   * Revokes a person: every token of `subject` issued before now is refused, minted, the
   * embedded provider's or an external issuer's (`issuer` names one; absent: every trusted
   * issuer), and their open streams end. A subject nobody knows is recorded all the same
   * (it may be known to an external issuer): 204 either way.
   */
  app.post(
    '/v1/admin/revocations',
    {
      schema: {
        body: z.object({ subject: z.string().min(1).max(256), issuer: z.string().min(1).max(2048).optional() }).strict(),
      },
    },
    async (req, reply) => {
      const issuer = req.body.issuer ?? null;
      if (issuer !== null && !deps.issuers().includes(issuer)) {
        throw new ApiError(400, 'API_ERR_VALIDATION', `body.issuer: ${JSON.stringify(issuer)} is not an issuer this gateway trusts (${deps.issuers().join(', ')})`);
      }
      const r = await deps.revokeSubject(issuer, req.body.subject);
      req.log.info({ event: 'subject_revoked', issuer: issuer ?? '*', before: r.before.toISOString() }, 'every token of a subject issued before now revoked');
      return reply.status(204).send();
    },
  );

  /**
   * Rotates the embedded OpenID Provider's signing key: the new key is in the JWKS and signs
   * from now on; the replaced one keeps verifying until the tokens it signed have expired
   * (README "Keys at rest and rotation"). Takes no body.
   */
  app.post(
    '/v1/admin/keys/rotate',
    // Nothing to send: any query parameter is refused rather than ignored (a typo must not rotate).
    { schema: { querystring: z.object({}).strict(), response: { 200: z.object({ kid: z.string(), verifying: z.array(z.string()) }) } } },
    async (req) => {
      const kids = (await deps.rotateSigningKey?.()) ?? null;
      if (kids === null) throw new ApiError(409, 'API_ERR_CONFLICT', 'no embedded OpenID Provider runs here (OIDC_EMBEDDED=off, or OIDC_ISSUER set with OIDC_EMBEDDED=auto): it has no signing key to rotate');
      req.log.info({ event: 'signing_key_rotated', kid: kids[0], verifying: kids }, 'embedded OpenID Provider signing key rotated');
      return { kid: kids[0]!, verifying: kids };
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
