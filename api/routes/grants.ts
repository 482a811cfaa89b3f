// Owner-issued grants (EU Data Act (EU) 2023/2854 Art. 5): the owner shares chosen
// categories of their car's data with a registered workshop or third party, sees every
// grant and a receipt of it, revokes it; the recipient lists its grants and reads through
// them (the owner's export, reduced to what the grant covers, every read disclosed).
// Workshop visits: the owner makes a check-in code, the workshop redeems it for a
// consumption grant that lasts the visit. Access decisions: access/grants.ts.
import { createHash, randomInt } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { TokenVerifier } from '../auth.ts';
import type { CheckinStore, ConsentStore, GrantRecord, GrantStore, ReadStore, RecipientStore, RightsStore, StoreFailures } from '../ports.ts';
import { SUBJECT_MAX_LENGTH, SUBJECT_PATTERN, SUBJECT_RULE } from '../../identity/subject.ts';
import { ACCESS_MODES, CATEGORIES, checkNewGrant, grantEnd, grantStatus, recipientRead, type FieldProblem, type GrantStatus, type KnownField } from '../../access/grants.ts';
import { caller, callerKey, ownerCaller, rolesHook } from '../auth.ts';
import { ApiError, refusalError } from '../errors.ts';
import { NamesParam, fieldsReadme, readVssFiles, sendExport } from '../export.ts';
import { createExportSlots } from '../export-slots.ts';
import { CATALOGUE, PURPOSES } from '../catalogue.ts';
import { VinParams } from './vehicles.ts';
import { isoTime, range } from './cardata.ts';
import { connectivityNdjson, type ConnectivityExport } from './connectivity.ts';

/** An export with nothing to read. */
async function* nothing<T = never>(): AsyncGenerator<T> {}

export interface GrantRouteDeps {
  tokens: TokenVerifier;
  /** The vehicle's connections, for the ZIP's connectivity.ndjson of a grant covering `connectivity`; absent: none. */
  connectivity?: ConnectivityExport;
  recipients: Pick<RecipientStore, 'get' | 'list'>;
  grants: GrantStore;
  checkins: CheckinStore;
  consents: Pick<ConsentStore, 'timeline'>;
  rights: Pick<RightsStore, 'currentOwner' | 'periodsOf'>;
  reads: Pick<ReadStore, 'ndjson' | 'records'>;
  /** Tells the stores' misses apart from other failures. */
  failures: Pick<StoreFailures, 'isNotFound'>;
  /** Exports through grants one caller may run at once; past it 429. Default 2. */
  exportsPerCaller?: number;
  limits: {
    /** Longest a grant may run, days (GRANT_MAX_DAYS); also the default expiry. */
    grantMaxDays: number;
    /** Lifetime of a check-in code, seconds (CHECKIN_CODE_TTL_S). */
    checkinCodeTtlS: number;
    /** Longest workshop visit a check-in code may grant, hours (WORKSHOP_VISIT_MAX_HOURS). */
    visitMaxHours: number;
  };
}

/** Ids of recipients, like subjects of tokens: printable ASCII without spaces. */
export const RecipientId = z.string().min(1).max(SUBJECT_MAX_LENGTH).regex(SUBJECT_PATTERN, `must be ${SUBJECT_RULE}`);
const GrantParams = VinParams.extend({ id: z.string().uuid('must be a grant id (a UUID)') }).strict();
const GrantIdParams = z.object({ id: z.string().uuid('must be a grant id (a UUID)') }).strict();

const GrantOut = z.object({
  id: z.string(),
  vin: z.string(),
  recipientId: z.string(),
  recipientName: z.string(),
  recipientRole: z.string(),
  categories: z.array(z.string()),
  /** Only these fields of the categories (catalogue names); null: every field of them. */
  fields: z.array(z.string()).nullable(),
  access: z.array(z.string()),
  purpose: z.string(),
  dataFrom: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  revokedAt: z.string().nullable(),
  /** When a transfer of the vehicle ended it. */
  endedAt: z.string().nullable(),
  status: z.enum(['active', 'revoked', 'expired', 'ended']),
  origin: z.enum(['owner', 'checkin']),
});

const CUSTOMER = { roles: ['customer'] as const };
const RECIPIENT = { roles: ['workshop', 'third_party'] as const };
const SIGNED_IN = { roles: ['customer', 'workshop', 'authority', 'third_party'] as const };

