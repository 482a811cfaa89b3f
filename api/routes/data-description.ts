// The product data description of Regulation (EU) 2023/2854 (Data Act) Art. 3(2): what
// data the vehicle generates and in what format and volume (a), whether continuously and in
// real time (b), where it is kept and for how long (c), and how the user accesses,
// retrieves, shares and erases it (d); with the metadata to interpret it (Art. 4(1)). Public
// (a prospective buyer reads it before any contract), JSON, with an ETag. Built from the
// catalogue (api/catalogue.ts: fields, units, VSS names, purposes), so a category or field
// added there appears here without a change.
import { createHash } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { CATALOGUE, PURPOSES } from '../catalogue.ts';
import { VSS_OVERLAY_FILE, VSS_RELEASE, VSS_STANDARD_FILE } from '../../proto/vss.ts';
import { RECORD_NAMES } from '../../proto/vss-records.ts';
import { GROUPS } from '../../proto/fields.ts';

export interface DataDescriptionDeps {
  /**
   * The storage in use: engine (`timescaledb`, `postgres`, `pglite`) and number of telemetry
   * shards (1: not sharded). Asked per request: the engine is known once the schema is migrated.
   */
  storage(): { engine: string; shards: number };
  /** Retention settings, days (config: RETENTION_AFTER_CONTRACT_DAYS, RETENTION_DAYS (0: off), OBFCM_RETENTION_DAYS, STREAM_LOG_RETENTION_DAYS). */
  retention: { afterContractDays: number; telemetryDays: number; obfcmDays: number; streamLogDays: number };
  /** How often the fleet's vehicles are set to send a record, ms (VEHICLE_SEND_INTERVAL_MS): the volume estimate's basis. */
  sendIntervalMs: number;
}

const ART = 'Regulation (EU) 2023/2854 (Data Act)';
/** Characters assumed per value in the volume estimate (a float8's text is up to 24; vehicles' readings are mostly 3-10). */
const VALUE_CHARS = 10;
const DAY_MS = 86_400_000;

const Field = z.object({
  name: z.string(),
  unit: z.string(),
  description: z.string(),
  vss: z.string().nullable(),
  vssUnit: z.string().nullable(),
  vssDatatype: z.string().nullable(),
});
const Route = z.object({ method: z.string(), path: z.string(), who: z.string(), what: z.string() });
const Part = <T extends z.ZodRawShape>(shape: T) => z.object({ dataAct: z.string(), ...shape });

const Description = z.object({
  schema: z.string(),
  regulation: z.string(),
  record: Part({ fields: z.array(Field) }),
  categories: z.array(
    z.object({
      category: z.string(),
      purpose: z.string(),
      legalBasis: z.string(),
      recipients: z.string(),
      fields: z.array(Field),
      /** Per telemetry record (null per day for a category that is not part of the records, e.g. one row per connection). */
      volume: z.object({ bytesPerRecord: z.number(), bytesPerVehiclePerDay: z.number().nullable(), per: z.enum(['record', 'event']) }),
      retention: z.object({ text: z.string(), afterContractDays: z.number(), maxAgeDays: z.number().nullable(), shareableCopyDays: z.number().nullable() }),
    }),
  ),
  formats: Part({ offered: z.array(z.object({ format: z.string(), mediaType: z.string(), names: z.array(z.string()), routes: z.array(z.string()), note: z.string() })) }),
  volume: Part({
    basis: z.enum(['configured', 'observed']),
    setting: z.string(),
    sendIntervalMs: z.number(),
    recordsPerVehiclePerDay: z.number(),
    bytesPerRecord: z.number(),
    bytesPerVehiclePerDay: z.number(),
    note: z.string(),
  }),
  generation: Part({ continuous: z.boolean(), realTime: z.boolean(), detail: z.string() }),
  storage: Part({ onDevice: z.boolean(), remoteServer: z.boolean(), engine: z.string(), description: z.string(), sharded: z.boolean(), shards: z.number(), streamLogDays: z.number(), detail: z.string() }),
  access: Part({ access: z.array(Route), retrieve: z.array(Route), share: z.array(Route), erase: z.array(Route), control: z.array(Route) }),
  metadata: Part({ catalogue: z.string(), vss: z.object({ release: z.string(), overlay: z.string(), standardPaths: z.string(), names: z.array(z.string()) }), detail: z.string() }),
});
type Description = z.infer<typeof Description>;

const ENGINES: Record<string, string> = {
  timescaledb: 'TimescaleDB (PostgreSQL with the timescaledb extension): the hypertable `telemetry`, chunked by measurement time',
  postgres: 'PostgreSQL: the table `telemetry`',
  pglite: "embedded PostgreSQL (PGlite) in the gateway's data folder",
};

const route = (method: string, path: string, who: string, what: string) => ({ method, path, who, what });

/** NDJSON bytes of a record's metadata members (vin, seq, recordedAt, receivedAt) and the newline. */
function metadataBytes(): number {
  const t = '2026-01-01T00:00:00.000Z';
  return JSON.stringify({ vin: 'W'.repeat(17), seq: 10 ** (VALUE_CHARS - 1), recordedAt: t, receivedAt: t }).length + 1;
}

