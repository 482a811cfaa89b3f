// Owner pages: sharing (grants, receipts, workshop check-in code), access log,
// download, and the data catalogue.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { del, get, post, request } from './api.js';
import { useLoad, Problem } from './util.js';
import { PURPOSES_NL } from './i18n.js';
/** @import { Messages } from './i18n.js' */

const CATS = ['technical', 'consumption', 'location'];

/**
 * Saves a Blob under a file name, through a temporary link.
 * @param {Blob} blob
 * @param {string} name
 */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** @type {(res: Response, fallback: string) => string} */
const fileName = (res, fallback) => /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? fallback;

/**
 * Downloads `path` with progress: bytes so far and, for NDJSON/CSV, records so far
 * (lines counted as they arrive); the file is saved when complete.
 * @param {string} path
 * @param {'ndjson' | 'csv' | 'zip'} format
 * @param {(progress: { bytes: number, lines: number }) => void} onProgress
 * @returns {Promise<{ bytes: number, records: number | null }>}
 */
export async function downloadWithProgress(path, format, onProgress) {
  /** @type {Response & { body: ReadableStream<Uint8Array<ArrayBuffer>> }} */
  const res = await request('GET', path, undefined, { raw: true });
  const reader = res.body.getReader();
  /** @type {Uint8Array<ArrayBuffer>[]} */
  const chunks = [];
  let bytes = 0;
  let lines = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    bytes += value.length;
    if (format !== 'zip') for (let i = 0; i < value.length; i++) if (value[i] === 10) lines++;
    onProgress({ bytes, lines });
  }
  const records = format === 'ndjson' ? lines : format === 'csv' ? Math.max(0, lines - 1) : null;
  const type = { ndjson: 'application/x-ndjson', csv: 'text/csv', zip: 'application/zip' }[format];
  saveBlob(new Blob(chunks, { type }), fileName(res, `cardata.${format}`));
  return { bytes, records };
}

/** @param {{ m: Messages, value: string[], onChange: (value: string[]) => void, idPrefix: string, options?: string[], below?: (category: string) => unknown }} props */
function Categories({ m, value, onChange, idPrefix, options = CATS, below }) {
  return html`<fieldset class="cats">
    <legend>${m.t('categories')}</legend>
    ${options.map((c) => html`<div class="check">
      <input type="checkbox" id=${`${idPrefix}-${c}`} checked=${value.includes(c)} onChange=${(/** @type {InputEvt} */ e) => onChange(e.currentTarget.checked ? [...value, c] : value.filter((x) => x !== c))} />
      <label for=${`${idPrefix}-${c}`}>${m.t(`cat_${c}`)}</label>
    </div>${below && value.includes(c) ? below(c) : ''}`)}
  </fieldset>`;
}

/** Categories whose fields a grant may pick one by one: the telemetry groups (any other, such as connectivity, is shared whole). */
const PICKABLE = ['technical', 'consumption', 'location'];

/** A field's control id: its catalogue name without the dot (ids with a dot need escaping in selectors). */
const fieldId = (/** @type {string} */ name) => `grant-field-${name.replace('.', '-')}`;

/**
 * The fields of one category, each a checkbox under it (all ticked: the whole category).
 * @param {{ m: Messages, category: string, fields: Catalogue['fields'], excluded: string[], onChange: (excluded: string[]) => void }} props
 */
function FieldPicker({ m, category, fields, excluded, onChange }) {
  const mine = PICKABLE.includes(category) ? fields.filter((f) => f.category === category && f.name.startsWith(`${category}.`)) : [];
  if (mine.length === 0) return '';
  return html`<fieldset class="fields" id=${`grant-fields-${category}`}>
    <legend>${m.t('fieldsOf', { cat: m.t(`cat_${category}`) })}</legend>
    ${mine.map((f) => html`<div class="check">
      <input type="checkbox" id=${fieldId(f.name)} data-field=${f.name} checked=${!excluded.includes(f.name)} onChange=${(/** @type {InputEvt} */ e) => onChange(e.currentTarget.checked ? excluded.filter((x) => x !== f.name) : [...excluded, f.name])} />
      <label for=${fieldId(f.name)}>${m.label(f.name) === f.name ? f.description : m.label(f.name)}</label>
    </div>`)}
  </fieldset>`;
}

/**
 * What a grant's `fields` is for these categories: null when every field of them is ticked
 * (the whole categories, fields added later included), else the ticked ones.
 * @param {Catalogue['fields']} catalogue
 * @param {string[]} categories
 * @param {string[]} excluded
 * @returns {string[] | null}
 */
