// buildApp(): the HTTP API as a fastify instance that never listens by itself.
// Each route group is a plugin; request and response bodies are zod schemas, so a
// field a schema does not list cannot leak into a response.
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { ApiError, problem, type ApiErrorCode } from './errors.ts';
import { healthRoutes, type Readiness } from './routes/health.ts';
import { adminRoutes, type AdminDeps } from './routes/admin.ts';
import { vehicleRoutes, type VehicleRouteDeps } from './routes/vehicles.ts';
import { cardataRoutes, type CardataDeps } from './routes/cardata.ts';
import { portalRoutes, type PortalRouteDeps } from './routes/portal.ts';
import { connectivityRoutes, type ConnectivityRouteDeps } from './routes/connectivity.ts';
import { webRoutes, type WebOptions } from './routes/web.ts';
import { streamRoutes, type StreamDeps } from './routes/stream.ts';
import { oidcRoutes, type OidcRouteDeps } from './routes/oidc.ts';
import { grantRoutes, type GrantRouteDeps } from './routes/grants.ts';
import { dataDescriptionRoutes, type DataDescriptionDeps } from './routes/data-description.ts';
import { webhookRoutes, type WebhookRouteDeps } from './routes/webhooks.ts';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import rateLimit from '@fastify/rate-limit';
import compress from '@fastify/compress';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import { bearer, callerKey, verifyRequest } from './auth.ts';
import { tokensEqual } from '../identity/secrets.ts';
import type { StoreFailures } from './ports.ts';
import { redactUrl, scrubJwts } from './log-redaction.ts';

export interface AppDeps {
  readiness: Readiness;
  /** How the stores' failures are told apart (app/ hands in the storage's guards). */
  failures: StoreFailures;
  admin: Omit<AdminDeps, 'failures'>;
  vehicles: Omit<VehicleRouteDeps, 'failures'>;
  cardata: Omit<CardataDeps, 'failures'>;
  /** Live CarData streams (Server-Sent Events); absent: no stream routes. */
  stream?: StreamDeps;
  grants: Omit<GrantRouteDeps, 'failures'>;
  /** Recipients' webhooks (README "For recipients"); absent: no webhook routes. */
  webhooks?: WebhookRouteDeps;
  /** The portal's read routes (vehicles, latest, series); absent: not served. */
  portal?: PortalRouteDeps;
  /** GET /v1/vehicles/{vin}/status (connectivity); absent: not served. */
  connectivity?: Omit<ConnectivityRouteDeps, 'failures'>;
  /** Serve the portal at GET / (web/); absent: not served. */
  web?: WebOptions;
  /** Prometheus exposition, served at GET /metrics. */
  metrics?: { text(): Promise<string>; contentType: string };
  /** The embedded OpenID Provider under /oidc, when it runs. */
  oidc?: OidcRouteDeps;
  /** The product data description (GET /v1/data-description, Data Act Art. 3(2)); absent: not served. */
  description?: DataDescriptionDeps;
}

export interface AppOptions {
  /** A pino logger to use (the gateway's own); none: no logging. */
  loggerInstance?: FastifyBaseLogger;
  /** Largest request body, bytes. Default 65536. */
  bodyLimitBytes?: number;
  /** Requests per minute per bearer token (or per IP without one). Default 600. */
  rateLimitPerMinute?: number;
  /** Serve HTTPS with this certificate and key (PEM). */
  https?: { cert: Buffer; key: Buffer };
  /** Proxies (addresses/CIDRs) whose X-Forwarded-For is believed for req.ip (HTTP_TRUST_PROXY). */
  trustProxy?: string[];
  /** Time to receive a whole request, headers and body, ms. Default 30000. */
  requestTimeoutMs?: number;
  /** Time to receive a request's headers, ms (at most requestTimeoutMs). Default 10000. */
  headersTimeoutMs?: number;
}

/** What the log says of a request (fastify's fields, the URL with its secrets replaced). */
function requestForLog(req: FastifyRequest) {
  return { method: req.method, url: redactUrl(req.url), host: req.host, remoteAddress: req.ip, remotePort: req.socket?.remotePort };
}

/**
 * The policy of an HTML answer that brings none of its own: nothing loaded, nothing run,
 * never in a frame. Pages that need more set theirs (the portal, /docs, the sign-in pages).
 */