/** Check-in code alphabet: no 0/O, 1/I/L, U: easy to read out and type at a counter. */
const CODE_ALPHABET = 'ABCDEFGHJKMNPQRSTVWXYZ23456789';
const CODE_LENGTH = 10; // 30^10 ≈ 2^49 codes, each usable once for CHECKIN_CODE_TTL_S
const normalizeCode = (s: string) => s.toUpperCase().replace(/[\s-]/g, '');
const codeHash = (code: string) => createHash('sha256').update(normalizeCode(code)).digest();

/** The fields a grant may name: the catalogue's, by name and category (the record keys vin, seq, recordedAt come with every record). */
const GRANTABLE_FIELDS: readonly KnownField[] = CATALOGUE.filter((f) => f.name.includes('.')).map((f) => ({ name: f.name, category: f.category }));
const FIELD_CODES: Record<FieldProblem, 'API_ERR_UNKNOWN_FIELD' | 'API_ERR_FIELD_OUTSIDE_CATEGORIES' | 'API_ERR_FIELD_NOT_SELECTABLE' | 'API_ERR_CATEGORY_WITHOUT_FIELDS'> = {
  UNKNOWN_FIELD: 'API_ERR_UNKNOWN_FIELD',
  FIELD_OUTSIDE_CATEGORIES: 'API_ERR_FIELD_OUTSIDE_CATEGORIES',
  FIELD_NOT_SELECTABLE: 'API_ERR_FIELD_NOT_SELECTABLE',
  CATEGORY_WITHOUT_FIELDS: 'API_ERR_CATEGORY_WITHOUT_FIELDS',
};

const LEGAL_BASIS = "GDPR Art. 6(1)(a) (the owner's consent to this recipient and purpose); Regulation (EU) 2023/2854 (Data Act) Art. 5 (sharing with a third party at the user's request)";

function grantOut(g: GrantRecord, now: Date) {
  const status: GrantStatus = grantStatus({ ...g }, now);
  return {
    id: g.id,
    vin: g.vin,
    recipientId: g.recipientId,
    recipientName: g.recipientName,
    recipientRole: g.recipientRole,
    categories: g.categories,
    fields: g.fields,
    access: g.access,
    purpose: g.purpose,
    dataFrom: g.dataFrom.toISOString(),
    createdAt: g.createdAt.toISOString(),
    expiresAt: g.expiresAt.toISOString(),
    revokedAt: g.revokedAt?.toISOString() ?? null,
    endedAt: g.periodEndedAt?.toISOString() ?? null,
    status,
    origin: g.origin,
  };
}

