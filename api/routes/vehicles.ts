// The owner's routes: consent, its history, restriction, erasure.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { VIN_PATTERN, VIN_RULE } from '../../identity/vin.ts';
import { DATA_CATEGORIES } from '../../proto/connectivity.ts';
import type { TokenVerifier } from '../auth.ts';
import type { ConsentStore, RightsStore, StoreFailures } from '../ports.ts';
import { ownerCaller, rolesHook } from '../auth.ts';
import { ApiError } from '../errors.ts';

export interface VehicleRouteDeps {
  /** Verifies bearer tokens (the gateway's own and every trusted OpenID Provider's). */
  tokens: TokenVerifier;
  consents: Pick<ConsentStore, 'timeline' | 'set' | 'history'>;
  rights: Pick<RightsStore, 'currentOwner' | 'periodsOf' | 'erase'>;
  /** Tells a store's "not found" (here: the vehicle changed hands before the change ran) from other failures. */
  failures: Pick<StoreFailures, 'isNotFound'>;
}

export const VinParams = z.object({ vin: z.string().regex(VIN_PATTERN, `must be ${VIN_RULE}`) }).strict();

const ConsentBody = z.object({ location: z.boolean(), co2Sharing: z.boolean() }).strict();
const ConsentState = z.object({
  vin: z.string(),
  location: z.boolean(),
  co2Sharing: z.boolean(),
  restricted: z.boolean(),
  /** When this state came into force. */
  since: z.string(),
});
const ConsentEventOut = z.object({
  at: z.string(),
  actor: z.string(),
  channel: z.string(),
  location: z.boolean(),
  co2Sharing: z.boolean(),
  restricted: z.boolean(),
  previous: z.object({ location: z.boolean(), co2Sharing: z.boolean(), restricted: z.boolean() }).nullable(),
  erasedLocationHistory: z.boolean(),
});
const CUSTOMER = { roles: ['customer'] as const };
const bool = z.enum(['true', 'false']).transform((v) => v === 'true');