function grantFields(catalogue, categories, excluded) {
  const all = catalogue.filter((f) => PICKABLE.includes(f.category) && categories.includes(f.category) && f.name.startsWith(`${f.category}.`)).map((f) => f.name);
  const chosen = all.filter((f) => !excluded.includes(f));
  return chosen.length === all.length ? null : chosen;
}

/** Field names as the person reads them: labels in their language. */
const fieldList = (/** @type {Messages} */ m, /** @type {string[]} */ names) => names.map((f) => m.label(f)).join(', ');

/** @param {{ m: Messages, vin: string }} props */
export function SharingPage({ m, vin }) {
  const grants = useLoad(() => /** @type {Promise<GrantList>} */ (get(`/v1/vehicles/${vin}/grants`)), [vin]);
  const recipients = useLoad(() => /** @type {Promise<Recipient[] | { recipients?: Recipient[] }>} */ (get('/v1/recipients')), []);
  // The fields to pick from: the public catalogue (GET /v1/catalogue).
  const catalogue = useLoad(() => fetch('/v1/catalogue').then((x) => /** @type {Promise<Catalogue>} */ (x.json())), []);
  const [form, setForm] = useState({ recipientId: '', categories: ['technical', 'consumption'], purpose: '', until: '', dataFrom: '', history: true, stream: true });
  // Fields unticked under their category (none: whole categories).
  const [excluded, setExcluded] = useState(/** @type {string[]} */ ([]));
  const [msg, setMsg] = useState(/** @type {string | null} */ (null));
  const [err, setErr] = useState(/** @type {Error | null} */ (null));
  const [code, setCode] = useState(/** @type {CheckinCode | null} */ (null));
  // A number, or the field's text once edited (sent as Number(visitHours)).
  const [visitHours, setVisitHours] = useState(/** @type {number | string} */ (24));
  const list = recipients.data ? (Array.isArray(recipients.data) ? recipients.data : recipients.data.recipients ?? []) : [];
  const submit = async (/** @type {Event} */ e) => {
    e.preventDefault();
    setErr(null);
    setMsg(null);
    try {
      /** @type {{ recipientId: string, categories: string[], purpose: string, access: (string | false)[], expiresAt?: string, dataFrom?: string, fields?: string[] }} */
      const body = { recipientId: form.recipientId, categories: form.categories, purpose: form.purpose, access: [form.history && 'history', form.stream && 'stream'].filter(Boolean) };
      const fields = grantFields(catalogue.data?.fields ?? [], form.categories, excluded);
      if (fields) body.fields = fields;
      if (form.until) body.expiresAt = new Date(`${form.until}T23:59:59`).toISOString();
      if (form.dataFrom) body.dataFrom = new Date(`${form.dataFrom}T00:00:00`).toISOString();
      /** @type {Grant} */
      const g = await post(`/v1/vehicles/${vin}/grants`, body);
      setMsg(m.t('granted', { who: g.recipientName ?? g.recipientId }));
      setForm({ ...form, purpose: '' });
      grants.reload();
    } catch (x) {
      setErr(/** @type {Error} */ (x));
    }
  };
  const revoke = async (/** @type {Grant} */ g) => {
    setErr(null);
    try {
      await del(`/v1/vehicles/${vin}/grants/${g.id}`);
      setMsg(m.t('revoked'));
      grants.reload();
    } catch (x) {
      setErr(/** @type {Error} */ (x));
    }
  };
  const receipt = async (/** @type {Grant} */ g) => {
    const r = await get(`/v1/vehicles/${vin}/grants/${g.id}/receipt`);
    saveBlob(new Blob([JSON.stringify(r, null, 2)], { type: 'application/json' }), `grant-receipt-${g.id}.json`);
  };
  const checkin = async () => {
    setErr(null);
    try {
      setCode(await post(`/v1/vehicles/${vin}/checkin-codes`, { visitHours: Number(visitHours) }));
    } catch (x) {
      setErr(/** @type {Error} */ (x));
    }
  };
  if (grants.error && /no route/.test(grants.error.message)) return html`<p>${m.t('sharingIntro')}</p><${Problem} m=${m} error=${grants.error} />`;
  return html`<p>${m.t('sharingIntro')}</p>
    <section aria-labelledby="grant-h">
      <h2 id="grant-h">${m.t('grant')}</h2>
      <form onSubmit=${submit} id="grant-form">
        <div class="field">
          <label for="grant-recipient">${m.t('recipient')}</label>
          <select id="grant-recipient" required value=${form.recipientId} onChange=${(/** @type {SelectEvt} */ e) => setForm({ ...form, recipientId: e.currentTarget.value })}>
            <option value="">–</option>
            ${list.map((r) => html`<option value=${r.id}>${r.name} (${r.role})</option>`)}
          </select>
        </div>
        <${Categories} m=${m} idPrefix="grant-cat" value=${form.categories} onChange=${(/** @type {string[]} */ c) => setForm({ ...form, categories: c })}
          below=${catalogue.data ? (/** @type {string} */ c) => html`<${FieldPicker} m=${m} category=${c} fields=${catalogue.data?.fields ?? []} excluded=${excluded} onChange=${setExcluded} />` : undefined} />
        <p class="muted" id="grant-fields-hint">${m.t('fieldsHint')}</p>
        <div class="field">
          <label for="grant-purpose">${m.t('purpose')}</label>
          <input id="grant-purpose" required maxlength="500" value=${form.purpose} onInput=${(/** @type {InputEvt} */ e) => setForm({ ...form, purpose: e.currentTarget.value })} />
        </div>
        <div class="field">
          <label for="grant-until">${m.t('until')}</label>
          <input id="grant-until" type="date" value=${form.until} onInput=${(/** @type {InputEvt} */ e) => setForm({ ...form, until: e.currentTarget.value })} />
        </div>
        <div class="field">
          <label for="grant-data-from">${m.t('dataFrom')}</label>
          <input id="grant-data-from" type="date" aria-describedby="grant-data-from-hint" value=${form.dataFrom} onInput=${(/** @type {InputEvt} */ e) => setForm({ ...form, dataFrom: e.currentTarget.value })} />
          <small id="grant-data-from-hint" class="muted">${m.t('dataFromHint')}</small>
        </div>
        <fieldset class="cats">
          <legend>${m.t('accessKinds')}</legend>
          <div class="check"><input type="checkbox" id="grant-history" checked=${form.history} onChange=${(/** @type {InputEvt} */ e) => setForm({ ...form, history: e.currentTarget.checked })} /><label for="grant-history">${m.t('accessHistory')}</label></div>
          <div class="check"><input type="checkbox" id="grant-stream" checked=${form.stream} onChange=${(/** @type {InputEvt} */ e) => setForm({ ...form, stream: e.currentTarget.checked })} /><label for="grant-stream">${m.t('accessStream')}</label></div>
        </fieldset>
        <button type="submit" class="primary" id="grant-submit">${m.t('grant')}</button>
      </form>
      <p role="status" class="ok" id="grant-status">${msg ?? ''}</p>
      ${err && html`<p class="error" role="alert">${m.t('error', { msg: err.message })}</p>`}
    </section>
    <section aria-labelledby="grants-h">
      <h2 id="grants-h">${m.t('grants')}</h2>
      <${Problem} m=${m} error=${grants.error} />
      ${grants.data && grants.data.grants.length === 0 && html`<p>${m.t('noGrants')}</p>`}
      ${grants.data && grants.data.grants.length > 0 && html`<table id="grants">
        <thead><tr><th scope="col">${m.t('recipient')}</th><th scope="col">${m.t('categories')}</th><th scope="col">${m.t('purpose')}</th><th scope="col">${m.t('until')}</th><th scope="col">${m.t('status')}</th><th scope="col"><span class="sr-only">${m.t('revoke')}</span></th></tr></thead>
        <tbody>${grants.data.grants.map((g) => html`<tr data-grant=${g.id}>
          <td>${g.recipientName ?? g.recipientId}</td>
          <td>${g.categories.map((c) => m.t(`cat_${c}`)).join(', ')}${g.fields ? html`<br /><small class="grant-fields">${m.t('onlyFields', { list: fieldList(m, g.fields) })}</small>` : ''}</td>
          <td>${g.purpose}</td>
          <td>${m.dateTime(g.expiresAt)}</td>
          <td class=${`status-${g.status}`}>${m.t(`status_${g.status}`)}</td>
          <td class="actions">
            ${g.status === 'active' && html`<button type="button" class="danger" onClick=${() => revoke(g)} aria-label=${`${m.t('revoke')}: ${g.recipientName ?? g.recipientId}`}>${m.t('revoke')}</button>`}
            <button type="button" onClick=${() => receipt(g)} aria-label=${`${m.t('receipt')}: ${g.recipientName ?? g.recipientId}`}>${m.t('receipt')}</button>
          </td>
        </tr>`)}</tbody>
      </table>`}
    </section>
    <section aria-labelledby="checkin-h">
      <h2 id="checkin-h">${m.t('checkinTitle')}</h2>
      <p>${m.t('checkinWhat')}</p>
      <div class="field">
        <label for="checkin-hours">${m.t('visitHours')}</label>
        <input id="checkin-hours" type="number" min="1" max="72" step="1" value=${visitHours} onInput=${(/** @type {InputEvt} */ e) => setVisitHours(e.currentTarget.value)} />
      </div>
      <button type="button" id="checkin-make" onClick=${checkin}>${m.t('checkinMake')}</button>
      <p role="status" id="checkin-code">${code ? m.t('checkinCode', { code: code.code, until: m.dateTime(code.expiresAt) }) : ''}</p>
    </section>`;
}

