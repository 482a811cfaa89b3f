// A webhook service for route tests (api/routes/webhooks.ts): one endpoint, FAKE_WEBHOOK_ID,
// of the third party `tp-1`, always there (stateless: each cell sees the same world); URLs
// on https://hooks.example/ are accepted, every other is refused as the real policy would.
import type { Webhook, WebhookService } from '../../../proto/webhooks.ts';

export const FAKE_WEBHOOK_ID = '5d0c8a8e-6a53-4d3e-9a7e-1f3c2b1a0f99';
export const FAKE_WEBHOOK_OWNER = 'tp-1';

const base = (over: Partial<Webhook> = {}): Webhook => ({
  id: FAKE_WEBHOOK_ID,
  recipientId: FAKE_WEBHOOK_OWNER,
  recipientRole: 'third_party',
  url: 'https://hooks.example/cardata',
  grantIds: null,
  events: ['records', 'grants'],
  status: 'active',
  disabledReason: null,
  createdAt: new Date('2026-01-01T00:00:00Z'),
  lastSuccessAt: null,
  lastFailureAt: null,
  lastFailure: null,
  consecutiveFailures: 0,
  nextAttemptAt: null,
  ...over,
});

export function createFakeWebhooks(): WebhookService {
  const mine = (recipientId: string, role: string) => recipientId === FAKE_WEBHOOK_OWNER && role === 'third_party';
  return {
    async create(w) {
      return base({ ...w, id: '6e1d9b9f-7b64-4e4f-8b8f-2a4d3c2b1a00', createdAt: new Date() });
    },
    list: async (recipientId, role) => (mine(recipientId, role) ? [base()] : []),
    get: async (id, recipientId, role) => (id === FAKE_WEBHOOK_ID && mine(recipientId, role) ? base() : null),
    backlog: async () => ({ records: 0, oldestUndeliveredAt: null }),
    remove: async (id, recipientId, role) => id === FAKE_WEBHOOK_ID && mine(recipientId, role),
    replay: async (id, recipientId, role) => (id === FAKE_WEBHOOK_ID && mine(recipientId, role) ? 1 : null),
    checkUrl: async (url) => (url.startsWith('https://hooks.example/') ? null : 'its host resolves to 10.0.0.1 is in a loopback, private, link-local, metadata or reserved range'),
  };
}
