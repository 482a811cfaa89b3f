// Service clients of recipients (migration 013): registered by the operator, looked up by
// the embedded OpenID Provider on each token request, deleted with the revocation of every
// token they hold in one transaction (the NOTIFY on api_token_revoked goes out at COMMIT).
import type { Db } from '../driver/db.ts';
import { STO_ERR, StorageError } from '../errors.ts';
import type { ServiceClient, ServiceClientAuthMethod, ServiceClientStore } from '../../proto/service-clients.ts';
import { TOKEN_REVOKED_CHANNEL } from './sign-in.ts';
import { revocationPayload } from './revocations.ts';

export type ServiceClientRepo = ServiceClientStore;

interface Row {
  client_id: string;
  recipient_id: string;
  auth_method: ServiceClientAuthMethod;
  created_at: Date;
}
const out = (x: Row): ServiceClient => ({ clientId: x.client_id, recipientId: x.recipient_id, authMethod: x.auth_method, createdAt: x.created_at });

export function createServiceClientRepo(db: Db): ServiceClientRepo {
  return {
    async create(c) {
      return db.transaction(async (tx) => {
        // The recipient's row locked: a client is never registered for a recipient being deleted.
        const r = await tx.query('SELECT 1 FROM recipients WHERE id = $1 FOR SHARE', [c.recipientId]);
        if (r.rowCount === 0) throw new StorageError(STO_ERR.NOT_FOUND, `recipient ${c.recipientId} not found`);
        const ins = await tx.query<Row>(
          `INSERT INTO service_clients (client_id, recipient_id, auth_method, secret_hash, jwks) VALUES ($1, $2, $3, $4, $5)
           RETURNING client_id, recipient_id, auth_method, created_at`,
          [c.clientId, c.recipientId, c.authMethod, c.secretHash, c.jwks === null ? null : JSON.stringify(c.jwks)],
        );
        return out(ins.rows[0]!);
      });
    },
    async list(recipientId) {
      const known = await db.query('SELECT 1 FROM recipients WHERE id = $1', [recipientId]);
      if (known.rowCount === 0) return null;
      const r = await db.query<Row>('SELECT client_id, recipient_id, auth_method, created_at FROM service_clients WHERE recipient_id = $1 ORDER BY created_at, client_id', [recipientId]);
      return r.rows.map(out);
    },
    async find(clientId) {
      const r = await db.query<Row & { role: string; secret_hash: string | null; jwks: { keys: Record<string, unknown>[] } | null }>(
        `SELECT c.client_id, c.recipient_id, c.auth_method, c.created_at, c.secret_hash, c.jwks, r.role
           FROM service_clients c JOIN recipients r ON r.id = c.recipient_id WHERE c.client_id = $1`,
        [clientId],
        'service_client_find',
      );
      const x = r.rows[0];
      return x ? { ...out(x), recipientRole: x.role, secretHash: x.secret_hash, jwks: x.jwks } : null;
    },
    async remove(recipientId, clientId, rev) {
      return db.transaction(async (tx) => {
        const d = await tx.query('DELETE FROM service_clients WHERE recipient_id = $1 AND client_id = $2', [recipientId, clientId]);
        if (d.rowCount === 0) {
          const known = await tx.query('SELECT 1 FROM recipients WHERE id = $1', [recipientId]);
          return known.rowCount === 0 ? 'no-recipient' : 'no-client';
        }
        // Its tokens carry the client's sid: refused like a signed-out session's, until the last has expired.
        await tx.query(
          `INSERT INTO session_revocations (issuer, sid, expires_at) VALUES ($1, $2, $3)
           ON CONFLICT (issuer, sid) DO UPDATE SET expires_at = greatest(session_revocations.expires_at, EXCLUDED.expires_at)`,
          [rev.issuer, rev.sid, rev.expiresAt],
        );
        await tx.query('SELECT pg_notify($1, $2)', [TOKEN_REVOKED_CHANNEL, revocationPayload({ kind: 'session', issuer: rev.issuer, sid: rev.sid, expiresAt: rev.expiresAt })]);
        return 'removed';
      });
    },
  };
}
