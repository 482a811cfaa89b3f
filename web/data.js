// "About the data": the product data description of the EU Data Act Art. 3(2), built from
// GET /v1/data-description (public: shown before sign-in too). Each part names the article
// it serves; the fields carry their units and COVESA VSS names (Art. 4(1)).
import { html } from 'htm/preact';
import { useLoad, Problem } from './util.js';
import { PURPOSES_NL } from './i18n.js';
/** @import { Messages } from './i18n.js' */

/** What each route does, in Dutch (the API answers in English). */
/** @type {Record<string, string>} */
const WHAT_NL = {
  'GET /v1/vehicles/{vin}/stream': 'live records zodra ze zijn opgeslagen',
  'GET /v1/vehicles/{vin}/latest': 'de nieuwste waarden en hoe oud elk is',
  'GET /v1/vehicles/{vin}/disclosures': 'elke inzage door een ander',
  'GET /': 'dit portaal',
  'GET /v1/vehicles/{vin}/cardata': 'alles wat over het voertuig is opgeslagen: ndjson, csv of zip; names=vss voor VSS-namen',
  'GET /v1/grants/{id}/cardata': 'de export van de eigenaar, beperkt tot de toestemming',
  'GET /v1/grants/{id}/stream': 'live records, beperkt tot de toestemming',
  'POST /v1/vehicles/{vin}/grants': 'categorieën delen met een garage of derde, voor een doel en een tijd',
  'DELETE /v1/vehicles/{vin}/grants/{id}': 'een toestemming beëindigen',
  'POST /v1/vehicles/{vin}/checkin-codes': 'een eenmalige code voor een garagebezoek',
  'DELETE /v1/vehicles/{vin}/data': 'opgeslagen gegevens van uw eigendomsperiodes wissen (?category= voor één categorie)',
  'PUT /v1/vehicles/{vin}/consent?eraseHistory=true': 'locatie weigeren en opgeslagen posities wissen',
  'PUT /v1/vehicles/{vin}/consent': 'locatieverwerking en CO2-delen',
  'PUT /v1/vehicles/{vin}/restriction': 'verwerking beperken (AVG art. 18)',
};

/** The groups of routes of Art. 3(2)(d), with their headings. */
const HOW = /** @type {const} */ ([
  ['access', 'dd_access'],
  ['retrieve', 'dd_retrieve'],
  ['share', 'dd_share'],
  ['erase', 'dd_erase'],
  ['control', 'dd_control'],
]);

/** @param {{ m: Messages, art: string }} props */
function Art({ m, art }) {
  return html`<p class="note">${m.t('dd_article', { art: art.replace(/:.*$/, '') })}</p>`;
}

/** @param {{ m: Messages, fields: DescribedField[], id: string, caption: string }} props */
function Fields({ m, fields, id, caption }) {
  return html`<div class="scroll" tabindex="0" role="region" aria-label=${caption}><table id=${id}>
    <caption>${caption}</caption>
    <thead><tr><th scope="col">${m.t('field')}</th><th scope="col">${m.t('unit')}</th><th scope="col">${m.t('vssName')}</th><th scope="col">${m.t('vssUnit')}</th></tr></thead>
    <tbody>${fields.map((f) => html`<tr>
      <th scope="row">${m.label(f.name) === f.name ? f.description : m.label(f.name)}<br /><code>${f.name}</code></th>
      <td>${f.unit}</td>
      <td>${f.vss ? html`<code>${f.vss}</code>` : '–'}</td>
      <td>${f.vssUnit ?? '–'}</td>
    </tr>`)}</tbody>
  </table></div>`;
}

