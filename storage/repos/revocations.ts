// Revocations of subjects and of sign-in sessions (migration 010), beside the revocation of
// single minted tokens (sign-in.ts). Each is written and announced in one transaction: the
// NOTIFY on api_token_revoked is delivered at COMMIT, so no instance hears of a revocation
// before it is true. The payload names its kind; a plain payload is a minted token's jti.
import type { Db } from '../driver/db.ts';
import type { Revocation, SessionRevocation, SubjectRevocation } from '../../proto/sign-in.ts';
import { TOKEN_REVOKED_CHANNEL } from './sign-in.ts';

/** The NOTIFY payload of a revocation (parseRevocation reads it back). */
export function revocationPayload(r: Revocation): string {
  if (r.kind === 'token') return r.jti;
  if (r.kind === 'subject') return JSON.stringify({ k: 'sub', i: r.issuer, s: r.subject, b: r.before.getTime() });
  return JSON.stringify({ k: 'sid', i: r.issuer, s: r.sid, ...(r.expiresAt ? { e: r.expiresAt.getTime() } : {}) });
}

/** A NOTIFY payload of api_token_revoked; null when it is none of ours. */
export function parseRevocation(payload: string): Revocation | null {
  if (!payload.startsWith('{')) return payload ? { kind: 'token', jti: payload } : null;
  try {
    const o = JSON.parse(payload) as { k?: unknown; i?: unknown; s?: unknown; b?: unknown; e?: unknown };
    if (o.k === 'sub' && typeof o.s === 'string' && typeof o.b === 'number' && (o.i === null || typeof o.i === 'string')) return { kind: 'subject', issuer: o.i, subject: o.s, before: new Date(o.b) };
    if (o.k === 'sid' && typeof o.i === 'string' && typeof o.s === 'string') return { kind: 'session', issuer: o.i, sid: o.s, ...(typeof o.e === 'number' ? { expiresAt: new Date(o.e) } : {}) };
  } catch {
    // not ours
  }
  return null;
}

export interface RevocationRepo {
  /** Refuses every token of the subject issued before now (issuer null: at every issuer); returns the revocation as stored. */
  revokeSubject(issuer: string | null, subject: string): Promise<SubjectRevocation>;
  /** Refuses every token of the session until `expiresAt` (the session's own end). */
  revokeSession(s: SessionRevocation, expiresAt: Date): Promise<void>;
  subjects(): Promise<SubjectRevocation[]>;
  /** Ended sessions whose tokens may still be valid, with when the last of them expires. */
  sessions(): Promise<(SessionRevocation & { expiresAt: Date })[]>;
  /** Ends every session, grant and refresh token the embedded provider holds for `accountId` (its artefacts go). */
  endProviderSessions(accountId: string): Promise<number>;
  /** Asked while the change feed is down: whether a token of (issuer, subject, sid) issued at issuedAt is revoked. */
  isRevoked(p: { issuer: string; subject: string; sessionId: string | null; issuedAt: number | null }): Promise<boolean>;
}

export function createRevocationRepo(db: Db): RevocationRepo {
  return {
    async revokeSubject(issuer, subject) {
      return db.transaction(async (tx) => {
        // Never moves back: a later revocation of the same subject keeps the later moment.
        const r = await tx.query<{ revoked_before: Date }>(
          `INSERT INTO subject_revocations (issuer, subject, revoked_before) VALUES ($1, $2, clock_timestamp())
           ON CONFLICT (issuer, subject) DO UPDATE SET revoked_before = greatest(subject_revocations.revoked_before, EXCLUDED.revoked_before)
           RETURNING revoked_before`,
          [issuer ?? '', subject],
        );
        const rev: SubjectRevocation = { issuer, subject, before: r.rows[0]!.revoked_before };
        await tx.query('SELECT pg_notify($1, $2)', [TOKEN_REVOKED_CHANNEL, revocationPayload({ kind: 'subject', ...rev })]);
        return rev;
      });
    },
    async revokeSession(s, expiresAt) {
      await db.transaction(async (tx) => {
        await tx.query(
          `INSERT INTO session_revocations (issuer, sid, expires_at) VALUES ($1, $2, $3)
           ON CONFLICT (issuer, sid) DO UPDATE SET expires_at = greatest(session_revocations.expires_at, EXCLUDED.expires_at)`,
          [s.issuer, s.sid, expiresAt],
        );
        await tx.query('DELETE FROM session_revocations WHERE expires_at < now()');
        await tx.query('SELECT pg_notify($1, $2)', [TOKEN_REVOKED_CHANNEL, revocationPayload({ kind: 'session', ...s, expiresAt })]);
      });
    },
    async subjects() {
      const r = await db.query<{ issuer: string; subject: string; revoked_before: Date }>('SELECT issuer, subject, revoked_before FROM subject_revocations');
      return r.rows.map((x) => ({ issuer: x.issuer === '' ? null : x.issuer, subject: x.subject, before: x.revoked_before }));
    },
    async sessions() {
      const r = await db.query<{ issuer: string; sid: string; expires_at: Date }>('SELECT issuer, sid, expires_at FROM session_revocations WHERE expires_at > now()');
      return r.rows.map((x) => ({ issuer: x.issuer, sid: x.sid, expiresAt: x.expires_at }));
    },
    async endProviderSessions(accountId) {
      const r = await db.query("DELETE FROM oidc_payloads WHERE payload->>'accountId' = $1", [accountId]);
      return r.rowCount;
    },
    async isRevoked(p) {
      const r = await db.query(
        `SELECT 1 FROM subject_revocations
          WHERE issuer IN ('', $1) AND subject = $2 AND ($3::timestamptz IS NULL OR revoked_before > $3::timestamptz)
         UNION ALL
         SELECT 1 FROM session_revocations WHERE issuer = $1 AND sid = $4 AND expires_at > now()
         LIMIT 1`,
        [p.issuer, p.subject, p.issuedAt === null ? null : new Date(p.issuedAt), p.sessionId],
        'principal_revoked',
      );
      return r.rowCount > 0;
    },
  };
}
