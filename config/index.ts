// One schema for every setting. Parsed once at start from the environment, then frozen.
// Names of the environment variables are the contract (README "Configuration").
import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
/**
 * Longest lifetime of an API token, s (30 days). The token service holds the same bound
 * (identity/tokens.ts MAX_TOKEN_TTL_S; config imports no project code, so a unit test
 * checks the two agree).
 */
export const MAX_TOKEN_TTL_S = 30 * 24 * 3600;

/** Environment variable name → how it is parsed. Defaults carry their unit in the name. */
const envSchema = z
  .object({
    /** PostgreSQL/TimescaleDB connection string. Unset: the embedded database (see README). */
    DATABASE_URL: z.string().url().optional(),
    /** Telemetry shards: comma-separated PostgreSQL/TimescaleDB URLs (README "Sharding"). Unset: everything in DATABASE_URL. Needs DATABASE_URL. */
    SHARD_URLS: z
      .string()
      .refine((v) => v.split(',').every((u) => URL.canParse(u.trim()) && /^postgres(ql)?:$/.test(new URL(u.trim()).protocol)), 'must be comma-separated postgres:// URLs')
      .refine((v) => new Set(v.split(',').map((u) => u.trim())).size === v.split(',').length, 'names the same URL twice')
      .optional(),
    /**
     * Optional: a read-only URL for exports (e.g. HAProxy's read port in front of Patroni's
     * standbys, docs/high-availability.md). An export reads there only once the standby has
     * replayed what the primary had committed when the request began; else DATABASE_URL.
     */
    DATABASE_READ_URL: z.string().url().refine((u) => /^postgres(ql)?:$/.test(new URL(u).protocol), 'must be a postgres:// URL').optional(),
    /** How long an export waits for DATABASE_READ_URL's standby to catch up before reading on the primary, ms. */
    DATABASE_READ_MAX_WAIT_MS: z.coerce.number().int().min(0).max(60_000).default(1000),
    /** Folder of the embedded database when DATABASE_URL is unset. */
    DATA_DIR: z.string().min(1).default('./data'),
    /** Connections in the pg pool (writers + API reads). */
    DB_POOL_MAX: positiveInt.max(1000).default(10),
    MQTT_HOST: z.string().min(1).default('0.0.0.0'),
    MQTT_PORT: port.default(1883),
    HTTP_HOST: z.string().min(1).default('0.0.0.0'),
    HTTP_PORT: port.default(8080),
    /** Bearer token of the admin API. Unset: a random one is generated and printed once. */
    ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
    /** Largest telemetry payload accepted for decoding, bytes; larger ones are quarantined. */
    MAX_PAYLOAD_BYTES: positiveInt.default(256 * 1024),
    /** Most records in one message; a message with more is quarantined whole (bounds the work one message can cause). */
    MAX_RECORDS_PER_MESSAGE: positiveInt.max(1_000_000).default(5000),
    /** Largest MQTT packet read at all, bytes; a larger one closes the connection. Default: MAX_PAYLOAD_BYTES + MQTT_HEADER_ROOM_BYTES. */
    MAX_PACKET_BYTES: positiveInt.optional(),
    /** Most simultaneous MQTT connections. */
    MAX_CONNECTIONS: positiveInt.default(100_000),
    /** A connection must send CONNECT within this time, ms. */
    MQTT_CONNECT_TIMEOUT_MS: positiveInt.default(10_000),
    /** Failed MQTT authentications per source address (IPv6: per /64) before its further attempts are refused unchecked. */
    AUTH_FAILURES_MAX: positiveInt.default(100),
    /** Window of AUTH_FAILURES_MAX, and the cool-down after it is reached, ms. */
    AUTH_FAILURE_WINDOW_MS: positiveInt.default(60_000),
    /** PEM certificate chain: enables MQTT over TLS on MQTTS_PORT and HTTPS on HTTP_PORT. */
    TLS_CERT_FILE: z.string().min(1).optional(),
    /** PEM private key of TLS_CERT_FILE. */
    TLS_KEY_FILE: z.string().min(1).optional(),
    /** PEM CA bundle of vehicle client certificates: enables mutual TLS on MQTTS_PORT. */
    TLS_CLIENT_CA_FILE: z.string().min(1).optional(),
    /** With TLS_CLIENT_CA_FILE: refuse vehicles without a valid client certificate. */
    MQTT_REQUIRE_CLIENT_CERT: z.enum(['true', 'false']).default('false'),
    /** MQTT over TLS port (with TLS_CERT_FILE). */
    MQTTS_PORT: port.default(8883),
    /** Records measured further in the future than this are quarantined, ms. */
    MAX_CLOCK_SKEW_MS: z.coerce.number().int().min(0).default(5 * 60_000),
    /** Records measured longer ago than this are quarantined, ms (default 30 days). */
    MAX_RECORD_AGE_MS: positiveInt.default(30 * 24 * 3_600_000),
    /** Most rows written by one statement. */
    BATCH_MAX_ROWS: positiveInt.max(100_000).default(20_000),
    /** Rows the writer holds (queued + being written) before new messages wait. */
    WRITER_MAX_PENDING_ROWS: positiveInt.default(100_000),
    /** Statements the writer runs at once (each on its own pool connection). */
    WRITER_CONCURRENCY: positiveInt.max(64).default(2),
    /** With a statement in flight, the next waits up to this long for WRITER_LINGER_ROWS rows, ms (0: never waits). */
    WRITER_LINGER_MS: z.coerce.number().int().min(0).max(1000).default(3),
    /** Rows that start the next statement at once while one is in flight. */
    WRITER_LINGER_ROWS: positiveInt.max(100_000).default(500),
    /** Longest wait between retries of a failed write, ms. */
    WRITER_RETRY_MAX_MS: positiveInt.default(2000),
    /** On SIGTERM, how long to wait for in-flight messages to become durable, ms. */
    SHUTDOWN_GRACE_MS: positiveInt.default(10_000),
    /** scrypt cost (N) for new vehicle secrets; secrets are 256-bit random, so a modest cost suffices. */
    SECRET_SCRYPT_COST: z.coerce.number().int().min(1024).max(1 << 20).refine((n) => (n & (n - 1)) === 0, 'must be a power of two').default(4096),
    /**
     * API token signing keys, "kid:secret[,kid:secret…]" (secrets ≥ 32 bytes); the first
     * signs, all verify. Unset: a random key per process (tokens die with it).
     */
    JWT_KEYS: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}:[^,]{32,}(,[A-Za-z0-9._-]{1,64}:[^,]{32,})*$/, 'must be "kid:secret[,kid:secret…]" with key ids of A-Z a-z 0-9 . _ - and secrets of at least 32 characters')
      .optional(),
    /**
     * Key-encryption key of the embedded OpenID Provider's signing and cookie keys at rest:
     * 32 random bytes, base64 (`openssl rand -base64 32`), the same on every instance.
     * Required with NODE_ENV=production; unset otherwise: README "Keys at rest and rotation".
     */
    KEY_ENCRYPTION_KEY: z
      .string()
      .refine(
        (v) => /^[A-Za-z0-9+/_-]{43}={0,1}$/.test(v.trim()) && Buffer.from(v.trim().replace(/-/g, '+').replace(/_/g, '/'), 'base64').length === 32,
        'must be 32 random bytes in base64; make one with: openssl rand -base64 32 (the same on every instance)',
      )
      .optional(),
    /** Default lifetime of minted API tokens, seconds. */
    TOKEN_TTL_S: positiveInt.max(MAX_TOKEN_TTL_S).default(3600),
    /** The gateway's address as its clients see it (scheme://host[:port]); default: the HTTP listener's. Issuer of the embedded OpenID Provider = this + /oidc. */
    PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
    /** An external OpenID Provider whose access tokens the API accepts (its issuer identifier; discovery below it). */
    OIDC_ISSUER: z.url({ protocol: /^https?$/ }).optional(),
    /** The `aud` access tokens must carry to be meant for this API (also the embedded provider's resource indicator). */
    OIDC_AUDIENCE: z.string().min(1).max(512).default('urn:cardata-gateway:api'),
    /** Claim of the external provider's tokens that names the caller (dotted path for nested claims). */
    OIDC_SUBJECT_CLAIM: z.string().regex(/^[A-Za-z0-9_:.-]{1,128}$/, 'must be a claim name (a dotted path for nested claims)').default('sub'),
    /** Claim of the external provider's tokens that holds the role: customer, workshop, third_party or authority (a string, or an array with exactly one of them). */
    OIDC_ROLE_CLAIM: z.string().regex(/^[A-Za-z0-9_:.-]{1,128}$/, 'must be a claim name (a dotted path for nested claims)').default('cardata_role'),
    /** The embedded OpenID Provider under /oidc: auto = on when OIDC_ISSUER is unset. */
    OIDC_EMBEDDED: z.enum(['auto', 'on', 'off']).default('auto'),
    /** Redirect URIs of the portal client `cardata-portal`, comma-separated; default PUBLIC_URL + /portal/callback. */
    OIDC_PORTAL_REDIRECT_URIS: z
      .string()
      .refine((v) => v.split(',').every((u) => URL.canParse(u.trim()) && /^https?:$/.test(new URL(u.trim()).protocol)), 'must be comma-separated http(s) URLs')
      .optional(),
    /** Timeout of one fetch of an issuer's discovery document or JWKS, ms. */
    OIDC_FETCH_TIMEOUT_MS: positiveInt.max(60_000).default(3000),
    /** Least time between two JWKS fetches caused by a token naming an unknown key (rotation), s. */
    OIDC_JWKS_COOLDOWN_S: z.coerce.number().int().min(0).max(3600).default(30),
    /**
     * Put before the external provider's subjects (e.g. `ext:`): its people and the embedded
     * provider's accounts can then never be the same owner id. Set it whenever both run.
     */
    OIDC_SUBJECT_PREFIX: z.string().regex(/^[A-Za-z0-9_.:-]{0,32}$/, 'must be up to 32 characters of A-Z a-z 0-9 _ . : -').default(''),
    /** Whether the external provider's access tokens must carry `typ: at+jwt` (RFC 9068): false only for an issuer that does not send it. */
    OIDC_REQUIRE_AT_JWT: z.enum(['true', 'false']).default('true'),
    /** Lifetime of the embedded provider's access tokens, s: short, sessions go on with refresh tokens. */
    OIDC_ACCESS_TOKEN_TTL_S: positiveInt.max(3600).default(900),
    /** A refresh token not used for this long expires (each use gives a new one), s. */
    OIDC_REFRESH_IDLE_S: positiveInt.max(90 * 86_400).default(2 * 86_400),
    /** However it is used, a sign-in session and its refresh tokens end this long after the sign-in, s. */
    OIDC_REFRESH_ABSOLUTE_S: positiveInt.max(365 * 86_400).default(14 * 86_400),
    /** Device flow (RFC 8628) of the embedded provider: how long a device's code waits for the person to confirm it, s. */
    OIDC_DEVICE_CODE_TTL_S: positiveInt.min(10).max(3600).default(600),
    /** Device flow: least time between two polls of one device code (`interval`), s; sooner gets slow_down. */
    OIDC_DEVICE_POLL_INTERVAL_S: positiveInt.max(60).default(5),
    /** Failed sign-ins (embedded provider) per (account, source address; IPv6: /64) in the window; then that pair gets 429. */
    SIGN_IN_FAILURES_PER_ACCOUNT_MAX: positiveInt.max(10_000).default(10),
    /** Failed sign-ins per source address (IPv6: /64), whatever the account, in the window; then that source gets 429. */
    SIGN_IN_FAILURES_PER_SOURCE_MAX: positiveInt.max(1_000_000).default(100),
    /** Window of the sign-in failure counts, ms: a failure stops counting this long after it. */
    SIGN_IN_FAILURE_WINDOW_MS: positiveInt.max(7 * 86_400_000).default(900_000),
    /** Longest wait before a sign-in attempt is checked, after repeated failures, ms; 0: no waits. */
    SIGN_IN_DELAY_MAX_MS: z.coerce.number().int().min(0).max(60_000).default(4000),
    /** Password checks (scrypt) of the sign-in form running at once, each on a low-priority thread of its own (not libuv's pool). */
    SIGN_IN_HASH_CONCURRENCY: positiveInt.max(64).default(1),
    /** Password checks that may wait for a slot; more get 503 at once. */
    SIGN_IN_HASH_QUEUE_MAX: z.coerce.number().int().min(0).max(10_000).default(32),
    /** The owner's telemetry is deleted this long after their ownership (contract) ended, days (7 years). */
    RETENTION_AFTER_CONTRACT_DAYS: positiveInt.max(36_500).default(2557),
    /** Telemetry older than this (by measurement) is deleted whatever the contract, days; 0 = off. */
    RETENTION_DAYS: z.coerce.number().int().min(0).max(36_500).default(0),
    /** Shareable OBFCM readings older than this (by measurement) are deleted, days. */
    OBFCM_RETENTION_DAYS: positiveInt.max(36_500).default(2557),
    /** Quarantined payloads older than this are deleted, days. */
    QUARANTINE_RETENTION_DAYS: positiveInt.max(36_500).default(30),
    /** How often retention runs, ms. */
    RETENTION_INTERVAL_MS: positiveInt.default(3_600_000),
    /** Live streams: a keep-alive comment at least this often, ms. */
    STREAM_KEEPALIVE_MS: positiveInt.max(15_000).default(10_000),
    /** Live streams: bytes a consumer may leave unread before its stream ends with a resume cursor. */
    STREAM_BUFFER_BYTES: positiveInt.min(4096).default(1024 * 1024),
    /** Live streams: open streams per caller on one instance; more get 429. */
    STREAM_MAX_PER_CALLER: positiveInt.default(10),
    /** Live streams across instances: "notify" (PostgreSQL NOTIFY wakes every instance) or "local" (one instance). */
    STREAM_FANOUT: z.enum(['notify', 'local']).default('notify'),
    /** Live streams: safety poll of the stream log while anyone listens, ms. */
    STREAM_POLL_MS: positiveInt.max(60_000).default(1000),
    /** Stream log kept for resumes and ?from=, days. */
    STREAM_LOG_RETENTION_DAYS: positiveInt.max(3650).default(7),
    /** Longest an owner's grant may run, days; also a grant's expiry when the owner gives none. */
    GRANT_MAX_DAYS: positiveInt.max(3650).default(365),
    /** Lifetime of a workshop check-in code, seconds. */
    CHECKIN_CODE_TTL_S: positiveInt.max(7 * 24 * 3600).default(900),
    /** Longest workshop visit (the grant a check-in code gives), hours. */
    WORKSHOP_VISIT_MAX_HOURS: positiveInt.max(24 * 90).default(72),
    /** The authority's OBFCM report without a range covers this many days up to now. */
    OBFCM_REPORT_DEFAULT_DAYS: positiveInt.max(36_500).default(90),
    /** Longest range of one OBFCM report, days; longer: 400 API_ERR_RANGE_TOO_LONG. */
    OBFCM_REPORT_MAX_RANGE_DAYS: positiveInt.max(36_500).default(366),
    /**
     * How often the fleet's vehicles are set to send a record, ms: the basis of the volume
     * estimate in the product data description (GET /v1/data-description, Data Act Art. 3(2)(a)); nothing else uses it.
     */
    VEHICLE_SEND_INTERVAL_MS: positiveInt.max(86_400_000).default(1000),
    /** Webhooks (docs/webhooks.md): allow http:// endpoints too; for development only. */
    WEBHOOK_ALLOW_HTTP: z.enum(['true', 'false']).default('false'),
    /** Webhooks: addresses allowed although loopback/private/link-local/metadata: comma-separated CIDRs, or "all" (tests, development). */
    WEBHOOK_ALLOW_PRIVATE: z
      .string()
      .refine((v) => v.split(',').every((c) => c.trim() === 'all' || /^[0-9a-fA-F.:]+(\/\d{1,3})?$/.test(c.trim())), 'must be comma-separated CIDRs (e.g. 127.0.0.0/8) or "all"')
      .optional(),
    /** Webhooks: deliveries in flight at once on this instance, all endpoints (each holds a database connection of the webhook pool). */
    WEBHOOK_CONCURRENCY: positiveInt.max(256).default(16),
    /** Webhooks: deliveries in flight at once to one endpoint (one while it fails). */
    WEBHOOK_PER_ENDPOINT: positiveInt.max(64).default(4),
    /** Webhooks: an endpoint's lease (one instance delivers to it), ms; a crashed instance's endpoints move on after it. */
    WEBHOOK_LEASE_MS: positiveInt.min(1000).max(600_000).default(30_000),
    /** Webhooks: how often the worker looks for work when nothing woke it, ms. */
    WEBHOOK_POLL_MS: positiveInt.min(10).max(60_000).default(250),
    /** Webhooks: first retry after a failed delivery, ms; later ones ×2, ×6, ×12, … (5 s, 10 s, 30 s: three within a minute). */
    WEBHOOK_RETRY_FIRST_MS: positiveInt.max(3_600_000).default(5000),
    /** Webhooks: longest wait between retries, ms. */
    WEBHOOK_RETRY_MAX_MS: positiveInt.max(86_400_000).default(3_600_000),
    /** Webhooks: an endpoint failing this long is disabled, ms (at least a day). */
    WEBHOOK_DISABLE_AFTER_MS: positiveInt.default(86_400_000),
    /** Webhooks: connect timeout, ms. */
    WEBHOOK_CONNECT_TIMEOUT_MS: positiveInt.max(60_000).default(3000),
    /** Webhooks: the receiver's whole answer within this, ms (a revocation waits for a delivery in flight at most this long). */
    WEBHOOK_RESPONSE_TIMEOUT_MS: positiveInt.max(60_000).default(5000),
    /** Webhooks: bytes of a receiver's answer read at most. */
    WEBHOOK_MAX_RESPONSE_BYTES: positiveInt.max(1 << 20).default(4096),
    /** Webhooks: endpoints per recipient at most. */
    WEBHOOK_MAX_PER_RECIPIENT: positiveInt.max(10_000).default(100),
    /** Webhooks: most endpoints one instance delivers to. */
    WEBHOOK_MAX_LEASED: positiveInt.default(100_000),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

    // Limits on what one credential or one anonymous socket can cost everyone else.
    /** Largest first packet (CONNECT) of a connection, bytes: what a CONNECT needs, not MAX_PACKET_BYTES. */
    MQTT_MAX_CONNECT_BYTES: positiveInt.min(64).max(1 << 20).default(4096),
    /** Simultaneous MQTT connections from one source address (IPv6: one /64); generous for carrier NAT. */
    MQTT_MAX_CONNECTIONS_PER_ADDRESS: positiveInt.default(5000),
    /** Bytes all not-yet-authenticated MQTT connections may hold together. */
    MQTT_PREAUTH_MAX_BYTES: positiveInt.default(16 * 1024 * 1024),
    /** Failed MQTT authentications per (source address, VIN) before that pair is refused unchecked. */
    AUTH_FAILURES_PER_VIN_MAX: positiveInt.default(5),
    /** scrypt checks of vehicle secrets running at once (libuv's pool, shared with zlib and fs, has 4 threads). */
    MQTT_AUTH_CONCURRENCY: positiveInt.max(64).default(2),
    /** PEM certificate revocation list(s) of vehicle client certificates; re-read when the file changes. */
    TLS_CLIENT_CRL_FILE: z.string().min(1).optional(),
    /** How often TLS_CLIENT_CRL_FILE is checked for changes, ms. */
    TLS_CRL_CHECK_INTERVAL_MS: positiveInt.default(10_000),
    /** Connections of the API's read pool (exports, reports, readiness); DB_POOL_MAX is then ingest's alone. */
    DB_API_POOL_MAX: positiveInt.max(1000).default(5),
    /** CarData exports one caller may run at once; past it, 429. */
    EXPORTS_PER_CALLER_MAX: positiveInt.max(100).default(2),
    /** How long /readyz reuses its database probe, ms. */
    READYZ_CACHE_MS: z.coerce.number().int().min(0).max(60_000).default(1000),
    /** Time to receive a whole HTTP request (headers and body), ms. */
    HTTP_REQUEST_TIMEOUT_MS: positiveInt.default(30_000),
    /** Time to receive an HTTP request's headers, ms. */
    HTTP_HEADERS_TIMEOUT_MS: positiveInt.default(10_000),
    /** Serve /metrics on this port only (a separate, internal listener); unset: on HTTP_PORT. */
    METRICS_PORT: port.optional(),
    /** Listen address of METRICS_PORT. */
    METRICS_HOST: z.string().min(1).default('127.0.0.1'),
    /** Name of this process in logs (`instance`), metrics (`instance` label) and /readyz. Unset: "<hostname>-<pid>". */
    INSTANCE_ID: z.string().regex(/^[A-Za-z0-9._:-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 . _ : -').optional(),
    /** MQTT and MQTTS listeners expect a PROXY protocol header (v1 or v2) first: set only behind a load balancer that sends it. */
    MQTT_PROXY_PROTOCOL: z.enum(['true', 'false']).default('false'),
    /** HTTP behind a proxy: fastify's trustProxy (comma-separated addresses/CIDRs of the proxies whose X-Forwarded-For is believed). */
    HTTP_TRUST_PROXY: z.string().regex(/^[0-9A-Fa-f.:/]+(,[0-9A-Fa-f.:/]+)*$/, 'must be comma-separated IP addresses or CIDRs').optional(),
  })
  .strict();

