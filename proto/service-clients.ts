// Service clients: a recipient (proto/grants.ts) signing in as itself at the embedded OpenID
// Provider with OAuth 2.0 client credentials (RFC 6749 §4.4). Storage keeps them, the
// provider looks them up per request, the admin API registers and deletes them. Types only.

/** How a service client authenticates at the token endpoint (RFC 7591 §2 token_endpoint_auth_method). */
export type ServiceClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
export const SERVICE_CLIENT_AUTH_METHODS: readonly ServiceClientAuthMethod[] = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'];

/** A registered service client, as listed (never its secret). */
export interface ServiceClient {
  clientId: string;
  recipientId: string;
  authMethod: ServiceClientAuthMethod;
  createdAt: Date;
}

/** What the provider needs to authenticate a client and fill its tokens. */
export interface ServiceClientCredentials extends ServiceClient {
  /** The recipient's role: the tokens' role. */
  recipientRole: string;
  /** scrypt hash of the secret (identity/secrets.ts), for the client_secret_* methods. */
  secretHash: string | null;
  /** The client's public keys (RFC 7517 JWK Set), for private_key_jwt. */
  jwks: { keys: Record<string, unknown>[] } | null;
}

/** The revocation written with a client's deletion: every token it holds carries `sid`. */
export interface ServiceClientRevocation {
  issuer: string;
  sid: string;
  /** When the last token it could have been issued expires (the revocation may go then). */
  expiresAt: Date;
}

export interface ServiceClientStore {
  /** Registers a client for an existing recipient. Rejects NOT_FOUND when the recipient is unknown. */
  create(c: { clientId: string; recipientId: string; authMethod: ServiceClientAuthMethod; secretHash: string | null; jwks: { keys: Record<string, unknown>[] } | null }): Promise<ServiceClient>;
  /** A recipient's clients, oldest first; null when the recipient is unknown. */
  list(recipientId: string): Promise<ServiceClient[] | null>;
  find(clientId: string): Promise<ServiceClientCredentials | null>;
  /**
   * Deletes the client and, in the same transaction, refuses every token it holds (the
   * revocation stored and announced to every instance). 'no-recipient' / 'no-client' when
   * there is nothing to delete.
   */
  remove(recipientId: string, clientId: string, revocation: ServiceClientRevocation): Promise<'removed' | 'no-recipient' | 'no-client'>;
}
