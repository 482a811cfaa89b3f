// The deny list, kept in memory: revoked minted tokens (by jti), revoked subjects (every
// token of a subject issued before a moment, at one issuer or at all), and ended sign-in
// sessions (every token carrying the session's `sid`, until the last of them expired).
// Filled from the store at start, told of each revocation (this process's own at once,
// other processes' by NOTIFY), and asked of the store directly while the change feed is
// down, when the memory may miss one.
import type { Revocation, SessionRevocation, SubjectRevocation } from '../proto/sign-in.ts';

/** What a revocation check needs to know of a verified token. */
export interface RevocableToken {
  issuer: string;
  subject: string;
  jti: string | null;
  /** ms since the epoch; null: unknown (a revoked subject's token without `iat` is refused). */
  issuedAt: number | null;
  sessionId: string | null;
}

export interface RevocationSource {
  revokedUnexpired(): Promise<{ jti: string; expiresAt: Date }[]>;
  isRevoked(jti: string): Promise<boolean>;
  subjects(): Promise<SubjectRevocation[]>;
  /** Ended sessions whose tokens may still be valid, each with the time the last of them expires. */
  sessions(): Promise<(SessionRevocation & { expiresAt: Date })[]>;
  isPrincipalRevoked(p: RevocableToken): Promise<boolean>;
}

export interface RevocationList {
  /**
   * Loads the lists; trusted from then on when the feed stayed up meanwhile (no setTrusted(false)
   * during the load): call at start and whenever the change feed is back.
   */
  reload(): Promise<void>;
  /** Loads the lists without trusting them (while the feed is down: for checks in memory, see isRevokedNow). */
  refresh(): Promise<void>;
  /** A revocation announced. `expiresAt` (ms): when what it revokes expires anyway (unknown: kept until a reload drops it). */
  apply(r: Revocation, expiresAt?: number): void;
  /** A minted token's jti revoked (kept until `expiresAt`, ms). */
  add(jti: string, expiresAt?: number): void;
  /** While false, every question goes to the store. */
  setTrusted(trusted: boolean): void;
  /** Whether the lists in memory are complete (loaded, and the feed up since). */
  readonly trusted: boolean;
  /**
   * Whether the token is revoked: its jti (tokens of `jtiIssuer` only: the gateway's own,
   * whose ids it records), its subject, or its session.
   */
  isRevoked(t: RevocableToken, jtiIssuer: string): Promise<boolean>;
  /** The same from memory only (open streams checking again after a revocation or a refresh). */
  isRevokedNow(t: RevocableToken, jtiIssuer: string): boolean;
}

const subjectKey = (issuer: string | null, subject: string) => `${issuer ?? ''}\n${subject}`;
const sessionKey = (issuer: string, sid: string) => `${issuer}\n${sid}`;
/** An announcement whose expiry is unknown is kept this long at least (a reload then has it from the store). */
const UNKNOWN_EXPIRY_MS = 24 * 3_600_000;

export function createRevocationList(source: RevocationSource, now: () => number = Date.now): RevocationList {
  // jti → expiry (ms); an expired token is refused as expired anyway, so it may go.
  let revoked = new Map<string, number>();
  // (issuer or '', subject) → tokens issued before this are refused (ms).
  let subjects = new Map<string, number>();
  // (issuer, sid) → until when (ms): after that every token of the session has expired.
  let sessions = new Map<string, number>();
  let trusted = false;
  // Bumped by setTrusted(false): a load that began before it does not make the list trusted.
  let generation = 0;
  // Announcements made while a load runs, applied again on top of what it loaded.
  let loading: Revocation[] | null = null;
  const put = (m: Map<string, number>, k: string, v: number) => m.set(k, Math.max(m.get(k) ?? 0, v));

  const applyTo = (r: Revocation, expiresAt: number | undefined, into: { revoked: Map<string, number>; subjects: Map<string, number>; sessions: Map<string, number> }) => {
    if (r.kind === 'token') into.revoked.set(r.jti, expiresAt ?? now() + UNKNOWN_EXPIRY_MS);
    else if (r.kind === 'subject') put(into.subjects, subjectKey(r.issuer, r.subject), r.before.getTime());
    else put(into.sessions, sessionKey(r.issuer, r.sid), expiresAt ?? now() + UNKNOWN_EXPIRY_MS);
  };

  async function load(): Promise<void> {
    const pending: Revocation[] = [];
    loading = pending;
    try {
      const [rows, subs, sids] = await Promise.all([source.revokedUnexpired(), source.subjects(), source.sessions()]);
      const next = {
        revoked: new Map(rows.map((r) => [r.jti, r.expiresAt.getTime()])),
        subjects: new Map<string, number>(),
        sessions: new Map<string, number>(),
      };
      for (const s of subs) put(next.subjects, subjectKey(s.issuer, s.subject), s.before.getTime());
      for (const s of sids) put(next.sessions, sessionKey(s.issuer, s.sid), s.expiresAt.getTime());
      // Revocations announced during the load stay.
      for (const r of pending) applyTo(r, r.kind === 'token' ? revoked.get(r.jti) : r.kind === 'session' ? sessions.get(sessionKey(r.issuer, r.sid)) : undefined, next);
      ({ revoked, subjects, sessions } = next);
    } finally {
      if (loading === pending) loading = null;
    }
  }

  const inMemory = (t: RevocableToken, jtiIssuer: string): boolean => {
    const at = now();
    if (t.jti !== null && t.issuer === jtiIssuer) {
      const exp = revoked.get(t.jti);
      if (exp !== undefined) {
        if (exp > at) return true;
        revoked.delete(t.jti);
      }
    }
    const before = Math.max(subjects.get(subjectKey(t.issuer, t.subject)) ?? 0, subjects.get(subjectKey(null, t.subject)) ?? 0);
    if (before > 0 && (t.issuedAt === null || t.issuedAt < before)) return true;
    if (t.sessionId !== null) {
      const k = sessionKey(t.issuer, t.sessionId);
      const until = sessions.get(k);
      if (until !== undefined) {
        if (until > at) return true;
        sessions.delete(k);
      }
    }
    return false;
  };

  const list: RevocationList = {
    async reload() {
      const g = generation;
      await load();
      if (g === generation) trusted = true;
    },
    refresh: load,
    apply(r, expiresAt) {
      loading?.push(r);
      applyTo(r, expiresAt, { revoked, subjects, sessions });
    },
    add(jti, expiresAt) {
      list.apply({ kind: 'token', jti }, expiresAt ?? Number.POSITIVE_INFINITY);
    },
    setTrusted(t) {
      if (!t) generation++;
      trusted = t;
    },
    async isRevoked(t, jtiIssuer) {
      if (inMemory(t, jtiIssuer)) return true;
      if (trusted) return false;
      if (t.jti !== null && t.issuer === jtiIssuer && (await source.isRevoked(t.jti))) return true;
      return source.isPrincipalRevoked(t);
    },
    isRevokedNow: inMemory,
    get trusted() {
      return trusted;
    },
  };
  return list;
}
