// Wiring of sign-in: the gateway's own tokens, their deny list, the external OpenID Provider, and the
// embedded one under /oidc, all answering through one authenticator.
import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import type { Db } from '../storage/driver/db.ts';
import { createAccountRepo, createMintedTokenRepo, createOidcStore, TOKEN_REVOKED_CHANNEL, type AccountRepo, type MintedTokenRepo } from '../storage/repos/sign-in.ts';
import { createTokenService, parseKeys, randomKey, type Principal, type TokenService } from '../identity/tokens.ts';
import { createAuthenticator, type Authenticator } from '../identity/authenticate.ts';
import { createOidcVerifier } from '../identity/oidc.ts';
import { createRevocationList } from '../identity/revocations.ts';
import type { EmbeddedIdp } from '../identity/provider.ts';
import { createPasswordVerifier } from '../identity/secrets.ts';
import { createSignInThrottle } from '../identity/sign-in-throttle.ts';
import { createRevocationRepo, parseRevocation } from '../storage/repos/revocations.ts';
import type { Revocation, SubjectRevocation } from '../proto/sign-in.ts';
import { keyEncryption } from './key-encryption.ts';
import { createServiceClientRepo, type ServiceClientRepo } from '../storage/repos/service-clients.ts';
import { serviceClientSid } from '../identity/service-clients.ts';
import { followSigningKeys, refreshingVerifier, type RefreshingVerifier } from './signing-keys.ts';

export interface SignIn {
  /** Mints the gateway's own tokens. */
  readonly tokens: TokenService;
  /** Verifies every bearer token the API accepts. */
  readonly authenticator: Authenticator;
  readonly mintedTokens: MintedTokenRepo;
  readonly accounts: AccountRepo;
  /** A revocation made by this process: in force here at once. */
  readonly onRevoked: (jti: string) => void;
  /**
   * Refuses every token of `subject` issued before now, at `issuer` (null: at every trusted
   * issuer), here at once and on every instance by NOTIFY; at the embedded provider its
   * sessions and refresh tokens end too.
   */
  revokeSubject(issuer: string | null, subject: string): Promise<SubjectRevocation>;
  /** The issuers whose tokens are accepted (the gateway's own first). */
  issuers(): string[];
  /**
   * Calls `fn` after every revocation in force here (this process's or another's), and
   * every second while the revocation feed is down (after the lists were read again): open
   * streams check their tokens again, with isRevokedNow.
   */
  onRevocation(fn: () => void): () => void;
  /** Whether a verified token is revoked, from the lists in memory (no I/O: for many open streams at once). */
  isRevokedNow(p: Principal): boolean;
  /** The embedded provider, once started. */
  readonly provider: () => EmbeddedIdp | null;
  /** Recipients' service clients (client credentials at the embedded provider). */
  readonly serviceClients: ServiceClientRepo;
  /**
   * Deletes a service client and refuses every token it holds: here before it resolves, on
   * every instance by NOTIFY (open streams end). Null: no embedded provider runs here.
   */
  removeServiceClient(recipientId: string, clientId: string): Promise<'removed' | 'no-recipient' | 'no-client' | null>;
  /** Whether sign-in serves: the embedded provider has started, or none is configured. */
  ready(): boolean;
  /** Rotates the embedded provider's signing key (README "Keys at rest and rotation"); the kids in its JWKS, the new one first. Null: no embedded provider runs here. */
  rotateSigningKey(): Promise<string[] | null>;
  /** Loads the deny list and follows revocations (NOTIFY); needs the migrated schema. */
  open(): Promise<void>;
  /** Starts the embedded provider, which needs the address the HTTP server listens on. */
  start(http: { scheme: 'http' | 'https'; host: string; port: number }): Promise<void>;
  /** Stops following revocations and the provider's housekeeping; safe to call twice. */
  close(): Promise<void>;
}

