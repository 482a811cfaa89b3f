// The deny list, kept in memory: revoked minted tokens (by jti), revoked subjects (every
// token of a subject issued before a moment, at one issuer or at all), and ended sign-in
// sessions (every token carrying the session's `sid`). Filled from the store at start, told
// of each revocation (this process's own at once, other processes' by NOTIFY), and asked of
// the store directly while the change feed is down, when the memory may miss one.
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
  sessions(): Promise<SessionRevocation[]>;
  isPrincipalRevoked(p: RevocableToken): Promise<boolean>;
}

export interface RevocationList {
  /** Loads the lists; call at start and whenever the change feed is back. */
  reload(): Promise<void>;
  /** A revocation announced (a token's expiry unknown here: kept until the next reload). */
  apply(r: Revocation, tokenExpiresAt?: number): void;
  /** A minted token's jti revoked (kept until `expiresAt`, ms). */
  add(jti: string, expiresAt?: number): void;
  /** While false, every question goes to the store. */
  setTrusted(trusted: boolean): void;
  /**
   * Whether the token is revoked: its jti (tokens of `jtiIssuer` only: the gateway's own,
   * whose ids it records), its subject, or its session.
   */
  isRevoked(t: RevocableToken, jtiIssuer: string): Promise<boolean>;
}

const subjectKey = (issuer: string | null, subject: string) => `${issuer ?? ''}\n${subject}`;
const sessionKey = (issuer: string, sid: string) => `${issuer}\n${sid}`;

export function createRevocationList(source: RevocationSource, now: () => number = Date.now): RevocationList {
  // jti → expiry (ms); an expired token is refused as expired anyway, so it may go.
  let revoked = new Map<string, number>();
  // (issuer or '', subject) → tokens issued before this are refused (ms).
  let subjects = new Map<string, number>();
  let sessions = new Set<string>();
  let trusted = false;
  const addSubject = (m: Map<string, number>, r: SubjectRevocation) => {
    const k = subjectKey(r.issuer, r.subject);
    m.set(k, Math.max(m.get(k) ?? 0, r.before.getTime()));
  };
  const list: RevocationList = {
    async reload() {
      const [rows, subs, sids] = await Promise.all([source.revokedUnexpired(), source.subjects(), source.sessions()]);
      const next = new Map(rows.map((r) => [r.jti, r.expiresAt.getTime()]));
      // Revocations announced during the load stay.
      for (const [jti, exp] of revoked) if (!next.has(jti) && exp > now()) next.set(jti, exp);
      const nextSubjects = new Map<string, number>();
      for (const s of subs) addSubject(nextSubjects, s);
      for (const [k, b] of subjects) nextSubjects.set(k, Math.max(nextSubjects.get(k) ?? 0, b));
      const nextSessions = new Set(sids.map((s) => sessionKey(s.issuer, s.sid)));
      for (const k of sessions) nextSessions.add(k);
      revoked = next;
      subjects = nextSubjects;
      sessions = nextSessions;
      trusted = true;
    },
    apply(r, tokenExpiresAt) {
      if (r.kind === 'token') list.add(r.jti, tokenExpiresAt);
      else if (r.kind === 'subject') addSubject(subjects, r);
      else sessions.add(sessionKey(r.issuer, r.sid));
    },
    add(jti, expiresAt = Number.POSITIVE_INFINITY) {
      revoked.set(jti, expiresAt);
    },
    setTrusted(t) {
      trusted = t;
    },
    async isRevoked(t, jtiIssuer) {
      if (t.jti !== null && t.issuer === jtiIssuer) {
        const exp = revoked.get(t.jti);
        if (exp !== undefined) {
          if (exp > now()) return true;
          revoked.delete(t.jti);
        }
      }
      const before = Math.max(subjects.get(subjectKey(t.issuer, t.subject)) ?? 0, subjects.get(subjectKey(null, t.subject)) ?? 0);
      if (before > 0 && (t.issuedAt === null || t.issuedAt < before)) return true;
      if (t.sessionId !== null && sessions.has(sessionKey(t.issuer, t.sessionId))) return true;
      if (trusted) return false;
      if (t.jti !== null && t.issuer === jtiIssuer && (await source.isRevoked(t.jti))) return true;
      return source.isPrincipalRevoked(t);
    },
  };
  return list;
}
