// A recipient's webhooks (README "For recipients" → "Webhooks"): each endpoint, its state,
// last delivery and failures. Made and deleted through the API (POST/DELETE /v1/webhooks);
// the secret is shown once, by the API, not here.
import { html } from 'htm/preact';
import { get } from './api.js';
import { useLoad } from './util.js';
/** @import { Messages } from './i18n.js' */

/**
 * @typedef {{ id: string, url: string, grantIds: string[] | null, events: string[], status: 'active' | 'disabled', disabledReason: string | null,
 *   createdAt: string, lastSuccessAt: string | null, lastFailureAt: string | null, lastFailure: string | null, consecutiveFailures: number, nextAttemptAt: string | null }} WebhookView
 */

/** @param {{ m: Messages }} props */
export function WebhookList({ m }) {
  const r = useLoad(() => /** @type {Promise<{ webhooks: WebhookView[] }>} */ (get('/v1/webhooks')), []);
  // Webhooks need PostgreSQL: on a gateway without them (503) the section is left out.
  if (r.loading || r.error || !r.data) return null;
  const hooks = r.data.webhooks;
  /** @param {WebhookView} w */
  const state = (w) => (w.status === 'disabled' ? m.t('webhookDisabled', { reason: w.disabledReason ?? '' }) : w.consecutiveFailures > 0 ? m.t('webhookRetrying', { n: w.consecutiveFailures }) : m.t('webhookActive'));
  return html`<section aria-labelledby="webhooks-h">
    <h2 id="webhooks-h">${m.t('webhooksTitle')}</h2>
    ${hooks.length === 0 && html`<p id="webhooks-empty">${m.t('noWebhooks')}</p>`}
    ${hooks.length > 0 &&
    html`<table id="webhooks">
      <thead><tr><th scope="col">${m.t('webhookUrl')}</th><th scope="col">${m.t('status')}</th><th scope="col">${m.t('webhookLastSuccess')}</th><th scope="col">${m.t('webhookLastFailure')}</th></tr></thead>
      <tbody>${hooks.map(
        (w) => html`<tr class=${`webhook-${w.status}`}>
          <td><code>${w.url}</code><br /><small>${w.grantIds ? m.t('webhookGrants', { n: w.grantIds.length }) : m.t('webhookAllGrants')}</small></td>
          <td>${state(w)}</td>
          <td>${w.lastSuccessAt ? m.dateTime(w.lastSuccessAt) : '–'}</td>
          <td>${w.lastFailureAt ? html`${m.dateTime(w.lastFailureAt)}<br /><small>${w.lastFailure}</small>` : '–'}</td>
        </tr>`,
      )}</tbody>
    </table>`}
  </section>`;
}
