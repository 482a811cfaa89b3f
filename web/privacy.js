// Privacy: the location and CO2-sharing choices in plain words with their legal basis
// and effect, the choice history, restriction (GDPR Art. 18) and erasure (Art. 17)
// behind a confirmation that says what goes, what stays and why.
import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { del, get, put } from './api.js';
import { useLoad, Problem } from './util.js';
/** @import { Messages } from './i18n.js' */

/** @param {{ m: Messages, vin: string }} props */
export function PrivacyPage({ m, vin }) {
  const consent = useLoad(() => /** @type {Promise<ConsentState>} */ (get(`/v1/vehicles/${vin}/consent`)), [vin]);
  const history = useLoad(() => /** @type {Promise<ConsentHistory>} */ (get(`/v1/vehicles/${vin}/consent/history`)), [vin]);
  const refresh = () => {
    consent.reload();
    history.reload();
  };
  return html`<p>${m.t('privacyIntro')}</p>
    ${consent.loading && !consent.data && html`<p>${m.t('loading')}</p>`}
    <${Problem} m=${m} error=${consent.error} />
    ${consent.data && html`<${Choices} m=${m} vin=${vin} state=${consent.data} onSaved=${refresh} />`}
    ${consent.data && html`<${Restriction} m=${m} vin=${vin} state=${consent.data} onSaved=${refresh} />`}
    <${Erasure} m=${m} vin=${vin} onDone=${refresh} />
    <section aria-labelledby="history-h">
      <h2 id="history-h">${m.t('history')}</h2>
      <${Problem} m=${m} error=${history.error} />
      ${history.data && history.data.events.length === 0 && html`<p>${m.t('historyEmpty')}</p>`}
      ${history.data && history.data.events.length > 0 && html`<table id="consent-history">
        <thead><tr><th scope="col">${m.t('when')}</th><th scope="col">${m.t('locationTitle')}</th><th scope="col">${m.t('co2Title')}</th><th scope="col">${m.t('restrictionTitle')}</th><th scope="col">${m.t('who')}</th></tr></thead>
        <tbody>${[...history.data.events].reverse().map((e) => html`<tr>
          <td>${m.dateTime(e.at)}</td>
          <td>${e.location ? m.t('on') : m.t('off')}${e.erasedLocationHistory ? `, ${m.t('erasedPositions')}` : ''}</td>
          <td>${e.co2Sharing ? m.t('on') : m.t('off')}</td>
          <td>${e.restricted ? m.t('restrictedWord') : '–'}</td>
          <td>${e.actor} (${e.channel})</td>
        </tr>`)}</tbody>
      </table>`}
    </section>`;
}

/** @param {{ m: Messages, vin: string, state: ConsentState, onSaved: () => void }} props */
function Choices({ m, vin, state, onSaved }) {
  const [location, setLocation] = useState(state.location);
  const [co2, setCo2] = useState(state.co2Sharing);
  const [erase, setErase] = useState(false);
  const [msg, setMsg] = useState(/** @type {string | null} */ (null));
  const [err, setErr] = useState(/** @type {Error | null} */ (null));
  useEffect(() => {
    setLocation(state.location);
    setCo2(state.co2Sharing);
  }, [state.location, state.co2Sharing]);
  const save = async (/** @type {Event} */ e) => {
    e.preventDefault();
    setErr(null);
    setMsg(null);
    try {
      await put(`/v1/vehicles/${vin}/consent${!location && erase ? '?eraseHistory=true' : ''}`, { location, co2Sharing: co2 });
      setErase(false);
      setMsg(m.t('saved'));
      onSaved();
    } catch (x) {
      setErr(/** @type {Error} */ (x));
    }
  };
  return html`<form class="choices" onSubmit=${save} aria-describedby="choices-state">
    <p id="choices-state" class="muted">${m.t('state', { date: m.dateTime(state.since) })}</p>
    <fieldset>
      <legend><h2>${m.t('locationTitle')}</h2></legend>
      <p>${m.t('locationWhat')}</p>
      <p>${m.t('locationBasis')}</p>
      <p>${m.t('locationEffect')}</p>
      <div class="check"><input type="checkbox" id="opt-location" checked=${location} onChange=${(/** @type {InputEvt} */ e) => setLocation(e.currentTarget.checked)} /><label for="opt-location">${m.t('locationAllowed')}</label></div>
      <div class="check"><input type="checkbox" id="opt-erase-location" disabled=${location} checked=${erase && !location} onChange=${(/** @type {InputEvt} */ e) => setErase(e.currentTarget.checked)} /><label for="opt-erase-location">${m.t('eraseLocationToo')}</label></div>
    </fieldset>
    <fieldset>
      <legend><h2>${m.t('co2Title')}</h2></legend>
      <p>${m.t('co2What')}</p>
      <p>${m.t('co2Basis')}</p>
      <p>${m.t('co2Effect')}</p>
      <div class="check"><input type="checkbox" id="opt-co2" checked=${co2} onChange=${(/** @type {InputEvt} */ e) => setCo2(e.currentTarget.checked)} /><label for="opt-co2">${m.t('co2Allowed')}</label></div>
    </fieldset>
    <button type="submit" class="primary" id="save-choices">${m.t('save')}</button>
    <p role="status" class="ok" id="choices-status">${msg ?? ''}</p>
    ${err && html`<p class="error" role="alert">${m.t('error', { msg: err.message })}</p>`}
  </form>`;
}