export const grantRoutes: FastifyPluginAsync<GrantRouteDeps> = async (app0, deps) => {
  const app = app0.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', rolesHook(deps.tokens));
  const exportSlots = createExportSlots(deps.exportsPerCaller ?? 2);
  const vssFiles = await readVssFiles();
  const owner = (req: FastifyRequest, vin: string) => ownerCaller(req, vin, deps.rights.currentOwner);
  const restrictedNow = async (vin: string, now: Date) => (await deps.consents.timeline(vin, now.getTime())).at(-1)!.restricted;

  /** The owner's grant `id` on `vin`, or 404 (someone else's, another vehicle's, unknown: the same answer). */
  async function ownGrant(req: FastifyRequest, vin: string, id: string): Promise<{ subject: string; g: GrantRecord }> {
    const p = await owner(req, vin);
    const g = await deps.grants.get(id);
    if (!g || g.vin !== vin || g.ownerId !== p.subject) throw new ApiError(404, 'API_ERR_NOT_FOUND', `grant ${id} not found`);
    return { subject: p.subject, g };
  }

  app.get(
    '/v1/recipients',
    {
      config: SIGNED_IN,
      schema: { response: { 200: z.object({ recipients: z.array(z.object({ id: z.string(), role: z.string(), name: z.string() })) }) } },
    },
    async () => ({ recipients: (await deps.recipients.list()).map((r) => ({ id: r.id, role: r.role, name: r.name })) }),
  );

  app.post(
    '/v1/vehicles/:vin/grants',
    {
      config: CUSTOMER,
      schema: {
        params: VinParams,
        body: z
          .object({
            recipientId: RecipientId,
            categories: z.array(z.string().max(32)).min(1).max(CATEGORIES.length),
            /** Only these fields of the categories (catalogue names, e.g. technical.speedKmh); absent: whole categories. */
            fields: z.array(z.string().max(100)).max(GRANTABLE_FIELDS.length).optional(),
            purpose: z.string().trim().min(1, 'required').max(1000),
            expiresAt: isoTime.optional(),
            dataFrom: isoTime.optional(),
            access: z.array(z.string().max(16)).min(1).max(ACCESS_MODES.length).optional(),
          })
          .strict(),
        response: { 201: GrantOut },
      },
    },
    async (req, reply) => {
      const { vin } = req.params;
      const p = await owner(req, vin);
      const now = new Date();
      const recipient = await deps.recipients.get(req.body.recipientId);
      const c = checkNewGrant(req.body, recipient, now, deps.limits.grantMaxDays, GRANTABLE_FIELDS);
      if (!c.ok) {
        const code = c.code ? FIELD_CODES[c.code] : recipient === null || c.problem.startsWith('recipientId') ? 'API_ERR_UNKNOWN_RECIPIENT' : 'API_ERR_VALIDATION';
        throw new ApiError(400, code, `body.${c.problem}`);
      }
      let g: GrantRecord;
      try {
        g = await deps.grants.create({
          vin,
          ownerId: p.subject,
          recipientId: req.body.recipientId,
          categories: c.categories,
          fields: c.fields,
          access: c.access,
          purpose: req.body.purpose,
          dataFrom: c.dataFrom,
          expiresAt: c.expiresAt,
          actor: `customer:${p.subject}`,
        });
      } catch (err) {
        // The vehicle changed hands meanwhile.
        if (deps.failures.isNotFound(err)) throw new ApiError(404, 'API_ERR_NOT_FOUND', `vehicle ${vin} not found`);
        throw err;
      }
      req.log.info({ event: 'grant_created', vin, grant_id: g.id, recipient: g.recipientId, categories: g.categories, fields: g.fields }, 'grant created');
      return reply.status(201).header('cache-control', 'no-store').send(grantOut(g, now));
    },
  );

  app.get(
    '/v1/vehicles/:vin/grants',
    { config: CUSTOMER, schema: { params: VinParams, response: { 200: z.object({ vin: z.string(), grants: z.array(GrantOut) }) } } },
    async (req) => {
      const p = await owner(req, req.params.vin);
      const now = new Date();
      return { vin: req.params.vin, grants: (await deps.grants.listByOwner(req.params.vin, p.subject)).map((g) => grantOut(g, now)) };
    },
  );

  app.delete('/v1/vehicles/:vin/grants/:id', { config: CUSTOMER, schema: { params: GrantParams } }, async (req, reply) => {
    const { vin, id } = req.params;
    const p = await owner(req, vin);
    // Committed (and announced by NOTIFY) before the 204: every read checks the grant in
    // the statement that files its disclosure, on every instance.
    const r = await deps.grants.revoke(vin, p.subject, id, `customer:${p.subject}`);
    if (r === 'not_found') throw new ApiError(404, 'API_ERR_NOT_FOUND', `grant ${id} not found`);
    if (r === 'not_active') throw new ApiError(409, 'API_ERR_CONFLICT', `grant ${id} is no longer active (revoked, expired or ended)`);
    req.log.info({ event: 'grant_revoked', vin, grant_id: id }, 'grant revoked');
    return reply.status(204).send();
  });

  app.get(
    '/v1/vehicles/:vin/grants/:id/receipt',
    { config: CUSTOMER, schema: { params: GrantParams } },
    async (req, reply) => {
      const { vin, id } = req.params;
      const { g } = await ownGrant(req, vin, id);
      const now = new Date();
      const status = grantStatus({ ...g }, now);
      const events: { type: string; at: string; actor: string }[] = (await deps.grants.events(id)).map((e) => ({ type: e.kind, at: e.at.toISOString(), actor: e.actor }));
      if (g.periodEndedAt && (!g.revokedAt || g.periodEndedAt < g.revokedAt) && g.periodEndedAt < g.expiresAt) {
        events.push({ type: 'terminated', at: g.periodEndedAt.toISOString(), actor: 'system (the vehicle was transferred to a new owner)' });
      }
      if (status === 'expired') events.push({ type: 'expired', at: g.expiresAt.toISOString(), actor: 'system' });
      void reply.header('cache-control', 'no-store');
      // Field names after the consent record of ISO/IEC TS 27560:2023 (and the W3C DPV
      // terms it builds on): what was agreed, by whom, with whom, for what, until when.
      return {
        schema: 'cardata-gateway grant receipt v1 (consent record fields after ISO/IEC TS 27560:2023)',
        recordId: g.id,
        version: events.length,
        issuedAt: now.toISOString(),
        piiPrincipal: { id: g.ownerId, role: 'owner of the vehicle (data subject and Data Act user)' },
        piiController: { name: 'the operator of this cardata-gateway', role: 'data holder (Data Act Art. 2(13))' },
        recipient: { id: g.recipientId, name: g.recipientName, role: g.recipientRole },
        subject: { vin: g.vin },
        // piiFields: the fields shared (data minimisation, GDPR Art. 5(1)(c)); null: every field of piiCategories.
        purposes: [{ purpose: g.purpose, legalBasis: LEGAL_BASIS, piiCategories: g.categories, piiFields: g.fields, categoryPurposes: Object.fromEntries(g.categories.map((c) => [c, PURPOSES[c].purpose])) }],
        processing: { accessModes: g.access, dataFrom: g.dataFrom.toISOString(), dataUntil: grantEnd({ ...g }).toISOString(), disclosuresListedAt: `GET /v1/vehicles/${g.vin}/disclosures` },
        validity: { from: g.createdAt.toISOString(), until: g.expiresAt.toISOString() },
        status,
        origin: g.origin === 'checkin' ? 'workshop visit (check-in code made by the owner, redeemed by the workshop)' : 'owner (POST /v1/vehicles/{vin}/grants)',
        events,
        revocation: { method: `DELETE /v1/vehicles/${g.vin}/grants/${g.id}`, revokedAt: g.revokedAt?.toISOString() ?? null, endedByTransferAt: g.periodEndedAt?.toISOString() ?? null },
      };
    },
  );

  app.post(
    '/v1/vehicles/:vin/checkin-codes',
    {
      config: CUSTOMER,
      schema: {
        params: VinParams,
        body: z
          .object({
            recipientId: RecipientId.optional(),
            /** How long the visit lasts, hours: the grant the code gives expires then. */
            visitHours: z.number().int().min(1).max(deps.limits.visitMaxHours),
            dataFrom: isoTime.optional(),
          })
          .strict(),
        response: {
          201: z.object({ code: z.string(), vin: z.string(), expiresAt: z.string(), visitHours: z.number(), recipientId: z.string().nullable(), dataFrom: z.string() }),
        },
      },
    },
    async (req, reply) => {
      const { vin } = req.params;
      const p = await owner(req, vin);
      const rid = req.body.recipientId ?? null;
      if (rid !== null) {
        const r = await deps.recipients.get(rid);
        if (!r || r.role !== 'workshop') throw new ApiError(400, 'API_ERR_UNKNOWN_RECIPIENT', 'body.recipientId: not a registered workshop (GET /v1/recipients lists them)');
      }
      let code = '';
      for (let i = 0; i < CODE_LENGTH; i++) code += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
      const visitHours = req.body.visitHours;
      let made;
      try {
        made = await deps.checkins.create({ codeHash: codeHash(code), vin, ownerId: p.subject, recipientId: rid, visitHours, dataFrom: req.body.dataFrom ?? null, ttlSeconds: deps.limits.checkinCodeTtlS });
      } catch (err) {
        if (deps.failures.isNotFound(err)) throw new ApiError(404, 'API_ERR_NOT_FOUND', `vehicle ${vin} not found`);
        throw err;
      }
      req.log.info({ event: 'checkin_code_created', vin, visit_hours: visitHours }, 'check-in code created');
      return reply
        .status(201)
        .header('cache-control', 'no-store')
        .send({ code: `${code.slice(0, 5)}-${code.slice(5)}`, vin, expiresAt: made.expiresAt.toISOString(), visitHours, recipientId: rid, dataFrom: made.dataFrom.toISOString() });
    },
  );

  app.post(
    '/v1/workshop/checkins',
    { config: { roles: ['workshop'] as const }, schema: { body: z.object({ code: z.string().min(1).max(32) }).strict(), response: { 201: GrantOut } } },
    async (req, reply) => {
      const p = caller(req);
      const me = await deps.recipients.get(p.subject);
      if (!me || me.role !== 'workshop') throw new ApiError(403, 'API_ERR_FORBIDDEN', 'this workshop is not registered as a recipient (POST /v1/admin/recipients)');
      const norm = normalizeCode(req.body.code);
      const g = norm.length === CODE_LENGTH ? await deps.checkins.redeem(codeHash(norm), p.subject, 'workshop visit: consumption counters for diagnosis and service') : null;
      if (!g) throw new ApiError(404, 'API_ERR_NOT_FOUND', 'no usable check-in code (unknown, already used, expired, or for another workshop)');
      req.log.info({ event: 'checkin_redeemed', vin: g.vin, grant_id: g.id, recipient: p.subject }, 'check-in code redeemed');
      return reply.status(201).header('cache-control', 'no-store').send(grantOut(g, new Date()));
    },
  );

  app.get('/v1/grants', { config: RECIPIENT, schema: { response: { 200: z.object({ grants: z.array(GrantOut) }) } } }, async (req) => {
    const p = caller(req);
    const now = new Date();
    const mine = (await deps.grants.listForRecipient(p.subject)).filter((g) => g.recipientRole === p.role && grantStatus({ ...g }, now) === 'active');
    return { grants: mine.map((g) => grantOut(g, now)) };
  });

  app.get(
    '/v1/grants/:id/cardata',
    {
      config: RECIPIENT,
      schema: {
        params: GrantIdParams,
        querystring: z.object({ format: z.enum(['ndjson', 'csv', 'zip']).default('ndjson'), from: isoTime.optional(), to: isoTime.optional(), names: NamesParam }).strict(),
      },
    },
    async (req, reply) => {
      const p = caller(req);
      // Before any database work: the slot is held until the answer is closed.
      exportSlots.take(callerKey(p), reply);
      const { id } = req.params;
      const r = range(req.query);
      const now = new Date();
      const g = await deps.grants.get(id);
      const notFound = () => new ApiError(404, 'API_ERR_NOT_FOUND', `grant ${id} not found`);
      const periods = g ? await deps.rights.periodsOf(g.vin, g.ownerId) : [];
      const restricted = g ? await restrictedNow(g.vin, now) : false;
      const d = recipientRead(p, g, { ownerPeriods: periods, restricted, now, mode: 'history', requested: r });
      if (!d.ok) throw refusalError(d.refusal, { mode: 'history', notFound });
      const vin = g!.vin;
      const { categories, fields, windows } = d.scope;
      // Connectivity (README "Connectivity") travels in the ZIP only, as the owner's export.
      const withConnectivity = d.scope.connectivity && req.query.format === 'zip' && deps.connectivity !== undefined;
      // The disclosure is committed before the first row is read, by the statement that
      // re-checks the grant and the restriction: a read it does not cover cannot happen.
      const filed = await deps.grants.disclose({
        grantId: id,
        role: p.role,
        subject: p.subject,
        endpoint: 'GET /v1/grants/{id}/cardata',
        categories: withConnectivity ? [...categories, 'connectivity'] : categories,
        fields,
        rangeFrom: windows[0]?.from ?? r.from,
        rangeTo: windows.length ? (windows.at(-1)!.to ?? null) : r.to,
      });
      if (!filed) throw refusalError((await restrictedNow(vin, new Date())) ? 'RESTRICTED' : 'NOT_FOUND', { mode: 'history', notFound });
      const pers = windows.map((w) => ({ ownerId: g!.ownerId, from: w.from, startedAt: w.from, to: w.to }));
      const all = { from: null, to: null };
      req.log.info({ event: 'grant_read', vin, grant_id: id, recipient: p.subject, format: req.query.format, categories, fields }, 'read through a grant');
      // A field-level grant: only its fields are selected from the database, in every format.
      return sendExport(reply, {
        vin,
        format: req.query.format,
        groups: categories,
        fields,
        baseName: `cardata-${vin}-grant-${id}-${now.toISOString().replace(/[:.]/g, '-')}`,
        names: req.query.names,
        vss: vssFiles,
        // A grant of connectivity alone has no records to read.
        ndjson: () => (categories.length ? deps.reads.ndjson(vin, pers, all, categories, undefined, fields) : nothing<string>()),
        records: () => (categories.length ? deps.reads.records(vin, pers, all, categories, undefined, fields) : nothing()),
        zipExtras: async () => [
          ['grant.json', JSON.stringify(grantOut(g!, now), null, 2)],
          ...(withConnectivity ? [['connectivity.ndjson', connectivityNdjson(await deps.connectivity!.connections(vin, windows))] as [string, string]] : []),
          [
            'README.md',
            [
              `# CarData of vehicle ${vin}, shared through grant ${id}`,
              '',
              `Prepared on ${now.toISOString()} for ${g!.recipientName} (\`${g!.recipientId}\`), at the owner's request (Regulation (EU) 2023/2854 Art. 5).`,
              `- Purpose agreed: ${g!.purpose}`,
              `- Categories: ${categories.join(', ')}.`,
              ...(fields ? [`- Fields (only these were shared, GDPR Art. 5(1)(c)): ${fields.join(', ')}.`] : []),
              '- Data measured in:',
              ...(windows.length ? windows.map((w) => `  - ${w.from.toISOString()} to ${w.to?.toISOString() ?? 'now'}`) : ['  - (nothing in the asked range)']),
              '- This read is listed to the owner (GET /v1/vehicles/{vin}/disclosures).',
              '- `catalogue.json` describes every field: unit, category, purpose, legal basis, COVESA VSS name, unit and datatype.',
              '',
              ...fieldsReadme(categories, req.query.names, fields ?? null),
            ].join('\n'),
          ],
        ],
      });
    },
  );
};
