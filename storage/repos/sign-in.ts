// Sign-in storage: minted API tokens (and their revocation), accounts of the embedded
// OpenID Provider, that provider's artefacts (its adapter) and its kept key material.
import type { Db } from '../driver/db.ts';
import { STO_ERR, StorageError, isUniqueViolation } from '../errors.ts';
import type { Account, MintedToken, OidcArtefactStore } from '../../proto/sign-in.ts';

/** NOTIFY channel announcing a revoked token; payload = its jti. */
export const TOKEN_REVOKED_CHANNEL = 'api_token_revoked';

export interface MintedTokenRepo {
  record(t: MintedToken): Promise<void>;
  /** Marks the token revoked and announces it; false when no such token was minted. Revoking twice is not an error. */
  revoke(jti: string): Promise<boolean>;
  /** Revoked tokens that have not expired yet (the deny list worth keeping in memory). */
  revokedUnexpired(): Promise<{ jti: string; expiresAt: Date }[]>;
  isRevoked(jti: string): Promise<boolean>;
}

export function createMintedTokenRepo(db: Db): MintedTokenRepo {
  return {
    async record(t) {
      await db.query('INSERT INTO api_tokens (jti, role, subject, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5)', [t.jti, t.role, t.subject, t.issuedAt, t.expiresAt]);
    },
    async revoke(jti) {
      return db.transaction(async (tx) => {
        const r = await tx.query<{ jti: string }>('UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE jti = $1 RETURNING jti', [jti]);
        if (r.rowCount === 0) return false;
        // Delivered at COMMIT, so no other instance hears of it before it is true.
        await tx.query('SELECT pg_notify($1, $2)', [TOKEN_REVOKED_CHANNEL, jti]);
        return true;
      });
    },
    async revokedUnexpired() {
      const r = await db.query<{ jti: string; expires_at: Date }>('SELECT jti, expires_at FROM api_tokens WHERE revoked_at IS NOT NULL AND expires_at > now()');
      return r.rows.map((x) => ({ jti: x.jti, expiresAt: x.expires_at }));
    },
    async isRevoked(jti) {
      const r = await db.query('SELECT 1 FROM api_tokens WHERE jti = $1 AND revoked_at IS NOT NULL', [jti], 'api_token_revoked');
      return r.rowCount > 0;
    },
  };
}

export interface AccountRepo {
  /** STO_ERR_CONFLICT when the username or the subject is taken. */
  create(a: Omit<Account, 'createdAt'>): Promise<Account>;
  byUsername(username: string): Promise<Account | null>;
  bySubject(subject: string): Promise<Account | null>;
  list(): Promise<Account[]>;
  /** The removed account's subject; null when there is no such account. */
  remove(username: string): Promise<string | null>;
  /** Replaces the password hash; the account's subject, or null when there is no such account. */
  setPassword(username: string, passwordHash: string): Promise<string | null>;
}

type AccountDbRow = { username: string; subject: string; role: string; password_hash: string; created_at: Date };
const toAccount = (r: AccountDbRow): Account => ({ username: r.username, subject: r.subject, role: r.role, passwordHash: r.password_hash, createdAt: r.created_at });
const ACCOUNT_COLS = 'username, subject, role, password_hash, created_at';

