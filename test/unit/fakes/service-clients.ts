// A service client store in memory for the route tests: honours ServiceClientStore
// (proto/service-clients.ts) as storage/repos/service-clients.ts does (NOT_FOUND for an unknown recipient).
import type { ServiceClient, ServiceClientCredentials, ServiceClientStore } from '../../../proto/service-clients.ts';

export function createFakeServiceClients(recipientExists: (id: string) => boolean, notFound: (msg: string) => Error) {
  const clients = new Map<string, ServiceClientCredentials>();
  const removed: string[] = [];
  /** A client of `recipientId` to delete, registered before any request. */
  const seed = (clientId: string, recipientId: string) =>
    clients.set(clientId, { clientId, recipientId, authMethod: 'client_secret_basic', createdAt: new Date(0), recipientRole: 'workshop', secretHash: 'scrypt$seeded', jwks: null });
  const store: ServiceClientStore = {
    async create(c) {
      if (!recipientExists(c.recipientId)) throw notFound(`recipient ${c.recipientId} not found`);
      const made: ServiceClientCredentials = { clientId: c.clientId, recipientId: c.recipientId, authMethod: c.authMethod, createdAt: new Date(), recipientRole: 'workshop', secretHash: c.secretHash, jwks: c.jwks };
      clients.set(c.clientId, made);
      return made;
    },
    async list(recipientId) {
      if (!recipientExists(recipientId)) return null;
      return [...clients.values()].filter((c) => c.recipientId === recipientId).map(({ clientId, recipientId: r, authMethod, createdAt }): ServiceClient => ({ clientId, recipientId: r, authMethod, createdAt }));
    },
    async find(clientId) {
      return clients.get(clientId) ?? null;
    },
    async remove(recipientId, clientId) {
      if (!recipientExists(recipientId)) return 'no-recipient';
      const c = clients.get(clientId);
      if (!c || c.recipientId !== recipientId) return 'no-client';
      clients.delete(clientId);
      removed.push(clientId);
      return 'removed';
    },
  };
  return { store, clients, removed, seed };
}