/** @param {{ m: Messages }} props */
export function DataDescriptionPage({ m }) {
  const r = useLoad(() => fetch('/v1/data-description').then((x) => /** @type {Promise<DataDescription>} */ (x.json())), []);
  const d = r.data;
  /** @type {Record<string, import('./i18n.js').MessageKey>} */
  const ENGINE = { timescaledb: 'dd_engine_timescaledb', postgres: 'dd_engine_postgres', pglite: 'dd_engine_pglite' };
  const known = d ? ENGINE[d.storage.engine] : undefined;
  const engine = d ? (known ? m.t(known) : d.storage.description) : '';
  /** @param {{ method: string, path: string, what: string }} x */
  const what = (x) => (m.lang === 'nl' && WHAT_NL[`${x.method} ${x.path}`]) || x.what;
  return html`<h1 tabindex="-1">${m.t('aboutData')}</h1>
    <p>${m.t('aboutDataIntro')}</p>
    ${r.loading && html`<p>${m.t('loading')}</p>`}
    <${Problem} m=${m} error=${r.error} />
    ${d && html`<div id="data-description">
      <section aria-labelledby="dd-generated">
        <h2 id="dd-generated">${m.t('dd_generated')}</h2>
        <${Art} m=${m} art=${d.record.dataAct} />
        <${Fields} m=${m} fields=${d.record.fields} id="dd-record" caption=${m.t('dd_record')} />
        ${d.categories.map((c) => html`<div class="dd-category">
          <${Fields} m=${m} fields=${c.fields} id=${`dd-cat-${c.category}`} caption=${m.t(`cat_${c.category}`)} />
          <p>${(m.lang === 'nl' && PURPOSES_NL[c.category]?.purpose) || c.purpose}</p>
          <p>${c.volume.per === 'record' ? m.t('dd_perCategory', { bytes: m.bytes(c.volume.bytesPerRecord) }) : m.t('dd_perEvent')}</p>
          <p>
            ${m.t('dd_retention', { days: m.number(c.retention.afterContractDays) })}
            ${c.retention.maxAgeDays !== null && html` ${m.t('dd_maxAge', { days: m.number(c.retention.maxAgeDays) })}`}
            ${c.retention.shareableCopyDays !== null && html` ${m.t('dd_shareable', { days: m.number(c.retention.shareableCopyDays) })}`}
          </p>
        </div>`)}
      </section>
      <section aria-labelledby="dd-formats">
        <h2 id="dd-formats">${m.t('dd_formats')}</h2>
        <${Art} m=${m} art=${d.formats.dataAct} />
        <ul id="dd-format-list">${d.formats.offered.map((f) => html`<li><strong>${m.t(`fmt_${f.format}`)}</strong> (<code>${f.mediaType}</code>): ${f.routes.map((x, i) => html`${i ? ', ' : ''}<code>${x}</code>`)}</li>`)}</ul>
      </section>
      <section aria-labelledby="dd-volume">
        <h2 id="dd-volume">${m.t('dd_volume')}</h2>
        <${Art} m=${m} art=${d.volume.dataAct} />
        <p id="dd-volume-text">${m.t(d.volume.basis === 'configured' ? 'dd_volumeText' : 'dd_volumeObserved', {
          records: m.number(d.volume.recordsPerVehiclePerDay),
          bytes: m.bytes(d.volume.bytesPerVehiclePerDay),
          s: m.number(d.volume.sendIntervalMs / 1000, 3),
        })}</p>
      </section>
      <section aria-labelledby="dd-realtime">
        <h2 id="dd-realtime">${m.t('dd_realtime')}</h2>
        <${Art} m=${m} art=${d.generation.dataAct} />
        <p>${m.t(d.generation.continuous && d.generation.realTime ? 'dd_realtimeYes' : 'dd_realtimeNo')}</p>
      </section>
      <section aria-labelledby="dd-storage">
        <h2 id="dd-storage">${m.t('dd_storage')}</h2>
        <${Art} m=${m} art=${d.storage.dataAct} />
        <p id="dd-storage-text">${m.t('dd_storageText', { engine })}${d.storage.sharded ? ` ${m.t('dd_sharded', { n: d.storage.shards })}` : ''}</p>
      </section>
      <section aria-labelledby="dd-howto">
        <h2 id="dd-howto">${m.t('dd_howTo')}</h2>
        <${Art} m=${m} art=${d.access.dataAct} />
        ${HOW.map(([k, label]) => html`<h3>${m.t(label)}</h3>
          <ul class=${`dd-routes dd-${k}`}>${d.access[k].map((x) => html`<li><code>${x.method} ${x.path}</code>: ${what(x)}</li>`)}</ul>`)}
      </section>
    </div>`}`;
}