/** @param {{ m: Messages, vin: string }} props */
export function AccessLogPage({ m, vin }) {
  // A read through a grant names the grant: its recipient and purpose say who and why. Both
  // lists load together, so the table appears once, already with the names.
  const r = useLoad(
    () =>
      Promise.all([/** @type {Promise<{ disclosures: Disclosure[] }>} */ (get(`/v1/vehicles/${vin}/disclosures`)), /** @type {Promise<Partial<GrantList>>} */ (get(`/v1/vehicles/${vin}/grants`).catch(() => ({ grants: [] })))]).then(([d, g]) => ({
        disclosures: d.disclosures,
        grants: g.grants ?? [],
      })),
    [vin],
  );
  /** @type {Map<string | null, Grant>} */
  const byId = new Map((r.data?.grants ?? []).map((g) => [g.id, g]));
  return html`<p>${m.t('accessIntro')}</p>
    ${r.loading && html`<p>${m.t('loading')}</p>`}
    <${Problem} m=${m} error=${r.error} />
    ${r.data && r.data.disclosures.length === 0 && html`<p id="access-empty">${m.t('accessEmpty')}</p>`}
    ${r.data && r.data.disclosures.length > 0 && html`<table id="access-log">
      <thead><tr><th scope="col">${m.t('when')}</th><th scope="col">${m.t('who')}</th><th scope="col">${m.t('what')}</th><th scope="col">${m.t('range_')}</th><th scope="col">${m.t('why')}</th></tr></thead>
      <tbody>${[...r.data.disclosures].reverse().map((d) => html`<tr>
        <td>${m.dateTime(d.at)}</td>
        <td>${byId.get(d.grantId)?.recipientName ?? d.subject} (${d.role})</td>
        <td>${d.categories.map((c) => m.t(`cat_${c}`)).join(', ')}${d.fields ? html`<br /><small class="read-fields">${m.t('onlyFields', { list: fieldList(m, d.fields) })}</small>` : ''}</td>
        <td>${d.from || d.to ? `${m.dateTime(d.from)} – ${m.dateTime(d.to)}` : m.t('allTime')}</td>
        <td>${byId.get(d.grantId)?.purpose ?? d.endpoint}${d.grantId ? html`<br /><small>${m.t('grantRef', { id: d.grantId })}</small>` : ''}${d.endpoint.startsWith('webhook ') ? html`<br /><small class="by-webhook">${m.t('deliveredByWebhook')}</small>` : ''}</td>
      </tr>`)}</tbody>
    </table>`}`;
}

