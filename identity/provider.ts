// The embedded OpenID Provider: used when no external one is configured, so the zero-setup
// start, the demo and the tests have a real sign-in. Built on `oidc-provider` (an OpenID
// certified implementation); this file only configures it: storage through the port below,
// one signing key made once and kept, people's accounts, and access tokens that are JWTs
// (RFC 9068) for the API's audience, so the API verifies them like any issuer's.
import type http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import Provider, { errors, type Adapter, type AdapterPayload, type Configuration, type KoaContextWithOIDC, type InteractionResults } from 'oidc-provider';
import type { JWK } from 'jose';
import { ID_TOKEN_TTL_S, SIGNING_KEYS, asRing, kidsOf, liveKeys, newSigningJwk, retirementWindowS, rotateSigningKeys, type SigningKeyRing, type SigningKeyStore } from './signing-keys.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { verifySecret, type PasswordVerifier } from './secrets.ts';
import { SignInThrottled, type SignInThrottle } from './sign-in-throttle.ts';
import { escapeHtml, signInLang, signInPageHtml, signInText, type SignInLang } from './sign-in-pages.ts';
import { isRole, type Role } from './tokens.ts';
import type { Account, OidcArtefactStore } from '../proto/sign-in.ts';
import type { ServiceClientStore } from '../proto/service-clients.ts';
import { RECIPIENT_METADATA, RECIPIENT_ROLE_METADATA, serviceClientMetadata, serviceClientSid } from './service-clients.ts';
import { successSource, userCodeConfirmSource, userCodeInputSource } from './device-pages.ts';

/** Storage of the provider's artefacts (sessions, interactions, codes, grants, refresh tokens) and key material. */
export type IdpStore = OidcArtefactStore;

/** People's accounts, as the provider looks them up. */
export interface IdpAccounts {
  byUsername(username: string): Promise<Pick<Account, 'subject' | 'role' | 'passwordHash'> | null>;
  bySubject(subject: string): Promise<Pick<Account, 'subject' | 'role'> | null>;
}

export interface EmbeddedIdpOptions {
  /** Issuer identifier: the gateway's public URL + the mount path. */
  issuer: string;
  /** Audience (and resource indicator, RFC 8707) of the access tokens: the API's. */
  audience: string;
  /** Where the portal (public client `cardata-portal`) may be sent back with a code. */
  portalRedirectUris: readonly string[];
  /** Lifetime of access tokens, seconds (minutes: sessions go on with refresh tokens). */
  accessTokenTtlS: number;
  /** A refresh token unused this long expires; each use rotates it (a new one, the old one spent), seconds. */
  refreshIdleS: number;
  /** A sign-in session, and every refresh token of it, ends this long after the sign-in, seconds. */
  refreshAbsoluteS: number;
  /** Device flow (RFC 8628): how long a device code waits for the person, seconds. Default 600. */
  deviceCodeTtlS?: number;
  /** Device flow: the least time between two polls of one device code, seconds (`interval`, RFC 8628 §3.2). Default 5. */
  devicePollIntervalS?: number;
}

/** The role claim of the embedded provider's access tokens (its subject claim is `sub`). */
export const EMBEDDED_ROLE_CLAIM = 'cardata_role';
/** The scope a client asks for to get an access token for the API. */
export const API_SCOPE = 'cardata';
export const PORTAL_CLIENT_ID = 'cardata-portal';
/** The public client of the command line and other tools without a browser (device flow, RFC 8628). */
export const CLI_CLIENT_ID = 'cardata-cli';
const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
/** Where the last poll of a device code is kept (by the code's hash), beside the provider's own artefacts. */
const DEVICE_POLL_MODEL = 'DevicePoll';

export interface InteractionView {
  uid: string;
  /** The prompt oidc-provider asks for: `login` or `consent`. */
  prompt: string;
  clientId: string;
  /** The client's `ui_locales` from the authorization request, when it sent one. */
  uiLocales: string | null;
}

