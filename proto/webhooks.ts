// Recipients' webhooks (README "For recipients", docs/webhooks.md): the endpoint as stored
// and answered, and the service the API's routes use (implemented by webhooks/, handed in
// by app/). Types only.
import type { RecipientRole } from './grants.ts';

/** What an endpoint receives: the grants' records, and/or their grant.* events. */
export type WebhookEventKind = 'records' | 'grants';
export const WEBHOOK_EVENT_KINDS: readonly WebhookEventKind[] = ['records', 'grants'];

export type WebhookStatus = 'active' | 'disabled';

export interface Webhook {
  id: string;
  recipientId: string;
  recipientRole: RecipientRole;
  url: string;
  /** null: every grant made to the recipient, present and future. */
  grantIds: string[] | null;
  events: WebhookEventKind[];
  status: WebhookStatus;
  disabledReason: string | null;
  createdAt: Date;
  lastSuccessAt: Date | null;
  lastFailureAt: Date | null;
  lastFailure: string | null;
  consecutiveFailures: number;
  /** No delivery before this (backoff); null: not waiting. */
  nextAttemptAt: Date | null;
}

/** What an endpoint has not received yet. */
export interface WebhookBacklog {
  /** Records committed and not yet delivered (of the grants still delivered to). */
  records: number;
  /** Commit time of the oldest of them; null: none. */
  oldestUndeliveredAt: Date | null;
}

export interface NewWebhook {
  recipientId: string;
  recipientRole: RecipientRole;
  url: string;
  /** Standard Webhooks key, `whsec_<base64>`. */
  secret: string;
  grantIds: string[] | null;
  events: WebhookEventKind[];
}

/** The webhooks of recipients, as the API's routes use them. */
export interface WebhookService {
  /** Stores the endpoint (and, per grant it names or the recipient holds now, a delivery cursor at the present). */
  create(w: NewWebhook): Promise<Webhook>;
  /** The recipient's endpoints, oldest first. */
  list(recipientId: string, role: RecipientRole): Promise<Webhook[]>;
  /** The recipient's endpoint `id`, or null (another's, unknown: the same). */
  get(id: string, recipientId: string, role: RecipientRole): Promise<Webhook | null>;
  backlog(id: string): Promise<WebhookBacklog>;
  /** Deletes the recipient's endpoint; false: no such endpoint of the recipient. */
  remove(id: string, recipientId: string, role: RecipientRole): Promise<boolean>;
  /**
   * Redelivers the records measured since `fromMs` of the endpoint's grants (or of
   * `grantId` alone), in commit order, before going on; the number of grants replayed,
   * or null when the endpoint (or that grant of it) is not the recipient's.
   */
  replay(id: string, recipientId: string, role: RecipientRole, fromMs: number, grantId: string | null): Promise<number | null>;
  /** Why `url` may not be an endpoint (https, the address ranges), or null when it may. */
  checkUrl(url: string): Promise<string | null>;
}
