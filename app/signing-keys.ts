// How a rotation of the embedded provider's signing key reaches every instance (README
// "Keys at rest and rotation"): the rotating instance rebuilds its provider at once; the
// others on NOTIFY oidc_keys_changed, at the latest within a minute (a missed
// notification), and at once when a token names a key they do not know yet. The API's
// verifier of the embedded issuer fetches the JWKS again whenever the keys change.
import type { Logger } from 'pino';
import type { Db } from '../storage/driver/db.ts';
import { OIDC_KEYS_CHANNEL } from '../storage/repos/sign-in.ts';
import type { IssuerVerifier } from '../identity/authenticate.ts';
import type { EmbeddedIdp } from '../identity/provider.ts';

/** How often an instance reads the keys again without being told (also drops replaced keys past their window), ms. */
export const KEY_SYNC_INTERVAL_MS = 60_000;

export interface RefreshingVerifier extends IssuerVerifier {
  /** The keys changed: the next token is verified by a new verifier (discovery, JWKS fetched again). */
  reset(): void;
}

/**
 * The embedded issuer's verifier, made anew by `make` whenever the keys change. A token
 * naming a key unknown here has the keys read again from the store (`sync`) and the JWKS
 * fetched again (past jose's cooldown: behind a balancer it may come from an instance that
 * had not heard of the key yet), at most once per `minIntervalMs`: a stream of made-up
 * kids costs one query and one JWKS fetch a second. Then the token is checked once more.
 */
export function refreshingVerifier(make: () => IssuerVerifier, sync: () => Promise<boolean>, minIntervalMs = 1000): RefreshingVerifier {
  let inner = make();
  let lastSync = 0;
  let syncing: Promise<boolean> | null = null;
  return {
    issuer: inner.issuer,
    reset() {
      inner = make();
    },
    async verify(token) {
      const v = inner;
      const r = await v.verify(token);
      if (r.ok || r.error !== 'TOKEN_UNKNOWN_KEY') return r;
      if (inner !== v) return inner.verify(token);
      if (!syncing && Date.now() - lastSync >= minIntervalMs) {
        lastSync = Date.now();
        syncing = sync()
          .catch(() => false)
          .then((changed) => {
            // Changed here: onKeysChanged has made a new one already.
            if (inner === v) inner = make();
            return changed;
          })
          .finally(() => (syncing = null));
      }
      if (!syncing) return r;
      await syncing;
      return inner !== v ? inner.verify(token) : r;
    },
  };
}

/** Follows rotations made elsewhere: NOTIFY, and a read every KEY_SYNC_INTERVAL_MS. Returns the stop. */
export async function followSigningKeys(db: Db, idp: EmbeddedIdp, log: Logger, intervalMs = KEY_SYNC_INTERVAL_MS): Promise<() => Promise<void>> {
  const sync = (why: string) =>
    void idp.syncKeys().then(
      (changed) => changed && log.info({ event: 'oidc_keys_reloaded', why, kids: idp.keyIds() }, 'embedded OpenID Provider keys changed; now publishing these'),
      (err: Error) => log.warn({ event: 'oidc_keys_reload_failed', why, err: err.message }, 'could not read the embedded OpenID Provider keys again'),
    );
  const stop = await db.listen(OIDC_KEYS_CHANNEL, () => sync('notify'), { role: 'oidc-keys', onUp: () => sync('reconnect') });
  const timer = setInterval(() => sync('interval'), intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await stop();
  };
}