/** Builds sign-in without touching the database; `open` and `start` do the I/O. */
export function createSignIn(config: Config, db: Db, log: Logger): SignIn {
  if (!config.jwtKeys) log.warn({ event: 'jwt_key_generated' }, 'JWT_KEYS not set: API tokens are signed with a random key and stop working when this process ends');
  const tokens = createTokenService(config.jwtKeys ? parseKeys(config.jwtKeys) : [randomKey()], Date.now, { maxTtlS: config.tokenTtlS });
  const mintedTokens = createMintedTokenRepo(db);
  const accounts = createAccountRepo(db);
  const revocationRepo = createRevocationRepo(db);
  const serviceClients = createServiceClientRepo(db);
  // Untrusted (every check asks the database) until open() has loaded it.
  const revocations = createRevocationList({
    revokedUnexpired: () => mintedTokens.revokedUnexpired(),
    isRevoked: (jti) => mintedTokens.isRevoked(jti),
    subjects: () => revocationRepo.subjects(),
    sessions: () => revocationRepo.sessions(),
    isPrincipalRevoked: (p) => revocationRepo.isRevoked(p),
  });
  let stopListening: (() => Promise<void>) | null = null;
  const listeners = new Set<() => void>();
  const revoked = (r: Revocation | null): void => {
    if (r) revocations.apply(r, r.kind === 'session' && r.expiresAt ? r.expiresAt.getTime() : undefined);
    for (const fn of listeners) fn();
  };
  let feedDownTimer: NodeJS.Timeout | null = null;

  const authenticator = createAuthenticator({
    verifiers: [tokens],
    // A jti is on the deny list for the gateway's own tokens; a subject or a sign-in
    // session for the tokens of any issuer.
    isRevoked: (p) => revocations.isRevoked(p, tokens.issuer),
  });
  const trusted: string[] = [tokens.issuer];
  const onDiscoveryError = (issuer: string) => (err: Error) => log.warn({ event: 'oidc_discovery_failed', issuer, err: err.message }, 'OpenID Provider discovery failed; its tokens get 503 until it answers');
  if (config.oidc.issuer) {
    authenticator.trust(
      createOidcVerifier({
        issuer: config.oidc.issuer,
        audience: config.oidc.audience,
        subjectClaim: config.oidc.subjectClaim,
        roleClaim: config.oidc.roleClaim,
        fetchTimeoutMs: config.oidc.fetchTimeoutMs,
        jwksCooldownMs: config.oidc.jwksCooldownMs,
        requireAccessTokenType: config.oidc.requireAccessTokenType,
        subjectPrefix: config.oidc.subjectPrefix,
        onDiscoveryError: onDiscoveryError(config.oidc.issuer),
      }),
    );
    trusted.push(config.oidc.issuer);
    if (config.oidc.embedded && !config.oidc.subjectPrefix) {
      log.warn(
        { event: 'oidc_subjects_shared' },
        'the embedded and an external OpenID Provider both sign people in without OIDC_SUBJECT_PREFIX: an external subject equal to an account\'s subject is the same owner',
      );
    }
  }

  let provider: EmbeddedIdp | null = null;
  let pruneTimer: NodeJS.Timeout | null = null;
  // Sealed with the key-encryption key, once open() has it.
  let store = createOidcStore(db);
  let embeddedVerifier: RefreshingVerifier | null = null;
  let stopFollowingKeys: (() => Promise<void>) | null = null;

  return {
    tokens,
    authenticator,
    mintedTokens,
    accounts,
    onRevoked: (jti) => revoked({ kind: 'token', jti }),
    async revokeSubject(issuer, subject) {
      const r = await revocationRepo.revokeSubject(issuer, subject);
      revoked({ kind: 'subject', ...r });
      // The embedded provider's sessions, grants and refresh tokens of that person end too.
      if (provider && (issuer === null || issuer === provider.issuer)) await revocationRepo.endProviderSessions(subject);
      return r;
    },
    issuers: () => [...trusted],
    onRevocation(fn) {
      listeners.add(fn);
      return () => void listeners.delete(fn);
    },
    isRevokedNow: (p) => revocations.isRevokedNow(p, tokens.issuer),
    provider: () => provider,
    serviceClients,
    async removeServiceClient(recipientId, clientId) {
      if (!provider) return null;
      // Every token the client was issued has expired by then (with the verifiers' 30 s clock tolerance and a margin).
      const rev = { issuer: provider.issuer, sid: serviceClientSid(clientId), expiresAt: new Date(Date.now() + (config.oidc.accessTokenTtlS + 60) * 1000) };
      const r = await serviceClients.remove(recipientId, clientId, rev);
      if (r === 'removed') revoked({ kind: 'session', ...rev });
      return r;
    },
    ready: () => !config.oidc.embedded || provider !== null,
    rotateSigningKey: async () => (provider ? provider.rotateSigningKey() : null),
    async open() {
      // The provider's keys at rest: sealed with the key-encryption key; rows of an earlier
      // version sealed now; a wrong key stops the start here, naming itself.
      const kek = keyEncryption(config);
      if (kek.created) log.warn({ event: 'key_encryption_key_generated', file: kek.file }, `KEY_ENCRYPTION_KEY not set: generated one in ${kek.file}; back it up apart from the data, or set KEY_ENCRYPTION_KEY`);
      if (kek.source === 'none' && config.oidc.embedded) log.warn({ event: 'oidc_keys_unencrypted' }, 'KEY_ENCRYPTION_KEY not set: the embedded OpenID Provider keys are stored unencrypted in the database (set it on every instance)');
      store = createOidcStore(db, kek.codec);
      // Without the provider and without a key, its rows (if any) are left alone.
      const sealed = config.oidc.embedded || kek.codec.sealing ? await store.sealKeyMaterial() : [];
      if (sealed.length) log.info({ event: 'oidc_keys_encrypted', keys: sealed }, 'stored OpenID Provider keys encrypted with KEY_ENCRYPTION_KEY');
      stopListening = await db.listen(TOKEN_REVOKED_CHANNEL, (payload) => revoked(parseRevocation(payload)), {
        // A revocation may be missed while the feed is down: ask the database until it is
        // back, and have open streams check their tokens (there) every second.
        onDown: () => {
          revocations.setTrusted(false);
          // Every second: the lists read again (three queries), then open streams checked in memory.
          feedDownTimer ??= setInterval(() => {
            revocations.refresh().then(
              () => revoked(null),
              (err: Error) => log.warn({ event: 'token_revocation_refresh_failed', err: err.message }, 'could not read the revocations while their feed is down'),
            );
          }, 1000).unref();
          log.warn({ event: 'token_revocation_feed_down' }, 'token revocation feed lost; asking the database until it is back');
        },
        onUp: () => {
          void revocations.reload().then(
            () => {
              // The feed went down again during the load: it stays untrusted, the timer runs on.
              if (!revocations.trusted) return;
              if (feedDownTimer) clearInterval(feedDownTimer);
              feedDownTimer = null;
              revoked(null);
              log.info({ event: 'token_revocation_feed_up' }, 'token revocation feed restored');
            },
            (err: Error) => log.warn({ event: 'token_revocation_reload_failed', err: err.message }, 'deny list reload failed; still asking the database'),
          );
        },
      });
      // Loaded after LISTEN: a revocation committed in between is in the load or in a notification.
      await revocations.reload();
    },
    async start({ scheme, host, port }) {
      if (!config.oidc.embedded) return;
      const local = `${scheme}://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host}:${port}`;
      const base = config.publicUrl ?? local;
      const issuer = `${base}/oidc`;
      // Loaded only when it runs: oidc-provider is a large module (Koa inside).
      const { createEmbeddedIdp, EMBEDDED_ROLE_CLAIM } = await import('../identity/provider.ts');
      provider = await createEmbeddedIdp(
        {
          issuer,
          audience: config.oidc.audience,
          portalRedirectUris: config.oidc.portalRedirectUris ?? [`${base}/portal/callback`],
          accessTokenTtlS: config.oidc.accessTokenTtlS,
          refreshIdleS: config.oidc.refreshIdleS,
          refreshAbsoluteS: config.oidc.refreshAbsoluteS,
          deviceCodeTtlS: config.oidc.deviceCodeTtlS,
          devicePollIntervalS: config.oidc.devicePollIntervalS,
        },
        {
          store,
          accounts,
          serviceClients,
          onKeysChanged: () => embeddedVerifier?.reset(),
          onServerError: (err) => log.error({ event: 'oidc_server_error', err: err.message }, 'embedded OpenID Provider failed a request'),
          // Password guessing: counted per (account, source) and per source; hashed in a queue of its own.
          passwords: createPasswordVerifier({ concurrency: config.signIn.hashConcurrency, maxWaiting: config.signIn.hashQueueMax }),
          throttle: createSignInThrottle({
            perAccountMax: config.signIn.failuresPerAccountMax,
            perSourceMax: config.signIn.failuresPerSourceMax,
            windowMs: config.signIn.failureWindowMs,
            delayMaxMs: config.signIn.delayMaxMs,
          }),
          // Sign-out: every access token of the session is refused, here at once, elsewhere by NOTIFY.
          onSignedOut: (s) => {
            revoked({ kind: 'session', issuer, sid: s.sid, expiresAt: new Date(s.expiresAt) });
            void revocationRepo.revokeSession({ issuer, sid: s.sid }, new Date(s.expiresAt)).then(
              () => log.info({ event: 'signed_out' }, 'signed out: the session and its tokens ended'),
              (err: Error) => log.error({ event: 'sign_out_revocation_failed', err: err.message }, 'signed out, but the revocation of its tokens could not be stored'),
            );
          },
        },
      );
      // Its tokens go the same way as an external provider's: discovery, JWKS, jose. The
      // discovery document is fetched from this process's own listener.
      // Made anew when its keys change (a rotation: app/signing-keys.ts).
      const idp = provider;
      embeddedVerifier = refreshingVerifier(
        () =>
          createOidcVerifier({
            issuer,
            audience: config.oidc.audience,
            discoveryUrl: `${local}/oidc/.well-known/openid-configuration`,
            subjectClaim: 'sub',
            roleClaim: EMBEDDED_ROLE_CLAIM,
            fetchTimeoutMs: config.oidc.fetchTimeoutMs,
            jwksCooldownMs: config.oidc.jwksCooldownMs,
            onDiscoveryError: onDiscoveryError(issuer),
          }),
        () => idp.syncKeys(),
      );
      authenticator.trust(embeddedVerifier);
      stopFollowingKeys = await followSigningKeys(db, idp, log);
      trusted.push(issuer);
      const prune = () =>
        void store.prune(3600).then(
          (n) => n > 0 && log.debug({ event: 'oidc_pruned', rows: n }, 'expired sign-in artefacts deleted'),
          (err: Error) => log.warn({ event: 'oidc_prune_failed', err: err.message }, 'could not delete expired sign-in artefacts'),
        );
      pruneTimer = setInterval(prune, 3_600_000);
      pruneTimer.unref();
      log.info({ event: 'oidc_provider_started', issuer }, 'embedded OpenID Provider started');
    },
    async close() {
      if (pruneTimer) clearInterval(pruneTimer);
      pruneTimer = null;
      const stopKeys = stopFollowingKeys;
      stopFollowingKeys = null;
      await stopKeys?.();
      if (feedDownTimer) clearInterval(feedDownTimer);
      feedDownTimer = null;
      const stop = stopListening;
      stopListening = null;
      await stop?.();
    },
  };
}
