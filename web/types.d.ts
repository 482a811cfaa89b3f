// Types the portal's modules share (checked by web/tsconfig.json; never served: the
// gateway serves only .js, .css and the like from web/). Global declarations: the
// modules name them in JSDoc without an import.

/** The signed-in session, kept in sessionStorage (auth.js writes it, early.js reads it). */
interface Session {
  accessToken: string;
  /** Gets the next access token (RFC 6749 §6): rotated on each use; absent when signed in with an API token. */
  refreshToken?: string | null;
  idToken: string | null;
  /** When the access token expires, ms since epoch. */
  expiresAt: number;
  /** When it is to be refreshed (80 % of its lifetime), ms since epoch. */
  refreshAt?: number;
  subject: string | null;
  /** Found out after sign-in: an owner ('customer') or a recipient of grants. */
  role?: 'customer' | 'recipient';
}

/** A period, ms since epoch. */
interface TimeRange {
  from: number;
  to: number;
}

/** The settings the gateway puts into the page (api/routes/web.ts), also at /portal/config.json. */
interface PortalConfig {
  oidc: { issuer: string | null; clientId: string; scope: string; resource?: string };
}

/** One Server-Sent Event (sse.js). */
interface SseEvent {
  id: string | null;
  event: string;
  data: string;
}

/** What early.js publishes for the modules (boot.js hands it on): plain functions, no `this`. */
interface CardataBoot {
  SESSION: string;
  currentSession: () => Session | null;
  DAY: number;
  DEFAULT_SPAN_MS: number;
  CHART_FIELDS: string[];
  latestPath: (vin: string) => string;
  consentPath: (vin: string) => string;
  chartsPath: (vin: string, range: TimeRange) => string;
  trackPath: (vin: string, range: TimeRange) => string;
  overviewVin: (hash: string) => string | null;
  takeEarly: (path: string, token: string) => Promise<Response> | null;
  takeBootTime: (vin: string) => number | null;
}

// eslint-disable-next-line no-var -- a global set by a classic script is a `var` of globalThis.
declare var cardataBoot: CardataBoot | undefined;

/** A form control's event as Preact hands it to a handler: currentTarget is the control. */
type InputEvt = import('preact').TargetedEvent<HTMLInputElement>;
type SelectEvt = import('preact').TargetedEvent<HTMLSelectElement>;

// The API's answers, as far as the portal reads them (api/routes/*.ts has the full schemas).

type Values = Record<string, number | null>;
/** A telemetry record: groups of values, each group present or not. */
interface TelemetryRecord {
  seq?: number | string;
  recordedAt: string;
  technical?: Values;
  consumption?: Values;
  location?: Values;
}
interface VehicleList {
  vehicles: { vin: string; since: string }[];
}
interface Latest {
  record: TelemetryRecord | null;
}
/** Time-bucketed series: t (ms since epoch) and, per field, one value per bucket and aggregate. */
interface Series {
  t: number[];
  fields: Partial<Record<string, { avg?: (number | null)[]; max?: (number | null)[] }>>;
}
interface ConsentState {
  location: boolean;
  co2Sharing: boolean;
  restricted: boolean;
  since: string;
}
interface ConsentHistory {
  events: (ConsentState & { at: string; actor: string; channel: string; erasedLocationHistory: boolean })[];
}
interface ErasureResult {
  telemetryRecordsDeleted: number;
  telemetryRecordsUpdated: number;
  obfcmReadingsDeleted: number;
  obfcmReadingsKept: number;
}
interface Grant {
  id: string;
  vin: string;
  recipientId: string;
  recipientName: string;
  recipientRole: string;
  categories: string[];
  /** A field-level grant's fields (catalogue names); null: whole categories. */
  fields?: string[] | null;
  access: string[];
  purpose: string;
  expiresAt: string;
  status: 'active' | 'revoked' | 'expired' | 'ended';
}
interface GrantList {
  grants: Grant[];
}
interface Recipient {
  id: string;
  name: string;
  role: string;
}
interface CheckinCode {
  code: string;
  expiresAt: string;
}
interface Disclosure {
  at: string;
  role: string;
  subject: string;
  endpoint: string;
  categories: string[];
  /** The fields a read through a field-level grant carried; null: whole categories. */
  fields?: string[] | null;
  from: string | null;
  to: string | null;
  grantId: string | null;
}
/** GET /v1/data-description (api/routes/data-description.ts): the product data description of Data Act Art. 3(2). */
interface DataDescription {
  record: { dataAct: string; fields: DescribedField[] };
  categories: {
    category: string;
    purpose: string;
    legalBasis: string;
    fields: DescribedField[];
    volume: { bytesPerRecord: number; bytesPerVehiclePerDay: number | null; per: 'record' | 'event' };
    retention: { text: string; afterContractDays: number; maxAgeDays: number | null; shareableCopyDays: number | null };
  }[];
  formats: { dataAct: string; offered: { format: string; mediaType: string; names: string[]; routes: string[]; note: string }[] };
  volume: { dataAct: string; basis: 'configured' | 'observed'; sendIntervalMs: number; recordsPerVehiclePerDay: number; bytesPerRecord: number; bytesPerVehiclePerDay: number };
  generation: { dataAct: string; continuous: boolean; realTime: boolean };
  storage: { dataAct: string; engine: string; description: string; sharded: boolean; shards: number };
  access: { dataAct: string } & Record<'access' | 'retrieve' | 'share' | 'erase' | 'control', { method: string; path: string; who: string; what: string }[]>;
  metadata: { dataAct: string; catalogue: string; vss: { release: string } };
}
interface DescribedField {
  name: string;
  unit: string;
  description: string;
  vss: string | null;
  vssUnit: string | null;
  vssDatatype: string | null;
}
interface Catalogue {
  fields: { name: string; unit: string; category: string; purpose: string; legalBasis: string; retention: string; description: string }[];
}
interface WorkshopConsumption {
  /** A counter the car did not send is absent (the API never sends null here). */
  latest: { recordedAt: string; consumption: Record<string, number> } | null;
}
