// Workshop and third-party pages: the grants made to them, and the granted data
// (for a workshop: the consumption counters of the visit).
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { get, openStream, post, request } from './api.js';
import { useLoad, Problem } from './util.js';
import { DownloadForm } from './pages.js';
import { LatestTable } from './vehicle.js';
import { WebhookList } from './webhooks.js';
/** @import { Messages } from './i18n.js' */

/** @param {{ m: Messages }} props */
export function RecipientHome({ m }) {
  const r = useLoad(() => /** @type {Promise<GrantList>} */ (get('/v1/grants')), []);
  const [code, setCode] = useState('');
  const [err, setErr] = useState(/** @type {Error | null} */ (null));
  const redeem = async (/** @type {Event} */ e) => {
    e.preventDefault();
    setErr(null);
    try {
      /** @type {Grant} */
      const g = await post('/v1/workshop/checkins', { code });
      location.hash = `#/g/${g.id}`;
    } catch (x) {
      setErr(/** @type {Error} */ (x));
    }
  };
  return html`<h1 tabindex="-1">${m.t('sharedWithYou')}</h1>
    ${r.loading && html`<p>${m.t('loading')}</p>`}
    <${Problem} m=${m} error=${r.error} />
    ${r.data && r.data.grants.length === 0 && html`<p>${m.t('noShared')}</p>`}
    ${r.data && r.data.grants.length > 0 && html`<ul class="cards" id="my-grants">
      ${r.data.grants.map((g) => html`<li><a class="card" href=${`#/g/${g.id}`}><strong class="vin">${g.vin}</strong><span>${g.categories.map((c) => m.t(`cat_${c}`)).join(', ')}${g.fields ? ` (${m.t('onlyFields', { list: g.fields.map((f) => m.label(f)).join(', ') })})` : ''} · ${g.purpose}</span><span>${m.t('until')}: ${m.dateTime(g.expiresAt)}</span></a></li>`)}
    </ul>`}
    <section aria-labelledby="redeem-h">
      <h2 id="redeem-h">${m.t('redeemTitle')}</h2>
      <form class="inline" onSubmit=${redeem}>
        <label for="redeem-code">${m.t('code')}</label>
        <input id="redeem-code" autocomplete="off" required value=${code} onInput=${(/** @type {InputEvt} */ e) => setCode(e.currentTarget.value)} />
        <button type="submit">${m.t('redeem')}</button>
      </form>
      ${err && html`<p class="error" role="alert">${m.t('error', { msg: err.message })}</p>`}
    </section>
    <${WebhookList} m=${m} />`;
}

/**
 * The grant's last `n` records of the past week.
 * @param {string} id
 * @param {number} n
 * @returns {Promise<TelemetryRecord[]>}
 */
async function tail(id, n) {
  const from = new Date(Date.now() - 7 * 86_400_000).toISOString();
  /** @type {Response} */
  const res = await request('GET', `/v1/grants/${id}/cardata?format=ndjson&from=${from}`, undefined, { raw: true });
  const lines = (await res.text()).trim().split('\n').filter(Boolean);
  return lines.slice(-n).map((l) => /** @type {TelemetryRecord} */ (JSON.parse(l)));
}

/** @param {{ m: Messages, id: string }} props */
export function GrantPage({ m, id }) {
  const grants = useLoad(() => /** @type {Promise<GrantList>} */ (get('/v1/grants')), [id]);
  const g = grants.data?.grants.find((x) => x.id === id) ?? null;
  const recent = useLoad(() => (g && g.access.includes('history') ? tail(id, 1) : Promise.resolve([])), [id, !!g]);
  const consumption = useLoad(
    () => (g && g.recipientRole === 'workshop' && g.categories.includes('consumption') ? /** @type {Promise<WorkshopConsumption>} */ (get(`/v1/workshop/vehicles/${g.vin}/consumption`)) : Promise.resolve(null)),
    [id, !!g],
  );
  const [record, setRecord] = useState(/** @type {TelemetryRecord | null} */ (null));
  const [live, setLive] = useState(false);
  useEffect(() => setRecord(recent.data?.[recent.data.length - 1] ?? null), [recent.data]);
  useEffect(() => {
    if (!g || !g.access.includes('stream')) return;
    return openStream(`/v1/grants/${id}/stream`, {
      onEvent: (ev) => {
        if (ev.event === 'record') setRecord(/** @type {TelemetryRecord} */ (JSON.parse(ev.data)));
      },
      onState: (state) => setLive(state === 'live'),
    });
  }, [id, !!g]);
  if (grants.loading) return html`<h1 tabindex="-1">${m.t('grantedData')}</h1><p>${m.t('loading')}</p>`;
  if (!g) return html`<h1 tabindex="-1">${m.t('grantedData')}</h1><${Problem} m=${m} error=${grants.error} />${!grants.error && html`<p>${m.t('noShared')}</p>`}`;
  const latest = consumption.data?.latest?.consumption;
  const avg = latest && latest.totalDistanceKm ? (latest.totalFuelConsumedL / latest.totalDistanceKm) * 100 : null;
  return html`<h1 tabindex="-1">${m.t('grantedData')} <span class="vin">${g.vin}</span></h1>
    <p class="muted">${m.t('grantOf', { id: g.id, vin: g.vin })} · ${g.categories.map((c) => m.t(`cat_${c}`)).join(', ')} · ${m.t('purpose')}: ${g.purpose} · ${m.t('until')}: ${m.dateTime(g.expiresAt)}</p>
    ${consumption.data &&
    html`<section aria-labelledby="visit-h">
      <h2 id="visit-h">${m.t('consumptionVisit')}</h2>
      ${consumption.data.latest ? html`<p class="muted">${m.t('latestAt', { time: m.dateTime(consumption.data.latest.recordedAt) })}</p><${LatestTable} m=${m} id="visit-values" record=${{ consumption: consumption.data.latest.consumption }} />` : html`<p>${m.t('noData')}</p>`}
      ${avg !== null && html`<p>${m.t('avgLifetime', { value: m.unit('avgConsumption', avg) })}</p>`}
    </section>`}
    <${Problem} m=${m} error=${consumption.error} />
    <section aria-labelledby="glatest-h">
      <h2 id="glatest-h">${m.t('latest')} <span class=${live ? 'badge live' : 'badge'}>${live ? m.t('live') : ''}</span></h2>
      <${Problem} m=${m} error=${recent.error} />
      ${record ? html`<p class="muted">${m.t('latestAt', { time: m.dateTime(record.recordedAt) })}</p><${LatestTable} m=${m} id="grant-values" record=${record} />` : !recent.loading && html`<p>${m.t('noData')}</p>`}
    </section>
    ${g.access.includes('history') &&
    html`<section aria-labelledby="gdl-h">
      <h2 id="gdl-h">${m.t('download')}</h2>
      <${DownloadForm} m=${m} base=${`/v1/grants/${id}/cardata`} idPrefix="gdl" categories=${g.categories} />
    </section>`}`;
}
