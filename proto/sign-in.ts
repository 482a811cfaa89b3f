// Sign-in as it crosses the layers: people's accounts at the embedded OpenID Provider, the
// API tokens the gateway minted, and the store of that provider's artefacts, which storage
// keeps, identity/provider.ts uses and the API's ports narrow. Types only.

/** A person's account at the embedded OpenID Provider. */
export interface Account {
  username: string;
  subject: string;
  role: string;
  passwordHash: string;
  createdAt: Date;
}

/** A token the gateway minted (sign-in), recorded so that it can be revoked. */
export interface MintedToken {
  jti: string;
  role: string;
  subject: string;
  issuedAt: Date;
  expiresAt: Date;
}

/** Storage of the provider's artefacts (sessions, interactions, codes, grants, refresh tokens) and key material. */
export interface OidcArtefactStore {
  upsert(model: string, id: string, payload: Record<string, unknown>, expiresInS: number | undefined): Promise<void>;
  find(model: string, id: string): Promise<Record<string, unknown> | undefined>;
  findByUid(model: string, uid: string): Promise<Record<string, unknown> | undefined>;
  findByUserCode(model: string, userCode: string): Promise<Record<string, unknown> | undefined>;
  consume(model: string, id: string): Promise<void>;
  destroy(model: string, id: string): Promise<void>;
  revokeByGrantId(grantId: string): Promise<void>;
  /** The material stored under `name`; made by `make` and stored by whichever process asks first. */
  keyMaterial<T>(name: string, make: () => Promise<T>): Promise<T>;
}

/** Every token of `subject` (at `issuer`; null: at every trusted issuer) issued before `before` is refused. */
export interface SubjectRevocation {
  issuer: string | null;
  subject: string;
  before: Date;
}

/** Every token issued in sign-in session `sid` of `issuer` is refused (sign-out). */
export interface SessionRevocation {
  issuer: string;
  sid: string;
}

/** The revocations a token can meet, as announced to every instance (one NOTIFY payload each). */
export type Revocation =
  | { kind: 'token'; jti: string }
  | ({ kind: 'subject' } & SubjectRevocation)
  /** `expiresAt`: when the session's last token expires (the revocation may be forgotten then). */
  | ({ kind: 'session'; expiresAt?: Date } & SessionRevocation);