/** `categories`: the ones the caller may read (a recipient: the grant's); only those are offered. */
/** @param {{ m: Messages, base: string, idPrefix?: string, categories?: string[] }} props */
export function DownloadForm({ m, base, idPrefix = 'dl', categories = CATS }) {
  const offered = CATS.filter((c) => categories.includes(c));
  const [format, setFormat] = useState(/** @type {'ndjson' | 'csv' | 'zip'} */ ('ndjson'));
  const [cats, setCats] = useState(offered);
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [progress, setProgress] = useState(/** @type {{ bytes: number, lines: number } | null} */ (null));
  const [done, setDone] = useState(/** @type {{ bytes: number, records: number | null } | null} */ (null));
  const [err, setErr] = useState(/** @type {Error | null} */ (null));
  const submit = async (/** @type {Event} */ e) => {
    e.preventDefault();
    setErr(null);
    setDone(null);
    const q = new URLSearchParams({ format });
    if (cats.length > 0 && cats.length < offered.length) q.set('categories', cats.join(','));
    if (from) q.set('from', new Date(`${from}T00:00:00`).toISOString());
    if (to) q.set('to', new Date(`${to}T23:59:59.999`).toISOString());
    try {
      setProgress({ bytes: 0, lines: 0 });
      setDone(await downloadWithProgress(`${base}?${q}`, format, setProgress));
    } catch (x) {
      setErr(/** @type {Error} */ (x));
    }
    setProgress(null);
  };
  return html`<form onSubmit=${submit} id=${`${idPrefix}-form`}>
    <fieldset>
      <legend>${m.t('format')}</legend>
      ${/** @type {const} */ (['ndjson', 'csv', 'zip']).map((f) => html`<div class="check"><input type="radio" name=${`${idPrefix}-format`} id=${`${idPrefix}-${f}`} value=${f} checked=${format === f} onChange=${() => setFormat(f)} /><label for=${`${idPrefix}-${f}`}>${m.t(`fmt_${f}`)}</label></div>`)}
    </fieldset>
    <${Categories} m=${m} idPrefix=${`${idPrefix}-cat`} value=${cats} onChange=${setCats} options=${offered} />
    <div class="field"><label for=${`${idPrefix}-from`}>${m.t('from')}</label><input id=${`${idPrefix}-from`} type="date" value=${from} onInput=${(/** @type {InputEvt} */ e) => setFrom(e.currentTarget.value)} /></div>
    <div class="field"><label for=${`${idPrefix}-to`}>${m.t('to')}</label><input id=${`${idPrefix}-to`} type="date" value=${to} onInput=${(/** @type {InputEvt} */ e) => setTo(e.currentTarget.value)} /></div>
    <button type="submit" class="primary" id=${`${idPrefix}-submit`} disabled=${progress !== null || cats.length === 0}>${m.t('startDownload')}</button>
    <div role="status" id=${`${idPrefix}-status`}>
      ${progress && html`<p>${m.t('downloading', { bytes: m.bytes(progress.bytes) })}</p>`}
      ${done && html`<p class="ok">${m.t('downloaded', { bytes: m.bytes(done.bytes), records: done.records === null ? '' : m.t('recordsCount', { n: m.number(done.records) }) })}</p>`}
    </div>
    ${err && html`<p class="error" role="alert">${m.t('error', { msg: err.message })}</p>`}
  </form>`;
}