export function createAccountRepo(db: Db): AccountRepo {
  return {
    async create(a) {
      try {
        const r = await db.query<AccountDbRow>(
          `INSERT INTO accounts (username, subject, role, password_hash) VALUES ($1, $2, $3, $4) RETURNING ${ACCOUNT_COLS}`,
          [a.username, a.subject, a.role, a.passwordHash],
        );
        return toAccount(r.rows[0]!);
      } catch (err) {
        if (isUniqueViolation(err)) throw new StorageError(STO_ERR.CONFLICT, `an account with username ${a.username} or subject ${a.subject} exists`);
        throw err;
      }
    },
    async byUsername(username) {
      const r = await db.query<AccountDbRow>(`SELECT ${ACCOUNT_COLS} FROM accounts WHERE username = $1`, [username]);
      return r.rows[0] ? toAccount(r.rows[0]) : null;
    },
    async bySubject(subject) {
      const r = await db.query<AccountDbRow>(`SELECT ${ACCOUNT_COLS} FROM accounts WHERE subject = $1`, [subject]);
      return r.rows[0] ? toAccount(r.rows[0]) : null;
    },
    async list() {
      const r = await db.query<AccountDbRow>(`SELECT ${ACCOUNT_COLS} FROM accounts ORDER BY username`);
      return r.rows.map(toAccount);
    },
    async remove(username) {
      const r = await db.query<{ subject: string }>('DELETE FROM accounts WHERE username = $1 RETURNING subject', [username]);
      return r.rows[0]?.subject ?? null;
    },
    async setPassword(username, passwordHash) {
      const r = await db.query<{ subject: string }>('UPDATE accounts SET password_hash = $2 WHERE username = $1 RETURNING subject', [username, passwordHash]);
      return r.rows[0]?.subject ?? null;
    },
  };
}

/** The embedded provider's artefact store, and its housekeeping. */
export interface OidcStore extends OidcArtefactStore {
  /** Deletes artefacts expired for longer than `graceS`; returns how many. */
  prune(graceS: number): Promise<number>;
  /** The material stored under `name` (opened), or undefined when there is none. */
  readKeyMaterial(name: string): Promise<unknown>;
  /**
   * Replaces the material under `name` with `next(current)` in one transaction (the row
   * locked: concurrent updates run one after the other) and announces it on
   * OIDC_KEYS_CHANNEL at commit. Returns what was stored.
   */
  updateKeyMaterial<T>(name: string, next: (current: unknown) => T): Promise<T>;
  /**
   * Seals every row still in plain text (written by an earlier version) when the codec
   * seals, and opens every sealed one (a wrong key fails here, at start). One transaction
   * with the rows locked: processes starting at once seal each row once. Returns the names sealed.
   */
  sealKeyMaterial(): Promise<string[]>;
}

/** NOTIFY channel announcing changed provider keys (a rotation); payload = the row's name. */
export const OIDC_KEYS_CHANNEL = 'oidc_keys_changed';

/** How key material is stored: sealed with the key-encryption key, or plain (identity/key-envelope.ts). */
export interface KeyMaterialCodec {
  readonly sealing: boolean;
  seal(name: string, value: unknown): unknown;
  open(name: string, stored: unknown): unknown;
  isSealed(stored: unknown): boolean;
}
const PLAIN: KeyMaterialCodec = { sealing: false, seal: (_n, v) => v, open: (_n, v) => v, isSealed: () => false };

type PayloadRow = { payload: Record<string, unknown>; consumed_at: Date | null };
// An expired artefact is as good as absent (oidc-provider checks exp too, but never sees it).
const LIVE = '(expires_at IS NULL OR expires_at > now())';
const withConsumed = (r: PayloadRow | undefined) =>
  r ? { ...r.payload, ...(r.consumed_at ? { consumed: Math.floor(r.consumed_at.getTime() / 1000) } : {}) } : undefined;