/** @param {{ m: Messages, vin: string, state: ConsentState, onSaved: () => void }} props */
function Restriction({ m, vin, state, onSaved }) {
  const [err, setErr] = useState(/** @type {Error | null} */ (null));
  const toggle = async () => {
    setErr(null);
    try {
      await put(`/v1/vehicles/${vin}/restriction`, { restricted: !state.restricted });
      onSaved();
    } catch (x) {
      setErr(/** @type {Error} */ (x));
    }
  };
  return html`<section aria-labelledby="restriction-h">
    <h2 id="restriction-h">${m.t('restrictionTitle')}</h2>
    <p>${m.t('restrictionWhat')}</p>
    <p>${m.t('restrictionBasis')}</p>
    <p role="status" id="restriction-state"><strong>${state.restricted ? m.t('restrictedNow') : m.t('notRestrictedNow')}</strong></p>
    <button type="button" id="toggle-restriction" onClick=${toggle}>${state.restricted ? m.t('unrestrict') : m.t('restrict')}</button>
    ${err && html`<p class="error" role="alert">${m.t('error', { msg: err.message })}</p>`}
  </section>`;
}

/** @param {{ m: Messages, vin: string, onDone: () => void }} props */
function Erasure({ m, vin, onDone }) {
  const [category, setCategory] = useState('');
  const [result, setResult] = useState(/** @type {ErasureResult | null} */ (null));
  const [err, setErr] = useState(/** @type {Error | null} */ (null));
  const dialog = useRef(/** @type {HTMLDialogElement | null} */ (null));
  const opener = useRef(/** @type {HTMLButtonElement | null} */ (null));
  const what = category ? m.t(`cat_${category}`) : m.t('eraseAll');
  const close = () => {
    dialog.current?.close();
    opener.current?.focus();
  };
  const erase = async () => {
    setErr(null);
    try {
      /** @type {ErasureResult} */
      const r = await del(`/v1/vehicles/${vin}/data${category ? `?category=${category}` : ''}`);
      setResult(r);
      onDone();
    } catch (x) {
      setErr(/** @type {Error} */ (x));
    }
    close();
  };
  return html`<section aria-labelledby="erasure-h">
    <h2 id="erasure-h">${m.t('erasureTitle')}</h2>
    <p>${m.t('erasureWhat')}</p>
    <p>${m.t('erasureBasis')}</p>
    <label for="erase-category">${m.t('eraseCategory')}</label>
    <select id="erase-category" value=${category} onChange=${(/** @type {SelectEvt} */ e) => setCategory(e.currentTarget.value)}>
      <option value="">${m.t('eraseAll')}</option>
      <option value="technical">${m.t('cat_technical')}</option>
      <option value="consumption">${m.t('cat_consumption')}</option>
      <option value="location">${m.t('cat_location')}</option>
    </select>
    <button type="button" class="danger" id="erase-open" ref=${opener} onClick=${() => dialog.current?.showModal()}>${m.t('eraseButton')}</button>
    <p role="status" id="erase-result">${result ? m.t('erased', { deleted: m.number(result.telemetryRecordsDeleted), updated: m.number(result.telemetryRecordsUpdated), obfcm: m.number(result.obfcmReadingsDeleted), kept: m.number(result.obfcmReadingsKept) }) : ''}</p>
    ${err && html`<p class="error" role="alert">${m.t('error', { msg: err.message })}</p>`}
    <dialog ref=${dialog} id="erase-dialog" aria-labelledby="erase-dialog-h" onCancel=${(/** @type {Event} */ e) => { e.preventDefault(); close(); }}>
      <h2 id="erase-dialog-h">${m.t('confirmTitle', { what })}</h2>
      <p>${m.t('confirmDeleted', { what: what.toLowerCase() })}</p>
      <ul>
        ${(category === '' || category === 'consumption') && html`<li>${m.t('confirmKeptObfcm')}</li>`}
        <li>${m.t('confirmKeptLog')}</li>
        <li>${m.t('confirmKeptOthers')}</li>
      </ul>
      <div class="actions">
        <button type="button" id="erase-cancel" onClick=${close} autofocus>${m.t('cancel')}</button>
        <button type="button" class="danger" id="erase-confirm" onClick=${erase}>${m.t('confirmErase')}</button>
      </div>
    </dialog>
  </section>`;
}
