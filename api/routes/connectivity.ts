// Connectivity status (README "Connectivity"): is the vehicle online, since when, when was
// it last seen and when did its last record arrive. The owner, and a workshop or third
// party through an active grant covering `connectivity` (the read disclosed to the owner
// in the same transaction, the grant re-checked there).
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ConsentStore, GrantStore, RightsStore, SeriesStore, StoreFailures } from '../ports.ts';
import type { ConnectionRecord, ConnectivityStatus, ConnectivityWindow } from '../../proto/connectivity.ts';
import type { GrantDisclosure } from '../../proto/grants.ts';
import { chooseGrant, recipientRead } from '../../access/grants.ts';
import { caller, requireOwner, rolesHook, type TokenVerifier } from '../auth.ts';
import { ApiError, refusalError } from '../errors.ts';
import { VinParams } from './vehicles.ts';

/** What the status route reads (storage/repos/connectivity.ts implements it). */
export interface ConnectivityReads {
  status(vin: string, windows: readonly ConnectivityWindow[]): Promise<ConnectivityStatus>;
  /** status(), with the grant's disclosure filed (and the grant re-checked) in the same transaction; rejects NOT_FOUND when it no longer holds. */
  statusDisclosed(vin: string, windows: readonly ConnectivityWindow[], disclosure: GrantDisclosure): Promise<ConnectivityStatus>;
}

/** The connections of a vehicle inside windows, for the CarData ZIP. */
export interface ConnectivityExport {
  connections(vin: string, windows: readonly ConnectivityWindow[]): Promise<ConnectionRecord[]>;
}

/** connectivity.ndjson of the CarData ZIP: one line per connection, oldest first. */
export function connectivityNdjson(rows: readonly ConnectionRecord[]): string {
  return rows
    .map((c) => `${JSON.stringify({ vin: c.vin, connectedAt: c.connectedAt.toISOString(), disconnectedAt: c.disconnectedAt?.toISOString() ?? null, reason: c.reason, coalesced: c.coalesced })}\n`)
    .join('');
}

export interface ConnectivityRouteDeps {
  tokens: TokenVerifier;
  rights: Pick<RightsStore, 'currentOwner' | 'periodsOf'>;
  consents: Pick<ConsentStore, 'timeline'>;
  grants: Pick<GrantStore, 'listForRecipient'>;
  connectivity: ConnectivityReads;
  series: Pick<SeriesStore, 'latest'>;
  failures: StoreFailures;
}

/** The answer of GET /v1/vehicles/{vin}/status and the data of a stream's `event: status`. */
export const StatusOut = z.object({
  vin: z.string(),
  online: z.boolean(),
  since: z.string().nullable(),
  lastSeenAt: z.string().nullable(),
  lastRecordAt: z.string().nullable(),
});
export type StatusJson = z.infer<typeof StatusOut>;

/**
 * The status as JSON, with `lastRecordAt`: when the newest record inside the windows was
 * stored (its receivedAt; its recordedAt where none was kept).
 */
export async function statusJson(st: ConnectivityStatus, windows: readonly ConnectivityWindow[], series: Pick<SeriesStore, 'latest'>): Promise<StatusJson> {
  const periods = windows.map((w) => ({ ownerId: '', from: w.from, startedAt: w.from, to: w.to }));
  const rec = periods.length ? await series.latest(st.vin, periods, ['technical']) : null;
  const last = rec ? (rec.receivedAt ?? rec.recordedAt) : null;
  return { vin: st.vin, online: st.online, since: st.since?.toISOString() ?? null, lastSeenAt: st.lastSeenAt?.toISOString() ?? null, lastRecordAt: last?.toISOString() ?? null };
}

export const connectivityRoutes: FastifyPluginAsync<ConnectivityRouteDeps> = async (app0, deps) => {
  const app = app0.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', rolesHook(deps.tokens));
  const notFound = (vin: string) => () => new ApiError(404, 'API_ERR_NOT_FOUND', `vehicle ${vin} not found`);

  app.get(
    '/v1/vehicles/:vin/status',
    {
      config: { roles: ['customer', 'workshop', 'third_party'] as const },
      schema: { params: VinParams, response: { 200: StatusOut } },
    },
    async (req, reply) => {
      const p = caller(req);
      const { vin } = req.params;
      void reply.header('cache-control', 'private, no-store');
      if (p.role === 'customer') {
        await requireOwner(p, vin, deps.rights.currentOwner);
        const windows = (await deps.rights.periodsOf(vin, p.subject)).map((x) => ({ from: x.from, to: x.to }));
        return statusJson(await deps.connectivity.status(vin, windows), windows, deps.series);
      }
      // A recipient: only through an active grant of the current owner covering connectivity.
      const now = new Date();
      const g = chooseGrant(p, await deps.grants.listForRecipient(p.subject, vin), now, 'connectivity', 'history');
      const owner = g ? await deps.rights.currentOwner(vin) : null;
      const periods = g ? await deps.rights.periodsOf(vin, g.ownerId) : [];
      const restricted = g ? (await deps.consents.timeline(vin, now.getTime())).at(-1)!.restricted : false;
      const d = recipientRead(p, g && owner === g.ownerId ? g : null, { ownerPeriods: periods, restricted, now, mode: 'history', need: 'connectivity' });
      if (!d.ok) throw refusalError(d.refusal, { mode: 'history', notFound: notFound(vin) });
      const windows = d.scope.windows;
      try {
        const st = await deps.connectivity.statusDisclosed(vin, windows, {
          grantId: d.scope.grantId,
          role: p.role,
          subject: p.subject,
          endpoint: 'GET /v1/vehicles/{vin}/status',
          categories: ['connectivity'],
          rangeFrom: windows[0]?.from ?? null,
          rangeTo: windows.at(-1)?.to ?? null,
        });
        return await statusJson(st, windows, deps.series);
      } catch (err) {
        // Revoked, ended or restricted between the decision and the read.
        if (deps.failures.isNotFound(err)) throw notFound(vin)();
        throw err;
      }
    },
  );
};
