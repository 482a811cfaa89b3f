// Wiring of sign-in: the gateway's own tokens, their deny list, the external OpenID Provider, and the
// embedded one under /oidc, all answering through one authenticator.
import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import type { Db } from '../storage/driver/db.ts';
import { createAccountRepo, createMintedTokenRepo, createOidcStore, TOKEN_REVOKED_CHANNEL, type AccountRepo, type MintedTokenRepo } from '../storage/repos/sign-in.ts';
import { createTokenService, parseKeys, randomKey, type TokenService } from '../identity/tokens.ts';
import { createAuthenticator, type Authenticator } from '../identity/authenticate.ts';
import { createOidcVerifier } from '../identity/oidc.ts';
import { createRevocationList } from '../identity/revocations.ts';
import type { EmbeddedIdp } from '../identity/provider.ts';

export interface SignIn {
  /** Mints the gateway's own tokens. */
  readonly tokens: TokenService;
  /** Verifies every bearer token the API accepts. */
  readonly authenticator: Authenticator;
  readonly mintedTokens: MintedTokenRepo;
  readonly accounts: AccountRepo;
  /** A revocation made by this process: in force here at once. */
  readonly onRevoked: (jti: string) => void;
  /** The embedded provider, once started. */
  readonly provider: () => EmbeddedIdp | null;
  /** Whether sign-in serves: the embedded provider has started, or none is configured. */
  ready(): boolean;
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
  // Untrusted (every check asks the database) until open() has loaded it.
  const revocations = createRevocationList(mintedTokens);
  let stopListening: (() => Promise<void>) | null = null;

  const authenticator = createAuthenticator({
    verifiers: [tokens],
    // Only the gateway's own tokens are on its deny list; a provider revokes its own.
    isRevoked: (jti, issuer) => (issuer === tokens.issuer ? revocations.isRevoked(jti) : false),
  });
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
        onDiscoveryError: onDiscoveryError(config.oidc.issuer),
      }),
    );
  }

  let provider: EmbeddedIdp | null = null;
  let pruneTimer: NodeJS.Timeout | null = null;
  const store = createOidcStore(db);

  return {
    tokens,
    authenticator,
    mintedTokens,
    accounts,
    onRevoked: (jti) => revocations.add(jti),
    provider: () => provider,
    ready: () => !config.oidc.embedded || provider !== null,
    async open() {
      stopListening = await db.listen(TOKEN_REVOKED_CHANNEL, (jti) => revocations.add(jti), {
        // A revocation may be missed while the feed is down: ask the database until it is back.
        onDown: () => {
          revocations.setTrusted(false);
          log.warn({ event: 'token_revocation_feed_down' }, 'token revocation feed lost; asking the database until it is back');
        },
        onUp: () => {
          void revocations.reload().then(
            () => log.info({ event: 'token_revocation_feed_up' }, 'token revocation feed restored'),
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
          accessTokenTtlS: config.tokenTtlS,
        },
        { store, accounts, onServerError: (err) => log.error({ event: 'oidc_server_error', err: err.message }, 'embedded OpenID Provider failed a request') },
      );
      // Its tokens go the same way as an external provider's: discovery, JWKS, jose. The
      // discovery document is fetched from this process's own listener.
      authenticator.trust(
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
      );
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
      const stop = stopListening;
      stopListening = null;
      await stop?.();
    },
  };
}