export interface EmbeddedIdp {
  readonly issuer: string;
  /** The Node handler for every request under the mount path; `req.url` must still include it. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
  /** The pending interaction this browser (its cookie) is in; null when none or another uid. */
  interaction(req: http.IncomingMessage, res: http.ServerResponse, uid: string): Promise<InteractionView | null>;
  /**
   * Checks a username and password from `source` (the client's address); on success, the URL
   * to send the browser on to. Throws SignInThrottled (too many failures: 429) or
   * PasswordChecksBusy (the password checks' queue is full: 503) without checking.
   */
  login(req: http.IncomingMessage, res: http.ServerResponse, username: string, password: string, source: string | undefined): Promise<string | null>;
  /** Grants what the pending interaction asks for; the URL to send the browser on to. */
  consent(req: http.IncomingMessage, res: http.ServerResponse): Promise<string>;
  /** Ends the pending interaction with access_denied; the URL to send the browser on to. */
  abort(req: http.IncomingMessage, res: http.ServerResponse): Promise<string>;
  /** Kids of the keys in the JWKS: the one that signs first, then the replaced ones still verifying. */
  keyIds(): string[];
  /**
   * Makes a new signing key: published in the JWKS and signing here from now on; the
   * replaced one keeps verifying until the tokens it signed have expired. Other instances
   * pick it up by NOTIFY (syncKeys). Returns the kids as keyIds() does.
   */
  rotateSigningKey(): Promise<string[]>;
  /**
   * Reads the keys from the store again and drops replaced keys past their window; when
   * the keys in the JWKS change, the provider is rebuilt with them (onKeysChanged). True then.
   */
  syncKeys(): Promise<boolean>;
}

/** The language of one of the provider's own pages: the client's ui_locales, else the browser's. */
function pageLang(ctx: KoaContextWithOIDC): SignInLang {
  const params = (ctx.oidc as { params?: Record<string, unknown> } | undefined)?.params;
  return signInLang({ uiLocales: params?.ui_locales, acceptLanguage: ctx.get('accept-language') || undefined });
}

/** How long an expired device code is kept to be told apart from an unknown one, s. */
const EXPIRED_DEVICE_CODE_KEPT_S = 3600;

/** Adapter over the store, one instance per model name (oidc-provider's contract); clients other than the built-in ones are the service clients. */
function adapterFor(store: IdpStore, clients: Pick<ServiceClientStore, 'find'> | undefined) {
  return class DbAdapter implements Adapter {
    constructor(private readonly model: string) {}
    async upsert(id: string, payload: AdapterPayload, expiresIn?: number) {
      // An expired device code is kept a while: the library then answers expired_token (RFC
      // 8628 §3.5) and its page says "expired", where a row already gone would be unknown.
      const keep = this.model === 'DeviceCode' && expiresIn !== undefined ? expiresIn + EXPIRED_DEVICE_CODE_KEPT_S : expiresIn;
      await store.upsert(this.model, id, payload, keep);
    }
    async find(id: string) {
      if (this.model === 'Client') {
        const c = clients ? await clients.find(id) : null;
        return c ? (serviceClientMetadata(c) as AdapterPayload) : undefined;
      }
      return (await store.find(this.model, id)) as AdapterPayload | undefined;
    }
    async findByUserCode(userCode: string) {
      return (await store.findByUserCode(this.model, userCode)) as AdapterPayload | undefined;
    }
    async findByUid(uid: string) {
      return (await store.findByUid(this.model, uid)) as AdapterPayload | undefined;
    }
    async consume(id: string) {
      await store.consume(this.model, id);
    }
    async destroy(id: string) {
      await store.destroy(this.model, id);
    }
    async revokeByGrantId(grantId: string) {
      await store.revokeByGrantId(grantId);
    }
  };
}