export type Env = z.input<typeof envSchema>;

export interface Config {
  readonly databaseUrl: string | undefined;
  /** SHARD_URLS in order, or null: telemetry in DATABASE_URL (single-database mode). */
  readonly shardUrls: readonly string[] | null;
  /** DATABASE_READ_URL: exports read on a standby caught up to the request's start (null: on DATABASE_URL). */
  readonly read: { readonly url: string; readonly maxWaitMs: number } | null;
  readonly dataDir: string;
  readonly dbPoolMax: number;
  readonly mqtt: {
    readonly host: string;
    readonly port: number;
    readonly tlsPort: number;
    readonly maxPacketBytes: number;
    readonly maxConnections: number;
    readonly connectTimeoutMs: number;
    /** Failed logins: what the broker allows before it refuses (per address, per address and VIN, in a window) and how many secret checks run at once. */
    readonly auth: {
      readonly authFailuresMax: number;
      readonly authFailuresPerVinMax: number;
      readonly authFailureWindowMs: number;
      readonly authConcurrency: number;
    };
    readonly requireClientCert: boolean;
    /** Listeners expect a PROXY protocol header (from the load balancer) before MQTT or TLS. */
    readonly proxyProtocol: boolean;
  };
  readonly tls: { readonly certFile: string; readonly keyFile: string; readonly clientCaFile: string | undefined } | undefined;
  readonly http: { readonly host: string; readonly port: number; readonly trustProxy: readonly string[] };
  readonly adminToken: string | undefined;
  readonly ingest: {
    readonly maxPayloadBytes: number;
    readonly maxRecordsPerMessage: number;
    readonly maxClockSkewMs: number;
    readonly maxRecordAgeMs: number;
  };
  readonly writer: {
    readonly batchMaxRows: number;
    readonly maxPendingRows: number;
    readonly concurrency: number;
    readonly lingerMs: number;
    readonly lingerRows: number;
    readonly retryMaxMs: number;
  };
  readonly shutdownGraceMs: number;
  readonly secretScryptCost: number;
  readonly jwtKeys: string | undefined;
  /** KEY_ENCRYPTION_KEY as given (base64 of 32 bytes), or undefined (see app/key-encryption.ts). */
  readonly keyEncryptionKey: string | undefined;
  readonly tokenTtlS: number;
  readonly publicUrl: string | undefined;
  readonly oidc: {
    readonly issuer: string | undefined;
    readonly audience: string;
    readonly subjectClaim: string;
    readonly roleClaim: string;
    readonly embedded: boolean;
    readonly portalRedirectUris: readonly string[] | undefined;
    readonly fetchTimeoutMs: number;
    readonly jwksCooldownMs: number;
    readonly requireAccessTokenType: boolean;
    readonly subjectPrefix: string;
    readonly accessTokenTtlS: number;
    readonly refreshIdleS: number;
    readonly refreshAbsoluteS: number;
    readonly deviceCodeTtlS: number;
    readonly devicePollIntervalS: number;
  };
  readonly retention: {
    readonly afterContractDays: number;
    readonly telemetryDays: number;
    readonly obfcmDays: number;
    readonly quarantineDays: number;
    readonly intervalMs: number;
  };
  readonly stream: {
    readonly keepAliveMs: number;
    readonly bufferBytes: number;
    readonly maxPerCaller: number;
    readonly fanout: 'notify' | 'local';
    readonly pollMs: number;
    readonly logRetentionDays: number;
  };
  readonly grants: { readonly maxDays: number; readonly checkinCodeTtlS: number; readonly visitMaxHours: number };
  /** Recipients' webhooks (docs/webhooks.md). */
  readonly webhooks: {
    readonly allowHttp: boolean;
    readonly allowPrivate: readonly string[];
    readonly concurrency: number;
    readonly perEndpoint: number;
    readonly leaseMs: number;
    readonly pollMs: number;
    readonly retryFirstMs: number;
    readonly retryMaxMs: number;
    readonly disableAfterMs: number;
    readonly connectTimeoutMs: number;
    readonly responseTimeoutMs: number;
    readonly maxResponseBytes: number;
    readonly maxPerRecipient: number;
    readonly maxLeased: number;
  };
  readonly obfcmReport: { readonly defaultWindowDays: number; readonly maxRangeDays: number };
  /** The fleet's configured send interval, ms (VEHICLE_SEND_INTERVAL_MS): the data description's volume estimate. */
  readonly vehicleSendIntervalMs: number;
  readonly logLevel: string;
  readonly admission: {
    readonly maxConnectBytes: number;
    readonly maxConnectionsPerAddress: number;
    readonly preauthMaxBytes: number;
  };
  readonly crl: { readonly file: string; readonly checkIntervalMs: number } | undefined;
  readonly dbApiPoolMax: number;
  readonly api: {
    readonly exportsPerCaller: number;
    readonly readyzCacheMs: number;
    readonly requestTimeoutMs: number;
    readonly headersTimeoutMs: number;
  };
  readonly metricsListener: { readonly host: string; readonly port: number } | undefined;
  /** Set: this process's name; undefined: app/gateway.ts names it "<hostname>-<pid>". */
  readonly instanceId: string | undefined;
  /** The embedded provider's sign-in form: failure counts, waits, and its password checks' queue. */
  readonly signIn: {
    readonly failuresPerAccountMax: number;
    readonly failuresPerSourceMax: number;
    readonly failureWindowMs: number;
    readonly delayMaxMs: number;
    readonly hashConcurrency: number;
    readonly hashQueueMax: number;
  };
}