/** @param {{ m: Messages, vin: string }} props */
export function DownloadPage({ m, vin }) {
  return html`<p>${m.t('downloadIntro')}</p><${DownloadForm} m=${m} base=${`/v1/vehicles/${vin}/cardata`} />`;
}

/** @param {{ m: Messages }} props */
export function CataloguePage({ m }) {
  const r = useLoad(() => fetch('/v1/catalogue').then((x) => /** @type {Promise<Catalogue>} */ (x.json())), []);
  return html`<h1 tabindex="-1">${m.t('catalogue')}</h1>
    <p>${m.t('catalogueIntro')}</p>
    ${r.loading && html`<p>${m.t('loading')}</p>`}
    <${Problem} m=${m} error=${r.error} />
    ${r.data && html`<div class="scroll" tabindex="0" role="region" aria-label=${m.t('catalogue')}><table id="catalogue">
      <thead><tr><th scope="col">${m.t('field')}</th><th scope="col">${m.t('unit')}</th><th scope="col">${m.t('category')}</th><th scope="col">${m.t('purpose')}</th><th scope="col">${m.t('legalBasis')}</th><th scope="col">${m.t('retention')}</th></tr></thead>
      <tbody>${r.data.fields.map((f) => html`<tr>
        <th scope="row">${m.label(f.name) === f.name ? f.description : m.label(f.name)}<br /><code>${f.name}</code></th>
        <td>${f.unit}</td>
        <td>${m.t(`cat_${f.category}`)}</td>
        <td>${(m.lang === 'nl' && PURPOSES_NL[f.category]?.purpose) || f.purpose}</td>
        <td>${(m.lang === 'nl' && PURPOSES_NL[f.category]?.legalBasis) || f.legalBasis}</td>
        <td>${(m.lang === 'nl' && PURPOSES_NL[f.category]?.retention) || f.retention}</td>
      </tr>`)}</tbody>
    </table></div>`}`;
}
