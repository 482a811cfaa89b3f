// The deny list of revoked token ids, kept in memory: filled from the store at start,
// told of each revocation (this process's own at once, other processes' by NOTIFY), and
// asked of the store directly while the change feed is down, when the memory may miss one.
export interface RevocationSource {
  revokedUnexpired(): Promise<{ jti: string; expiresAt: Date }[]>;
  isRevoked(jti: string): Promise<boolean>;
}

export interface RevocationList {
  /** Loads the list; call at start and whenever the change feed is back. */
  reload(): Promise<void>;
  /** A revocation announced (its expiry unknown here: kept until the next reload). */
  add(jti: string, expiresAt?: number): void;
  /** While false, every question goes to the store. */
  setTrusted(trusted: boolean): void;
  isRevoked(jti: string): Promise<boolean>;
}

export function createRevocationList(source: RevocationSource, now: () => number = Date.now): RevocationList {
  // jti → expiry (ms); an expired token is refused as expired anyway, so it may go.
  let revoked = new Map<string, number>();
  let trusted = false;
  return {
    async reload() {
      const rows = await source.revokedUnexpired();
      const next = new Map(rows.map((r) => [r.jti, r.expiresAt.getTime()]));
      // Revocations announced during the load stay.
      for (const [jti, exp] of revoked) if (!next.has(jti) && exp > now()) next.set(jti, exp);
      revoked = next;
      trusted = true;
    },
    add(jti, expiresAt = Number.POSITIVE_INFINITY) {
      revoked.set(jti, expiresAt);
    },
    setTrusted(t) {
      trusted = t;
    },
    async isRevoked(jti) {
      const exp = revoked.get(jti);
      if (exp !== undefined) {
        if (exp > now()) return true;
        revoked.delete(jti);
      }
      return trusted ? false : source.isRevoked(jti);
    },
  };
}