/**
 * What an MQTT PUBLISH adds around its payload: fixed header (≤ 5 bytes, MQTT-2.2.3),
 * topic v1/vehicles/{VIN}/telemetry with its length (34), packet id (2), rounded up.
 */
export const MQTT_HEADER_ROOM_BYTES = 1024;

export class ConfigError extends Error {
  readonly code = 'CFG_ERR_INVALID';
}

/** Keys of the environment this schema reads; everything else in process.env is ignored. */
export const CONFIG_KEYS = Object.keys(envSchema.shape) as (keyof typeof envSchema.shape)[];

/**
 * Parses settings from an environment-like object. Throws a ConfigError naming every
 * bad key, its value's problem and the fix.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const picked: Record<string, string> = {};
  for (const key of CONFIG_KEYS) {
    const v = env[key];
    if (v !== undefined && v !== '') picked[key] = v;
  }
  const parsed = envSchema.safeParse(picked);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const key = String(i.path[0] ?? '?');
      const shown = /TOKEN|KEYS|KEY_ENCRYPTION_KEY|PASSWORD|DATABASE_URL|DATABASE_READ_URL|SHARD_URLS/.test(key) ? '(hidden)' : JSON.stringify(picked[key] ?? '');
      return `  ${key}=${shown}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration (set these environment variables correctly):\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const tlsProblems: string[] = [];
  if (!!e.TLS_CERT_FILE !== !!e.TLS_KEY_FILE) tlsProblems.push('  TLS_CERT_FILE and TLS_KEY_FILE: set both or neither');
  if (e.TLS_CLIENT_CA_FILE && !e.TLS_CERT_FILE) tlsProblems.push('  TLS_CLIENT_CA_FILE: needs TLS_CERT_FILE and TLS_KEY_FILE (mutual TLS runs on MQTTS_PORT)');
  if (e.MQTT_REQUIRE_CLIENT_CERT === 'true' && !e.TLS_CLIENT_CA_FILE) tlsProblems.push('  MQTT_REQUIRE_CLIENT_CERT=true: needs TLS_CLIENT_CA_FILE');
  if (e.TLS_CLIENT_CRL_FILE && !e.TLS_CLIENT_CA_FILE) tlsProblems.push('  TLS_CLIENT_CRL_FILE: needs TLS_CLIENT_CA_FILE (it revokes client certificates)');
  if (e.DATABASE_READ_URL && !e.DATABASE_URL) tlsProblems.push('  DATABASE_READ_URL: needs DATABASE_URL (it is a standby of that database)');
  if (e.DATABASE_READ_URL && e.SHARD_URLS) tlsProblems.push('  DATABASE_READ_URL: not with SHARD_URLS (the telemetry is in the shards; each shard is a cluster of its own, read on its primary)');
  if (e.SHARD_URLS && !e.DATABASE_URL) tlsProblems.push('  SHARD_URLS: needs DATABASE_URL (the control database); the embedded database cannot be sharded');
  // NODE_ENV is not a setting of ours (the container image sets it): it only makes the key-encryption key required.
  if (env.NODE_ENV === 'production' && !e.KEY_ENCRYPTION_KEY && (e.OIDC_EMBEDDED === 'on' || (e.OIDC_EMBEDDED === 'auto' && !e.OIDC_ISSUER))) {
    tlsProblems.push(
      '  KEY_ENCRYPTION_KEY: required with NODE_ENV=production (it encrypts the embedded OpenID Provider\'s signing and cookie keys in the database); make one with: openssl rand -base64 32 and give every instance the same',
    );
  }
  if (tlsProblems.length) throw new ConfigError(`invalid configuration (set these environment variables correctly):\n${tlsProblems.join('\n')}`);

  return deepFreeze({
    databaseUrl: e.DATABASE_URL,
    shardUrls: e.SHARD_URLS ? e.SHARD_URLS.split(',').map((u) => u.trim()) : null,
    read: e.DATABASE_READ_URL ? { url: e.DATABASE_READ_URL, maxWaitMs: e.DATABASE_READ_MAX_WAIT_MS } : null,
    dataDir: e.DATA_DIR,
    dbPoolMax: e.DB_POOL_MAX,
    mqtt: {
      host: e.MQTT_HOST,
      port: e.MQTT_PORT,
      tlsPort: e.MQTTS_PORT,
      maxPacketBytes: e.MAX_PACKET_BYTES ?? e.MAX_PAYLOAD_BYTES + MQTT_HEADER_ROOM_BYTES,
      maxConnections: e.MAX_CONNECTIONS,
      connectTimeoutMs: e.MQTT_CONNECT_TIMEOUT_MS,
      auth: {
        authFailuresMax: e.AUTH_FAILURES_MAX,
        authFailuresPerVinMax: e.AUTH_FAILURES_PER_VIN_MAX,
        authFailureWindowMs: e.AUTH_FAILURE_WINDOW_MS,
        authConcurrency: e.MQTT_AUTH_CONCURRENCY,
      },
      requireClientCert: e.MQTT_REQUIRE_CLIENT_CERT === 'true',
      proxyProtocol: e.MQTT_PROXY_PROTOCOL === 'true',
    },
    tls: e.TLS_CERT_FILE && e.TLS_KEY_FILE ? { certFile: e.TLS_CERT_FILE, keyFile: e.TLS_KEY_FILE, clientCaFile: e.TLS_CLIENT_CA_FILE } : undefined,
    http: { host: e.HTTP_HOST, port: e.HTTP_PORT, trustProxy: e.HTTP_TRUST_PROXY ? e.HTTP_TRUST_PROXY.split(',') : [] },
    adminToken: e.ADMIN_TOKEN,
    ingest: { maxPayloadBytes: e.MAX_PAYLOAD_BYTES, maxRecordsPerMessage: e.MAX_RECORDS_PER_MESSAGE, maxClockSkewMs: e.MAX_CLOCK_SKEW_MS, maxRecordAgeMs: e.MAX_RECORD_AGE_MS },
    writer: {
      batchMaxRows: e.BATCH_MAX_ROWS,
      maxPendingRows: e.WRITER_MAX_PENDING_ROWS,
      concurrency: e.WRITER_CONCURRENCY,
      lingerMs: e.WRITER_LINGER_MS,
      lingerRows: e.WRITER_LINGER_ROWS,
      retryMaxMs: e.WRITER_RETRY_MAX_MS,
    },
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    secretScryptCost: e.SECRET_SCRYPT_COST,
    jwtKeys: e.JWT_KEYS,
    keyEncryptionKey: e.KEY_ENCRYPTION_KEY?.trim(),
    tokenTtlS: e.TOKEN_TTL_S,
    publicUrl: e.PUBLIC_URL?.replace(/\/+$/, ''),
    oidc: {
      issuer: e.OIDC_ISSUER,
      audience: e.OIDC_AUDIENCE,
      subjectClaim: e.OIDC_SUBJECT_CLAIM,
      roleClaim: e.OIDC_ROLE_CLAIM,
      embedded: e.OIDC_EMBEDDED === 'on' || (e.OIDC_EMBEDDED === 'auto' && !e.OIDC_ISSUER),
      portalRedirectUris: e.OIDC_PORTAL_REDIRECT_URIS?.split(',').map((u) => u.trim()),
      fetchTimeoutMs: e.OIDC_FETCH_TIMEOUT_MS,
      jwksCooldownMs: e.OIDC_JWKS_COOLDOWN_S * 1000,
      requireAccessTokenType: e.OIDC_REQUIRE_AT_JWT === 'true',
      subjectPrefix: e.OIDC_SUBJECT_PREFIX,
      accessTokenTtlS: e.OIDC_ACCESS_TOKEN_TTL_S,
      refreshIdleS: e.OIDC_REFRESH_IDLE_S,
      refreshAbsoluteS: Math.max(e.OIDC_REFRESH_ABSOLUTE_S, e.OIDC_REFRESH_IDLE_S),
      deviceCodeTtlS: e.OIDC_DEVICE_CODE_TTL_S,
      devicePollIntervalS: e.OIDC_DEVICE_POLL_INTERVAL_S,
    },
    retention: {
      afterContractDays: e.RETENTION_AFTER_CONTRACT_DAYS,
      telemetryDays: e.RETENTION_DAYS,
      obfcmDays: e.OBFCM_RETENTION_DAYS,
      quarantineDays: e.QUARANTINE_RETENTION_DAYS,
      intervalMs: e.RETENTION_INTERVAL_MS,
    },
    stream: {
      keepAliveMs: e.STREAM_KEEPALIVE_MS,
      bufferBytes: e.STREAM_BUFFER_BYTES,
      maxPerCaller: e.STREAM_MAX_PER_CALLER,
      fanout: e.STREAM_FANOUT,
      pollMs: e.STREAM_POLL_MS,
      logRetentionDays: e.STREAM_LOG_RETENTION_DAYS,
    },
    grants: { maxDays: e.GRANT_MAX_DAYS, checkinCodeTtlS: e.CHECKIN_CODE_TTL_S, visitMaxHours: e.WORKSHOP_VISIT_MAX_HOURS },
    webhooks: {
      allowHttp: e.WEBHOOK_ALLOW_HTTP === 'true',
      allowPrivate: e.WEBHOOK_ALLOW_PRIVATE ? e.WEBHOOK_ALLOW_PRIVATE.split(',').map((c) => c.trim()) : [],
      concurrency: e.WEBHOOK_CONCURRENCY,
      perEndpoint: e.WEBHOOK_PER_ENDPOINT,
      leaseMs: e.WEBHOOK_LEASE_MS,
      pollMs: e.WEBHOOK_POLL_MS,
      retryFirstMs: e.WEBHOOK_RETRY_FIRST_MS,
      retryMaxMs: e.WEBHOOK_RETRY_MAX_MS,
      disableAfterMs: e.WEBHOOK_DISABLE_AFTER_MS,
      connectTimeoutMs: e.WEBHOOK_CONNECT_TIMEOUT_MS,
      responseTimeoutMs: e.WEBHOOK_RESPONSE_TIMEOUT_MS,
      maxResponseBytes: e.WEBHOOK_MAX_RESPONSE_BYTES,
      maxPerRecipient: e.WEBHOOK_MAX_PER_RECIPIENT,
      maxLeased: e.WEBHOOK_MAX_LEASED,
    },
    obfcmReport: { defaultWindowDays: e.OBFCM_REPORT_DEFAULT_DAYS, maxRangeDays: e.OBFCM_REPORT_MAX_RANGE_DAYS },
    vehicleSendIntervalMs: e.VEHICLE_SEND_INTERVAL_MS,
    logLevel: e.LOG_LEVEL,
    admission: {
      maxConnectBytes: e.MQTT_MAX_CONNECT_BYTES,
      maxConnectionsPerAddress: e.MQTT_MAX_CONNECTIONS_PER_ADDRESS,
      preauthMaxBytes: e.MQTT_PREAUTH_MAX_BYTES,
    },
    crl: e.TLS_CLIENT_CRL_FILE ? { file: e.TLS_CLIENT_CRL_FILE, checkIntervalMs: e.TLS_CRL_CHECK_INTERVAL_MS } : undefined,
    dbApiPoolMax: e.DB_API_POOL_MAX,
    api: {
      exportsPerCaller: e.EXPORTS_PER_CALLER_MAX,
      readyzCacheMs: e.READYZ_CACHE_MS,
      requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
      headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
    },
    metricsListener: e.METRICS_PORT !== undefined ? { host: e.METRICS_HOST, port: e.METRICS_PORT } : undefined,
    instanceId: e.INSTANCE_ID,
    signIn: {
      failuresPerAccountMax: e.SIGN_IN_FAILURES_PER_ACCOUNT_MAX,
      failuresPerSourceMax: e.SIGN_IN_FAILURES_PER_SOURCE_MAX,
      failureWindowMs: e.SIGN_IN_FAILURE_WINDOW_MS,
      delayMaxMs: e.SIGN_IN_DELAY_MAX_MS,
      hashConcurrency: e.SIGN_IN_HASH_CONCURRENCY,
      hashQueueMax: e.SIGN_IN_HASH_QUEUE_MAX,
    },
  });
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