export const DEFAULT_HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export async function buildApp(deps: AppDeps, opts: AppOptions = {}): Promise<FastifyInstance> {
  const requestTimeout = opts.requestTimeoutMs ?? 30_000;
  const headersTimeout = Math.min(opts.headersTimeoutMs ?? 10_000, requestTimeout);
  // node checks both timeouts on this period (default 30 s, longer than the timeouts themselves).
  const connectionsCheckingInterval = Math.max(100, Math.min(1000, Math.floor(headersTimeout / 2)));
  const app = Fastify({
    // A request is logged by its path and query with secret values replaced (an ID token
    // as id_token_hint, an authorization code …): never the URL as sent.
    ...(opts.loggerInstance ? { loggerInstance: opts.loggerInstance.child({}, { serializers: { req: requestForLog } }) } : { logger: false }),
    ...(opts.https
      ? { https: { cert: opts.https.cert, key: opts.https.key, minVersion: 'TLSv1.2' as const, connectionsCheckingInterval } }
      : { http: { connectionsCheckingInterval } }),
    bodyLimit: opts.bodyLimitBytes ?? 65_536,
    ...(opts.trustProxy?.length ? { trustProxy: opts.trustProxy } : {}),
    // A slow client (slow-loris headers, a trickled body) is answered 408 and closed.
    requestTimeout,
    // Request ids are ours, always: a client's x-request-id is logged as the client's
    // (client_request_id), never as the id of our log lines.
    requestIdHeader: false,
    genReqId: () => crypto.randomUUID(),
    // Errors fastify raises before routing (an undecodable URL, an over-long parameter)
    // get the same problem+json answer as everything else, without echoing the URL.
    frameworkErrors: (err, _req, reply) => {
      const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 400;
      const detail = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'a path parameter is too long' : 'the request URL is malformed';
      void (reply as FastifyReply).status(status).type('application/problem+json').send(problem(status, 'API_ERR_VALIDATION', detail));
    },
    // Requests node's HTTP parser refuses never reach fastify: answer them in kind.
    clientErrorHandler: (err: NodeJS.ErrnoException & { code?: string }, socket) => {
      if (!socket.writable) return socket.destroy();
      // ERR_HTTP_REQUEST_TIMEOUT: headers or body not received within the timeouts (slow client).
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      const text = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
      const detail = status === 431 ? 'request headers too large' : status === 408 ? 'request not received in time' : 'malformed HTTP request';
      const body = JSON.stringify(problem(status, status === 408 ? 'API_ERR_REQUEST_TIMEOUT' : 'API_ERR_VALIDATION', detail));
      socket.end(
        `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    },
  }).withTypeProvider<ZodTypeProvider>();

  app.server.headersTimeout = headersTimeout;
  // Every log line of a request (from 'incoming request' on) carries the client's id beside ours.
  app.setChildLoggerFactory((logger, bindings, childOpts, rawReq) => {
    const theirs = rawReq.headers['x-request-id'];
    const id = typeof theirs === 'string' && theirs.length > 0 ? { client_request_id: scrubJwts(theirs).slice(0, 128) } : {};
    return logger.child({ ...bindings, ...id }, childOpts);
  });
  app.addHook('onRequest', async (req, reply) => {
    void reply.header('x-request-id', req.id);
  });
  // Every HTML answer carries a policy and may not be framed: the route's own when it set
  // one, else the default (hooks of plugins registered below run after this one and may
  // replace it, as /docs does). The provider's pages under /oidc bypass fastify: their
  // headers are set in api/routes/oidc.ts.
  app.addHook('onSend', async (_req, reply, payload) => {
    if (!/^text\/html/i.test(String(reply.getHeader('content-type') ?? ''))) return payload;
    if (!reply.hasHeader('content-security-policy')) void reply.header('content-security-policy', DEFAULT_HTML_CSP);
    if (!reply.hasHeader('x-frame-options')) void reply.header('x-frame-options', 'DENY');
    return payload;
  });

  app.decorateRequest('principal', null);
  app.decorateRequest('tokenCheck', null);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  app.setErrorHandler((err: FastifyError & { code?: string }, req, reply) => {
    let status = 500;
    let code: ApiErrorCode = 'API_ERR_INTERNAL';
    let detail = 'internal error';
    if (err instanceof ApiError) {
      status = err.statusCode;
      code = err.code;
      detail = err.message;
    } else if (err.validation) {
      status = 400;
      const first = err.validation[0] as { instancePath?: string; message?: string; params?: { issue?: { path?: unknown[] } } } | undefined;
      const path = first?.instancePath ?? '';
      code = /(^|\/)vin$/.test(path)
        ? 'API_ERR_INVALID_VIN'
        : err.validationContext === 'querystring' && /(^|\/)names$/.test(path)
          ? 'API_ERR_UNKNOWN_NAMES'
          : err.validationContext === 'params' && /(^|\/)id$/.test(path) ? 'API_ERR_INVALID_ID' : 'API_ERR_VALIDATION';
      detail = `${err.validationContext ?? 'request'}${path.replace(/\//g, '.')}: ${first?.message ?? err.message}`;
    } else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      status = 413;
      code = 'API_ERR_BODY_TOO_LARGE';
      detail = err.message;
    } else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      status = 415;
      code = 'API_ERR_UNSUPPORTED_MEDIA_TYPE';
      detail = err.message;
    } else if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      // fastify's own 4xx (malformed JSON, empty body …)
      status = err.statusCode;
      code = 'API_ERR_VALIDATION';
      detail = err.message;
    } else if (deps.failures.isUnavailable(err)) {
      status = 503;
      code = 'API_ERR_UNAVAILABLE';
      detail = 'the database is not answering; retry later';
    }
    if (status >= 500) req.log.error({ event: 'http_error', err }, 'request failed');
    void reply.status(status).type('application/problem+json').send(problem(status, code, detail, req.url));
  });

  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).type('application/problem+json').send(problem(404, 'API_ERR_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
  });

  // OpenAPI from the zod schemas; interactive docs at /docs.
  await app.register(swagger, {
    openapi: {
      info: { title: 'cardata-gateway', version: '1', description: 'CarData export, consent and rights of the data subject, workshop and authority access.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  // Swagger UI's scripts and styles are files under /docs/static; its one inline style is
  // the <style> of its own logo (an SVG it renders, then replaced by ours), allowed by hash.
  // Its requests go to this origin only.
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: [
      "default-src 'self'",
      "script-src 'self'",
      "script-src-attr 'none'",
      "style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='",
      "img-src 'self' data:",
      "font-src 'self' data:",
      "connect-src 'self'",
      "object-src 'none'",
      "form-action 'self'",
      "frame-ancestors 'none'",
      "base-uri 'none'",
    ].join('; '),
  });
  // gzip/deflate/br when the client asks, streams included.
  await app.register(compress, { global: true, threshold: 1024, customTypes: /^text\/|json$|ndjson$|csv/ });
  await app.register(rateLimit, {
    max: opts.rateLimitPerMinute ?? 600,
    timeWindow: 60_000,
    // Per caller: a valid API token counts for its subject, the admin token for the admin;
    // anything else (no token, a bad one, however spelt) counts for the client address.
    keyGenerator: async (req) => {
      const t = bearer(req);
      if (t !== null) {
        if (tokensEqual(t, deps.admin.adminToken)) return 'admin';
        const v = await verifyRequest(req, deps.vehicles.tokens);
        if (v?.ok) return `tok:${callerKey(v.principal)}`;
      }
      return 'ip:' + req.ip;
    },
    // The operator (admin token) provisions fleets in bulk: not limited.
    allowList: (req, key) => key === 'admin' || req.url === '/healthz' || req.url === '/readyz' || req.url === '/metrics',
    errorResponseBuilder: (_req, ctx) => new ApiError(429, 'API_ERR_RATE_LIMITED', `rate limit of ${ctx.max} requests per minute exceeded; retry in ${Math.ceil(ctx.ttl / 1000)} s`),
  });
  await app.register(healthRoutes, { readiness: deps.readiness });
  await app.register(adminRoutes, { ...deps.admin, failures: deps.failures });
  await app.register(vehicleRoutes, { ...deps.vehicles, failures: deps.failures });
  await app.register(cardataRoutes, { ...deps.cardata, failures: deps.failures });
  await app.register(grantRoutes, { ...deps.grants, failures: deps.failures });
  if (deps.description) await app.register(dataDescriptionRoutes, deps.description);
  if (deps.stream) await app.register(streamRoutes, deps.stream);
  if (deps.webhooks) await app.register(webhookRoutes, deps.webhooks);
  if (deps.oidc) await app.register(oidcRoutes, deps.oidc);
  if (deps.portal) await app.register(portalRoutes, deps.portal);
  if (deps.connectivity) await app.register(connectivityRoutes, { ...deps.connectivity, failures: deps.failures });
  if (deps.web) await app.register(webRoutes, deps.web);
  const m = deps.metrics;
  if (m) {
    app.get('/metrics', { logLevel: 'warn', schema: { hide: true } }, async (_req, reply) => reply.type(m.contentType).send(await m.text()));
  }
  return app;
}