export function createOidcStore(db: Db, codec: KeyMaterialCodec = PLAIN): OidcStore {
  return {
    async upsert(model, id, payload, expiresInS) {
      const p = payload as { grantId?: unknown; userCode?: unknown; uid?: unknown };
      await db.query(
        `INSERT INTO oidc_payloads (model, id, payload, grant_id, user_code, uid, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7::int IS NULL THEN NULL ELSE now() + make_interval(secs => $7::int) END)
         ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id,
           user_code = EXCLUDED.user_code, uid = EXCLUDED.uid, expires_at = EXCLUDED.expires_at`,
        [
          model,
          id,
          JSON.stringify(payload),
          typeof p.grantId === 'string' ? p.grantId : null,
          typeof p.userCode === 'string' ? p.userCode : null,
          typeof p.uid === 'string' ? p.uid : null,
          expiresInS === undefined ? null : Math.ceil(expiresInS),
        ],
      );
    },
    async find(model, id) {
      const r = await db.query<PayloadRow>(`SELECT payload, consumed_at FROM oidc_payloads WHERE model = $1 AND id = $2 AND ${LIVE}`, [model, id]);
      return withConsumed(r.rows[0]);
    },
    async findByUid(model, uid) {
      const r = await db.query<PayloadRow>(`SELECT payload, consumed_at FROM oidc_payloads WHERE model = $1 AND uid = $2 AND ${LIVE}`, [model, uid]);
      return withConsumed(r.rows[0]);
    },
    async findByUserCode(model, userCode) {
      const r = await db.query<PayloadRow>(`SELECT payload, consumed_at FROM oidc_payloads WHERE model = $1 AND user_code = $2 AND ${LIVE}`, [model, userCode]);
      return withConsumed(r.rows[0]);
    },
    async consume(model, id) {
      await db.query('UPDATE oidc_payloads SET consumed_at = now() WHERE model = $1 AND id = $2', [model, id]);
    },
    async destroy(model, id) {
      await db.query('DELETE FROM oidc_payloads WHERE model = $1 AND id = $2', [model, id]);
    },
    async revokeByGrantId(grantId) {
      await db.query('DELETE FROM oidc_payloads WHERE grant_id = $1', [grantId]);
    },
    async keyMaterial<T>(name: string, make: () => Promise<T>) {
      const read = async () => {
        const row = (await db.query<{ material: unknown }>('SELECT material FROM oidc_keys WHERE name = $1', [name])).rows[0];
        return row ? (codec.open(name, row.material) as T) : undefined;
      };
      const have = await read();
      if (have !== undefined) return have;
      // Two processes starting at once: both make, one insert wins, both use the winner.
      await db.query('INSERT INTO oidc_keys (name, material) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [name, JSON.stringify(codec.seal(name, await make()))]);
      const won = await read();
      if (won === undefined) throw new StorageError(STO_ERR.NOT_FOUND, `key material ${name} could not be stored`);
      return won;
    },
    async readKeyMaterial(name) {
      const row = (await db.query<{ material: unknown }>('SELECT material FROM oidc_keys WHERE name = $1', [name])).rows[0];
      return row ? codec.open(name, row.material) : undefined;
    },
    async updateKeyMaterial<T>(name: string, next: (current: unknown) => T) {
      return db.transaction(async (tx) => {
        const row = (await tx.query<{ material: unknown }>('SELECT material FROM oidc_keys WHERE name = $1 FOR UPDATE', [name])).rows[0];
        const value = next(row ? codec.open(name, row.material) : undefined);
        await tx.query('INSERT INTO oidc_keys (name, material) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET material = EXCLUDED.material', [name, JSON.stringify(codec.seal(name, value))]);
        // Delivered at COMMIT: the other instances read the new material then.
        await tx.query('SELECT pg_notify($1, $2)', [OIDC_KEYS_CHANNEL, name]);
        return value;
      });
    },
    async sealKeyMaterial() {
      return db.transaction(async (tx) => {
        const rows = (await tx.query<{ name: string; material: unknown }>('SELECT name, material FROM oidc_keys ORDER BY name FOR UPDATE')).rows;
        const sealed: string[] = [];
        for (const r of rows) {
          const value = codec.open(r.name, r.material);
          if (!codec.sealing || codec.isSealed(r.material)) continue;
          await tx.query('UPDATE oidc_keys SET material = $2 WHERE name = $1', [r.name, JSON.stringify(codec.seal(r.name, value))]);
          sealed.push(r.name);
        }
        return sealed;
      });
    },
    async prune(graceS) {
      const r = await db.query('DELETE FROM oidc_payloads WHERE expires_at < now() - make_interval(secs => $1::int)', [graceS]);
      return r.rowCount;
    },
  };
}