export const vehicleRoutes: FastifyPluginAsync<VehicleRouteDeps> = async (app0, deps) => {
  const app = app0.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', rolesHook(deps.tokens));

  const owner = (req: FastifyRequest, vin: string) => ownerCaller(req, vin, deps.rights.currentOwner);
  /**
   * A change on the owner's behalf: the store checks again, inside its transaction, that the
   * caller still owns the vehicle, and refuses when it changed hands since the check before
   * it. Refused: the same 404 as to any non-owner; anything else stays what it was.
   */
  async function asOwner<T>(vin: string, change: () => Promise<T>): Promise<T> {
    try {
      return await change();
    } catch (err) {
      if (deps.failures.isNotFound(err)) throw new ApiError(404, 'API_ERR_NOT_FOUND', `vehicle ${vin} not found`);
      throw err;
    }
  }

  async function stateOut(vin: string) {
    const tl = await deps.consents.timeline(vin, Date.now());
    const cur = tl[tl.length - 1]!;
    let since = cur.sinceMs;
    if (since === 0) {
      // Defaults: in force since the current ownership began.
      const owner = await deps.rights.currentOwner(vin);
      const pers = owner ? await deps.rights.periodsOf(vin, owner) : [];
      since = pers[pers.length - 1]?.startedAt.getTime() ?? 0;
    }
    return { vin, location: cur.location, co2Sharing: cur.co2Sharing, restricted: cur.restricted, since: new Date(since).toISOString() };
  }

  app.get('/v1/vehicles/:vin/consent', { config: CUSTOMER, schema: { params: VinParams, response: { 200: ConsentState } } }, async (req) => {
    await owner(req, req.params.vin);
    return stateOut(req.params.vin);
  });

  app.put(
    '/v1/vehicles/:vin/consent',
    {
      config: CUSTOMER,
      schema: {
        params: VinParams,
        querystring: z.object({ eraseHistory: bool.optional() }).strict(),
        body: ConsentBody,
        response: { 200: ConsentState.extend({ erasedLocationRecords: z.number().int() }) },
      },
    },
    async (req) => {
      const p = await owner(req, req.params.vin);
      const erase = req.query.eraseHistory === true;
      if (erase && req.body.location) {
        throw new ApiError(400, 'API_ERR_VALIDATION', 'eraseHistory=true goes with a location opt-out ("location": false)');
      }
      const r = await asOwner(req.params.vin, () =>
        deps.consents.set(
          req.params.vin,
          { location: req.body.location, co2Sharing: req.body.co2Sharing, actor: `customer:${p.subject}`, channel: 'api', eraseLocationHistory: erase },
          p.subject,
        ),
      );
      req.log.info({ event: 'consent_changed', vin: req.params.vin, location: r.location, co2_sharing: r.co2Sharing, erased_location_records: r.erasedLocationRows }, 'consent changed');
      return {
        vin: req.params.vin,
        location: r.location,
        co2Sharing: r.co2Sharing,
        restricted: r.restricted,
        since: new Date(r.sinceMs).toISOString(),
        erasedLocationRecords: r.erasedLocationRows,
      };
    },
  );

  app.get(
    '/v1/vehicles/:vin/consent/history',
    { config: CUSTOMER, schema: { params: VinParams, response: { 200: z.object({ vin: z.string(), events: z.array(ConsentEventOut) }) } } },
    async (req) => {
      const p = await owner(req, req.params.vin);
      // The owner's own events only: a previous owner's choices are that person's data.
      const events = (await deps.consents.history(req.params.vin)).filter((e) => e.ownerId === p.subject);
      return {
        vin: req.params.vin,
        events: events.map((e) => ({
          at: e.effectiveAt.toISOString(),
          actor: e.actor,
          channel: e.channel,
          location: e.location,
          co2Sharing: e.co2Sharing,
          restricted: e.restricted,
          previous: e.previous,
          erasedLocationHistory: e.erasedLocationHistory,
        })),
      };
    },
  );

  app.put(
    '/v1/vehicles/:vin/restriction',
    { config: CUSTOMER, schema: { params: VinParams, body: z.object({ restricted: z.boolean() }).strict(), response: { 200: ConsentState } } },
    async (req) => {
      const p = await owner(req, req.params.vin);
      const r = await asOwner(req.params.vin, () => deps.consents.set(req.params.vin, { restricted: req.body.restricted, actor: `customer:${p.subject}`, channel: 'api' }, p.subject));
      req.log.info({ event: 'restriction_changed', vin: req.params.vin, restricted: r.restricted }, 'restriction changed');
      return { vin: req.params.vin, location: r.location, co2Sharing: r.co2Sharing, restricted: r.restricted, since: new Date(r.sinceMs).toISOString() };
    },
  );

  app.delete(
    '/v1/vehicles/:vin/data',
    {
      config: CUSTOMER,
      schema: {
        params: VinParams,
        querystring: z.object({ category: z.enum(DATA_CATEGORIES).optional() }).strict(),
        response: {
          200: z.object({
            vin: z.string(),
            category: z.string().nullable(),
            telemetryRecordsDeleted: z.number().int(),
            telemetryRecordsUpdated: z.number().int(),
            obfcmReadingsDeleted: z.number().int(),
            obfcmReadingsKept: z.number().int(),
            quarantinedDeleted: z.number().int(),
            /** Connections erased (README "Connectivity"). */
            connectionsDeleted: z.number().int(),
          }),
        },
      },
    },
    async (req) => {
      const p = await owner(req, req.params.vin);
      const category = req.query.category ?? null;
      const r = await asOwner(req.params.vin, () => deps.rights.erase(req.params.vin, p.subject, category, { asCurrentOwner: true }));
      req.log.info({ event: 'data_erased', vin: req.params.vin, category, ...r }, 'erasure done');
      return {
        vin: req.params.vin,
        category,
        telemetryRecordsDeleted: r.telemetryDeleted,
        telemetryRecordsUpdated: r.telemetryUpdated,
        obfcmReadingsDeleted: r.obfcmDeleted,
        obfcmReadingsKept: r.obfcmKept,
        quarantinedDeleted: r.quarantineDeleted,
        connectionsDeleted: r.connectivityDeleted ?? 0,
      };
    },
  );
};