/** NDJSON bytes a category adds to a record carrying every one of its fields: `,"g":{"f":v,…}`. */
function categoryBytes(category: string, fields: readonly { name: string }[]): number {
  const members = fields.map((f) => `"${f.name.slice(f.name.indexOf('.') + 1)}":`.length + VALUE_CHARS);
  return `,"${category}":{}`.length + members.reduce((a, b) => a + b, 0) + Math.max(0, members.length - 1);
}

export function describeData(deps: DataDescriptionDeps): Description {
  const { engine, shards } = deps.storage();
  const recordsPerDay = Math.round(DAY_MS / deps.sendIntervalMs);
  const field = (f: (typeof CATALOGUE)[number]) => ({ name: f.name, unit: f.unit, description: f.description, vss: f.vss, vssUnit: f.vssUnit, vssDatatype: f.vssDatatype });
  const base = metadataBytes();
  const r = deps.retention;
  const categories = (Object.keys(PURPOSES) as (keyof typeof PURPOSES)[]).map((g) => {
    const p = PURPOSES[g];
    const fields = CATALOGUE.filter((f) => f.category === g && f.name.startsWith(`${g}.`));
    const bytes = categoryBytes(g, fields);
    // A telemetry category travels in every record; any other (connectivity) is one row per event, not estimated per day.
    const inRecords = (GROUPS as readonly string[]).includes(g);
    return {
      category: g,
      purpose: p.purpose,
      legalBasis: p.legalBasis,
      recipients: p.recipients,
      fields: fields.map(field),
      volume: inRecords ? { bytesPerRecord: bytes, bytesPerVehiclePerDay: bytes * recordsPerDay, per: 'record' as const } : { bytesPerRecord: bytes, bytesPerVehiclePerDay: null, per: 'event' as const },
      retention: {
        text: p.retention,
        afterContractDays: r.afterContractDays,
        maxAgeDays: r.telemetryDays > 0 ? r.telemetryDays : null,
        shareableCopyDays: g === 'consumption' ? r.obfcmDays : null,
      },
    };
  });
  const perRecord = base + categories.reduce((a, c) => a + (c.volume.per === 'record' ? c.volume.bytesPerRecord : 0), 0);
  const names = [...RECORD_NAMES];
  return {
    schema: 'cardata-gateway product data description v1',
    regulation: `${ART} Art. 3(2); metadata Art. 4(1)`,
    record: {
      dataAct: 'Art. 3(2)(a): type of data',
      fields: CATALOGUE.filter((f) => !f.name.includes('.')).map(field),
    },
    categories,
    formats: {
      dataAct: 'Art. 3(2)(a): format; Art. 4(1): in a comprehensive, structured, commonly used and machine-readable format',
      offered: [
        { format: 'ndjson', mediaType: 'application/x-ndjson', names, routes: ['GET /v1/vehicles/{vin}/cardata?format=ndjson', 'GET /v1/grants/{id}/cardata?format=ndjson'], note: 'one JSON object per record, in measurement order' },
        { format: 'csv', mediaType: 'text/csv', names, routes: ['GET /v1/vehicles/{vin}/cardata?format=csv', 'GET /v1/grants/{id}/cardata?format=csv'], note: 'RFC 4180, one column per field' },
        {
          format: 'zip',
          mediaType: 'application/zip',
          names,
          routes: ['GET /v1/vehicles/{vin}/cardata?format=zip', 'GET /v1/grants/{id}/cardata?format=zip'],
          note: 'records as NDJSON and CSV with catalogue.json, README.md and the VSS overlay; the owner\'s also consent history and disclosures',
        },
        { format: 'sse', mediaType: 'text/event-stream', names, routes: ['GET /v1/vehicles/{vin}/stream', 'GET /v1/grants/{id}/stream'], note: 'Server-Sent Events: each record as it is stored, resumable without gap' },
        { format: 'json', mediaType: 'application/json', names: ['catalogue'], routes: ['GET /v1/vehicles/{vin}/latest', 'GET /v1/vehicles/{vin}/series', 'GET /v1/vehicles/{vin}/location/latest'], note: 'the newest values and time-bucketed summaries (the portal\'s views)' },
      ],
    },
    volume: {
      dataAct: 'Art. 3(2)(a): estimated volume',
      basis: 'configured',
      setting: 'VEHICLE_SEND_INTERVAL_MS',
      sendIntervalMs: deps.sendIntervalMs,
      recordsPerVehiclePerDay: recordsPerDay,
      bytesPerRecord: perRecord,
      bytesPerVehiclePerDay: perRecord * recordsPerDay,
      note: `NDJSON bytes of a record with every field present (values of ${VALUE_CHARS} characters), at the send interval the operator configured, for a vehicle sending all day; a vehicle sends only while it runs, and a field it does not measure is left out.`,
    },
    generation: {
      dataAct: 'Art. 3(2)(b): continuously and in real time',
      continuous: true,
      realTime: true,
      detail: 'The vehicle measures and sends records continuously while it runs (MQTT, QoS 1). Each record is available once stored: in real time on the live stream (Server-Sent Events), and in every export.',
    },
    storage: {
      dataAct: 'Art. 3(2)(c): where the data is stored and for how long',
      onDevice: false,
      remoteServer: true,
      engine,
      description: ENGINES[engine] ?? engine,
      sharded: shards > 1,
      shards,
      streamLogDays: r.streamLogDays,
      detail:
        "Stored on the operator's server by the gateway, after the owner's privacy choices are applied (nothing refused is stored). With several shards each vehicle's records are in one of them, by VIN. The live stream's resume log keeps the record keys for streamLogDays. Retention per purpose: see each category.",
    },
    access: {
      dataAct: 'Art. 3(2)(d): how to access, retrieve or erase, with the technical means (also Art. 4(1) access, Art. 5 sharing)',
      access: [
        route('GET', '/v1/vehicles/{vin}/stream', 'owner', 'live records as they are stored'),
        route('GET', '/v1/vehicles/{vin}/latest', 'owner', 'the newest values and how old each is'),
        route('GET', '/v1/vehicles/{vin}/disclosures', 'owner', 'every read by anyone else'),
        route('GET', '/v1/vehicles/{vin}/status', 'owner, or a grant covering connectivity', 'whether the vehicle is online, since when, and when it was last seen'),
        route('GET', '/', 'owner', 'the portal (sign-in with the gateway\'s OpenID Provider)'),
        route('POST', '/oidc/device/auth', 'owner\'s tool (CLI, home automation)', 'sign in without a browser on the device (OAuth device flow, RFC 8628), then use every owner route'),
      ],
      retrieve: [
        route('GET', '/v1/vehicles/{vin}/cardata', 'owner', 'everything stored about the vehicle: ndjson, csv or zip; names=vss for VSS paths'),
        route('GET', '/v1/grants/{id}/cardata', 'recipient of a grant', 'the owner\'s export reduced to the grant'),
        route('GET', '/v1/grants/{id}/stream', 'recipient of a grant with stream access', 'live records reduced to the grant'),
        route('POST', '/v1/webhooks', 'recipient of grants', 'have the grants\' records and grant events pushed, signed (Standard Webhooks), at least once, in order'),
      ],
      share: [
        route('POST', '/v1/vehicles/{vin}/grants', 'owner', 'share categories with a workshop or third party, for a purpose and a time'),
        route('DELETE', '/v1/vehicles/{vin}/grants/{id}', 'owner', 'end a grant'),
        route('POST', '/v1/vehicles/{vin}/checkin-codes', 'owner', 'a single-use code for a workshop visit'),
        route('POST', '/v1/admin/recipients/{id}/clients', 'operator', 'credentials for a recipient\'s service (OAuth client credentials) to read what it was granted'),
      ],
      erase: [
        route('DELETE', '/v1/vehicles/{vin}/data', 'owner', 'erase stored data of the owner\'s periods (?category= for one category)'),
        route('PUT', '/v1/vehicles/{vin}/consent?eraseHistory=true', 'owner', 'refuse location and erase stored positions'),
      ],
      control: [
        route('PUT', '/v1/vehicles/{vin}/consent', 'owner', 'location processing and CO2 sharing'),
        route('PUT', '/v1/vehicles/{vin}/restriction', 'owner', 'restrict processing (GDPR Art. 18)'),
      ],
    },
    metadata: {
      dataAct: 'Art. 4(1): the metadata necessary to interpret and use the data',
      catalogue: '/v1/catalogue',
      vss: { release: `COVESA VSS ${VSS_RELEASE}`, overlay: VSS_OVERLAY_FILE, standardPaths: VSS_STANDARD_FILE, names },
      detail: 'Every field has a unit and a COVESA VSS name; exports and streams link the catalogue and this description (Link: rel="describedby"); ZIP archives carry both files of VSS names.',
    },
  };
}

export const dataDescriptionRoutes: FastifyPluginAsync<DataDescriptionDeps> = async (app0, deps) => {
  const app = app0.withTypeProvider<ZodTypeProvider>();
  /** The answer by storage in use (it changes once, when the schema is migrated): body and ETag. */
  let cached: { key: string; body: string; etag: string } | null = null;
  app.get(
    '/v1/data-description',
    {
      schema: {
        description: 'The product data description (Data Act Art. 3(2)): fields, formats, volume, generation, storage, retention and the routes to access, retrieve, share and erase. Public.',
        security: [],
        response: { 200: Description },
      },
    },
    async (req, typed) => {
      // The body is serialized once per storage state (and hashed for the ETag), not per request.
      const reply = typed as FastifyReply;
      const s = deps.storage();
      const key = `${s.engine}/${s.shards}`;
      if (cached?.key !== key) {
        const body = JSON.stringify(describeData(deps));
        cached = { key, body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
      }
      void reply.header('etag', cached.etag).header('cache-control', 'public, max-age=300');
      if (req.headers['if-none-match'] === cached.etag) return reply.status(304).send();
      return reply.type('application/json; charset=utf-8').send(cached.body);
    },
  );
};