export async function createEmbeddedIdp(
  opts: EmbeddedIdpOptions,
  deps: {
    /** The artefacts and the key material (the signing keys' ring under SIGNING_KEYS). */
    store: IdpStore & SigningKeyStore;
    /** The keys in the JWKS changed (a rotation here or elsewhere, a replaced key dropped): verifiers should fetch it again. */
    onKeysChanged?: (kids: string[]) => void;
    accounts: IdpAccounts;
    onServerError?: (err: Error) => void;
    /**
     * A person signed out: the session `sid` (the `sid` claim of its access tokens) ended.
     * Its refresh tokens die with it here; the access tokens already out are for the caller
     * to refuse until `expiresAt` (ms), when the last of them has expired anyway.
     */
    onSignedOut?: (s: { sid: string; accountId: string | null; expiresAt: number }) => void;
    /** The sign-in form's password checks, in their own bounded queue (identity/secrets.ts). */
    passwords: PasswordVerifier;
    /** Failed sign-ins per (account, source) and per source (identity/sign-in-throttle.ts). */
    throttle: SignInThrottle;
    /** Recipients' service clients (client credentials), looked up on each request: a deleted one is gone at once. */
    serviceClients?: Pick<ServiceClientStore, 'find'>;
  },
): Promise<EmbeddedIdp> {
  const { store, accounts } = deps;
  // Made once by the first process ever to start, then read by every process: tokens
  // survive restarts and verify on every instance. Newest first: it signs; the ones it
  // replaced verify until their window ends (identity/signing-keys.ts).
  const windowS = retirementWindowS(opts.accessTokenTtlS);
  const nowS = () => Math.floor(Date.now() / 1000);
  let ring: SigningKeyRing = asRing(await store.keyMaterial<unknown>(SIGNING_KEYS, async () => ({ keys: [{ jwk: await newSigningJwk(), createdAt: nowS(), retiredAt: null }] })));
  const cookieKeys = await store.keyMaterial<string[]>('cookie-keys', async () => [randomBytes(32).toString('base64url')]);

  const roleOf = async (subject: string): Promise<Role | null> => {
    const a = await accounts.bySubject(subject);
    return a && isRole(a.role) ? a.role : null;
  };

  /** The configuration with these keys (private JWKs, the signing one first). */
  const configurationFor = (keys: JWK[]): Configuration => ({
    adapter: adapterFor(store, deps.serviceClients),
    clients: [
      {
        client_id: PORTAL_CLIENT_ID,
        client_name: 'cardata portal',
        // A browser application cannot keep a secret: a public client, PKCE enforced below.
        token_endpoint_auth_method: 'none',
        application_type: 'web',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [...opts.portalRedirectUris],
        post_logout_redirect_uris: [...opts.portalRedirectUris],
      },
      {
        client_id: CLI_CLIENT_ID,
        client_name: 'CarData command line',
        // Runs on the person's machine: it cannot keep a secret either (RFC 8628 §5.6).
        token_endpoint_auth_method: 'none',
        application_type: 'native',
        grant_types: [DEVICE_CODE_GRANT, 'refresh_token'],
        response_types: [],
        redirect_uris: [],
      },
    ],
    // The recipient a service client signs in as, kept with the client (never sent to anyone).
    extraClientMetadata: { properties: [RECIPIENT_METADATA, RECIPIENT_ROLE_METADATA] },
    // No HMAC client authentication: a service client's stored "secret" is a hash (see wire()).
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    jwks: { keys },
    cookies: { keys: cookieKeys },
    // RFC 9700 §2.1.1: PKCE for every authorization code, S256 only (the library's default method list).
    pkce: { required: () => true },
    scopes: ['openid', 'offline_access', API_SCOPE],
    claims: { openid: ['sub'], [API_SCOPE]: [EMBEDDED_ROLE_CLAIM] },
    async findAccount(_ctx: KoaContextWithOIDC, sub: string) {
      const role = await roleOf(sub);
      if (role === null) return undefined;
      return { accountId: sub, claims: async () => ({ sub, [EMBEDDED_ROLE_CLAIM]: role }) };
    },
    // The role goes into the access token, where the API reads it; so does the sign-in
    // session (`sid`), whose end (sign-out) ends every access token issued in it.
    async extraTokenClaims(_ctx, token) {
      const { accountId, sessionUid } = token as { accountId?: string; sessionUid?: string };
      if (!accountId) return undefined;
      const role = await roleOf(accountId);
      return role ? { [EMBEDDED_ROLE_CLAIM]: role, ...(sessionUid ? { sid: sessionUid } : {}) } : undefined;
    },
    // The portal gets refresh tokens without asking for offline_access: they are then bound
    // to the sign-in session (oidc-provider's expiresWithSession) and end with it at sign-out.
    issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Every token is bound to the sign-in session, offline_access asked for or not: sign-out
    // (and the session's end) ends them all (oidc-provider then also revokes the grant).
    expiresWithSession: () => true,
    // Always rotated, a spent one refused; a spent one used again ends its whole grant
    // (oidc-provider revokes the family on reuse).
    rotateRefreshToken: () => true,
    // A service client's tokens: the recipient as subject, its role, and the client as the
    // token's session (sid), which its deletion ends on every instance (app/sign-in.ts).
    formats: {
      customizers: {
        async jwt(_ctx, token, jwt) {
          if ((token as { kind?: string }).kind !== 'ClientCredentials') return;
          const client = (token as { client?: { clientId: string; metadata(): Record<string, unknown> } }).client;
          const md = client?.metadata();
          if (!client || typeof md?.[RECIPIENT_METADATA] !== 'string' || !isRole(md[RECIPIENT_ROLE_METADATA])) throw new Error('client credentials token for a client that is no service client');
          Object.assign(jwt.payload, { sub: md[RECIPIENT_METADATA], [EMBEDDED_ROLE_CLAIM]: md[RECIPIENT_ROLE_METADATA], sid: serviceClientSid(client.clientId) });
        },
      },
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // RFC 8628: tools without a browser; the person confirms the code on these pages.
      deviceFlow: { enabled: true, charset: 'base-20', mask: '****-****', userCodeInputSource, userCodeConfirmSource, successSource },
      // The sign-out pages in the person's language, nothing fetched (the defaults load web fonts).
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          const lang = pageLang(ctx);
          const body =
            `<p>${escapeHtml(signInText(lang, 'logoutQuestion', { host: ctx.host }))}</p>${form}` +
            `<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">${escapeHtml(signInText(lang, 'logoutYes'))}</button> ` +
            `<button type="submit" form="op.logoutForm">${escapeHtml(signInText(lang, 'logoutNo'))}</button>`;
          ctx.type = 'html';
          ctx.set('content-language', lang);
          ctx.body = signInPageHtml(lang, signInText(lang, 'logoutTitle'), body);
        },
        async postLogoutSuccessSource(ctx) {
          const lang = pageLang(ctx);
          ctx.type = 'html';
          ctx.set('content-language', lang);
          ctx.body = signInPageHtml(lang, signInText(lang, 'loggedOutTitle'), `<p>${escapeHtml(signInText(lang, 'loggedOutText'))}</p>`);
        },
      },
      revocation: { enabled: true },
      userinfo: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => opts.audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (resource !== opts.audience) throw new errors.InvalidTarget();
          return {
            scope: API_SCOPE,
            audience: opts.audience,
            accessTokenTTL: opts.accessTokenTtlS,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256', kid: String(keys[0]!.kid) } },
          };
        },
      },
    },
    interactions: { url: (_ctx, interaction) => `${new URL(opts.issuer).pathname.replace(/\/$/, '')}/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: opts.accessTokenTtlS,
      ClientCredentials: opts.accessTokenTtlS,
      DeviceCode: opts.deviceCodeTtlS ?? 600,
      AuthorizationCode: 60,
      IdToken: ID_TOKEN_TTL_S,
      Interaction: 600,
      Grant: opts.refreshAbsoluteS,
      // From the sign-in, not from the last visit: the session (and every refresh token bound
      // to it) ends OIDC_REFRESH_ABSOLUTE_S after the password was given.
      Session: (_ctx, session) => {
        const nowS = Math.floor(Date.now() / 1000);
        const loginTs = (session as { loginTs?: number }).loginTs ?? nowS;
        return Math.max(1, loginTs + opts.refreshAbsoluteS - nowS);
      },
      // Idle: each refresh token lives refreshIdleS, and never past the absolute end of the
      // sign-in it descends from (iiat: the first token of its family).
      RefreshToken: (_ctx, token) => {
        const first = (token as { iiat?: number; iat?: number }).iiat ?? (token as { iat?: number }).iat ?? Math.floor(Date.now() / 1000);
        const left = first + opts.refreshAbsoluteS - Math.floor(Date.now() / 1000);
        return Math.max(1, Math.min(opts.refreshIdleS, left));
      },
    },
    async renderError(ctx, out) {
      const lang = pageLang(ctx);
      ctx.type = 'html';
      ctx.set('content-language', lang);
      // The protocol's error code and description stay as the library states them (English): they name what went wrong to whoever debugs it.
      ctx.body = signInPageHtml(lang, signInText(lang, 'errorTitle'), `<p lang="en">${escapeHtml(String(out.error))}: ${escapeHtml(String(out.error_description ?? ''))}</p>`);
    },
  });

  // RFC 8628 §3.2, §3.5: the device authorization answer names the polling interval, and a
  // poll sooner than that after the previous one, while the person has not answered yet, gets
  // slow_down and 5 s more from then on. The last poll is kept in the store (one device polls
  // any instance behind the balancer); the library itself answers authorization_pending,
  // expired_token and access_denied.
  const pollIntervalS = opts.devicePollIntervalS ?? 5;
  const devicePolling = async (ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> => {
    await next();
    const oidc = ctx.oidc as { route?: string; params?: Record<string, unknown> } | undefined;
    const body = ctx.body as Record<string, unknown> | null | undefined;
    if (oidc?.route === 'device_authorization' && ctx.status === 200 && body && typeof body === 'object') {
      body.interval = pollIntervalS;
      return;
    }
    if (oidc?.route !== 'token' || oidc.params?.grant_type !== DEVICE_CODE_GRANT || ctx.status !== 400 || body?.error !== 'authorization_pending') return;
    const code = oidc.params.device_code;
    if (typeof code !== 'string') return;
    const id = createHash('sha256').update(code).digest('base64url');
    const prev = (await store.find(DEVICE_POLL_MODEL, id)) as { at?: unknown; interval?: unknown } | undefined;
    const now = Date.now();
    let interval = typeof prev?.interval === 'number' ? prev.interval : pollIntervalS;
    // A fifth of the interval tolerated: requests may arrive closer than they were sent.
    if (typeof prev?.at === 'number' && now - prev.at < interval * 800) {
      interval += 5;
      ctx.body = { error: 'slow_down', error_description: `polled too often: wait at least ${interval} s between polls from now on` };
    }
    await store.upsert(DEVICE_POLL_MODEL, id, { at: now, interval }, opts.deviceCodeTtlS ?? 600);
  };

  // oidc-provider takes its keys at construction: new keys, a new provider (all its state
  // is in the store; requests under way finish on the one they started on).
  const build = (keys: JWK[]) => {
    const p = new Provider(opts.issuer, configurationFor(keys.map((k) => structuredClone(k))));
    wire(p);
    return p;
  };
  let liveKids = kidsOf(liveKeys(ring, nowS(), windowS));
  let provider = build(liveKeys(ring, nowS(), windowS).map((k) => k.jwk));
  let callback = provider.callback();
  /** Rebuilds with the ring's live keys when they are not the ones published; true then. */
  const adopt = (next: SigningKeyRing): boolean => {
    ring = next;
    const live = liveKeys(ring, nowS(), windowS);
    const kids = kidsOf(live);
    if (kids.join(' ') === liveKids.join(' ')) return false;
    provider = build(live.map((k) => k.jwk));
    callback = provider.callback();
    liveKids = kids;
    deps.onKeysChanged?.(kids);
    return true;
  };
  function wire(provider: Provider): void {
    // A service client's secret is stored only as a scrypt hash (identity/secrets.ts), which
    // stands in the client's metadata where the library expects the secret: what the client
    // sent is hashed and compared instead of compared as it is.
    provider.Client.prototype.compareClientSecret = async function (this: { clientSecret?: string | undefined }, actual: string) {
      return typeof this.clientSecret === 'string' && typeof actual === 'string' && actual.length <= 512 && verifySecret(actual, this.clientSecret);
    };
    provider.use(devicePolling);
    // A fault of ours (the store not answering …): the browser gets the error page, the operator the log.
    provider.on('server_error', (_ctx: unknown, err: Error) => deps.onServerError?.(err));
    // Sign-out (RP-initiated logout, confirmed): the session is destroyed and its grants
    // revoked by the library; the access tokens it issued are refused by their sid.
    provider.on('end_session.success', (ctx: KoaContextWithOIDC) => {
      // Only when the person confirmed (logout=yes): "no, stay signed in" keeps the session
      // (the library ends only that client's grant), and with it the tokens' sid.
      if (!(ctx.oidc.params as { logout?: unknown } | undefined)?.logout) return;
      const session = ctx.oidc.session as { uid?: string; accountId?: string } | undefined;
      // Until every access token of the session has expired, with the verifiers' clock tolerance (30 s) and a margin.
      if (session?.uid) deps.onSignedOut?.({ sid: session.uid, accountId: session.accountId ?? null, expiresAt: Date.now() + (opts.accessTokenTtlS + 60) * 1000 });
    });
  }
  const mount = new URL(opts.issuer).pathname.replace(/\/$/, '');
  // Reads and rotations one after the other: a read that began before a rotation here
  // cannot put back the keys it replaced.
  let keyOps: Promise<unknown> = Promise.resolve();
  const serially = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = keyOps.then(fn, fn);
    keyOps = p.catch(() => undefined);
    return p;
  };
  const syncKeys = (): Promise<boolean> =>
    serially(async () => {
      const stored = await store.readKeyMaterial(SIGNING_KEYS);
      return adopt(stored === undefined ? ring : asRing(stored));
    });
  let jwksSync: Promise<boolean> | null = null;

  const finish = (req: http.IncomingMessage, res: http.ServerResponse, result: InteractionResults) =>
    provider.interactionResult(req, res, result, { mergeWithLastSubmission: false });

  return {
    issuer: opts.issuer,
    handle(req, res) {
      // As under a mounted router: the provider routes on the path below its mount, and
      // finds the mount again from originalUrl when it builds URLs.
      const url = req.url ?? '/';
      (req as http.IncomingMessage & { originalUrl?: string }).originalUrl = url;
      req.url = url.startsWith(mount) ? url.slice(mount.length) || '/' : url;
      if (!req.url.startsWith('/')) req.url = `/${req.url}`;
      // The JWKS as stored: a key rotated in on another instance a moment ago is in it
      // (one read of the store at a time; a failed read serves what this instance has).
      if (req.url === '/jwks' || req.url.startsWith('/jwks?')) {
        jwksSync ??= syncKeys()
          .catch(() => false)
          .finally(() => (jwksSync = null));
        void jwksSync.then(() => callback(req, res));
        return;
      }
      void callback(req, res);
    },
    async interaction(req, res, uid) {
      try {
        const d = await provider.interactionDetails(req, res);
        if (d.uid !== uid) return null;
        return {
          uid: d.uid,
          prompt: d.prompt.name,
          clientId: typeof d.params.client_id === 'string' ? d.params.client_id : '',
          uiLocales: typeof d.params.ui_locales === 'string' ? d.params.ui_locales : null,
        };
      } catch {
        return null;
      }
    },
    async login(req, res, username, password, source) {
      // The throttle first: a refused attempt is not looked up, not hashed.
      const d = deps.throttle.begin(username, source, Date.now());
      if (!d.ok) throw new SignInThrottled(d.retryAt, d.scope);
      let outcome: 'success' | 'failure' | 'error' = 'error';
      try {
        if (d.delayMs > 0) await sleep(d.delayMs);
        const a = await accounts.byUsername(username);
        // An unknown username costs the same scrypt run as a wrong password.
        const ok = await deps.passwords.verify(password, a?.passwordHash ?? null);
        if (!a || !ok || !isRole(a.role)) {
          outcome = 'failure';
          return null;
        }
        outcome = 'success';
        return await finish(req, res, { login: { accountId: a.subject } });
      } finally {
        // 'error' (queue full, database down): no outcome, nothing counted.
        d.attempt.settle(outcome, Date.now());
      }
    },
    async consent(req, res) {
      const d = await provider.interactionDetails(req, res);
      const { accountId } = d.session ?? {};
      if (!accountId) throw new errors.SessionNotFound('no signed-in account');
      const grant = d.grantId ? await provider.Grant.find(d.grantId) : new provider.Grant({ accountId, clientId: String(d.params.client_id) });
      if (!grant) throw new errors.SessionNotFound('grant not found');
      const details = d.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
      if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
      if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
      for (const [resource, scopes] of Object.entries(details.missingResourceScopes ?? {})) grant.addResourceScope(resource, scopes.join(' '));
      const grantId = await grant.save();
      return finish(req, res, { consent: d.grantId ? {} : { grantId } });
    },
    async abort(req, res) {
      return finish(req, res, { error: 'access_denied', error_description: 'the person declined' });
    },
    keyIds: () => [...liveKids],
    rotateSigningKey: () =>
      serially(async () => {
        adopt(await rotateSigningKeys(store, windowS));
        return [...liveKids];
      }),
    syncKeys,
  };
}
