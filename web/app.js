// The CarData portal: a small single-page app on Preact + htm (no build step), talking
// only to the gateway's public HTTP API. Pages are addressed by the URL's hash, so a
// page survives a reload and a new sign-in.
import { html, render } from 'htm/preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { LANGS, initialLang, messages } from './i18n.js';
import { completeSignIn, currentSession, keepFresh, saveSession, signOut, startSignIn, takeReturnTo, updateSession, claims } from './auth.js';
import { ApiProblem, get, setExpiredHandler } from './api.js';
import { useLoad, Problem } from './util.js';
import { VehiclePage } from './vehicle.js';
/** @import { Messages } from './i18n.js' */

// The pages a vehicle's overview does not need are loaded when first opened: the overview,
// the usual first page, waits for no module it does not show.
/** @type {Map<string, unknown>} */
const loaded = new Map();
/**
 * A page component from a module loaded on first use. Until it is there, "Loading…";
 * then `onShown` (the app moves focus to the page's heading, which was not there before).
 * @template {string} N
 * @param {() => Promise<{ [K in N]: (props: never) => unknown }>} load
 * @param {N} name the component's name in the module
 */
function later(load, name) {
  /** @param {{ m: Messages, onShown?: () => void } & Record<string, unknown>} props */
  return function Later(props) {
    const [C, setC] = useState(() => loaded.get(name) ?? null);
    const [err, setErr] = useState(/** @type {Error | null} */ (null));
    useEffect(() => {
      if (C) return;
      let live = true;
      load().then(
        (mod) => {
          loaded.set(name, mod[name]);
          if (live) setC(() => mod[name]);
        },
        (/** @type {Error} */ e) => live && setErr(e),
      );
      return () => {
        live = false;
      };
    }, []);
    const first = useRef(!C);
    useEffect(() => {
      if (C && first.current) {
        first.current = false;
        props.onShown?.();
      }
    }, [C]);
    if (err) return html`<p class="error" role="alert">${props.m.t('error', { msg: err.message })}</p>`;
    return C ? html`<${C} ...${props} />` : html`<p>${props.m.t('loading')}</p>`;
  };
}
const PrivacyPage = later(() => import('./privacy.js'), 'PrivacyPage');
const SharingPage = later(() => import('./pages.js'), 'SharingPage');
const AccessLogPage = later(() => import('./pages.js'), 'AccessLogPage');
const DownloadPage = later(() => import('./pages.js'), 'DownloadPage');
const CataloguePage = later(() => import('./pages.js'), 'CataloguePage');
const DataDescriptionPage = later(() => import('./data.js'), 'DataDescriptionPage');
const RecipientHome = later(() => import('./recipient.js'), 'RecipientHome');
const GrantPage = later(() => import('./recipient.js'), 'GrantPage');

/** @param {string} hash */
function parseRoute(hash) {
  const parts = (hash || '#/').replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'v' && parts[1]) return { page: 'vehicle', vin: parts[1], tab: parts[2] ?? 'overview' };
  if (parts[0] === 'g' && parts[1]) return { page: 'grant', id: parts[1] };
  if (parts[0] === 'catalogue') return { page: 'catalogue' };
  if (parts[0] === 'data') return { page: 'data' };
  return { page: 'home' };
}

/** @param {{ m: Messages, config: PortalConfig, expired: boolean, onToken: (token: string) => void }} props */
function SignIn({ m, config, expired, onToken }) {
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState(/** @type {Error | null} */ (null));
  const [token, setToken] = useState('');
  const go = async () => {
    setBusy(true);
    setErr(null);
    try {
      await startSignIn(config, m.lang);
    } catch (e) {
      setErr(/** @type {Error} */ (e));
      setBusy(false);
    }
  };
  return html`<main id="main" class="signin" tabindex="-1">
    <h1>${m.t('appName')}</h1>
    ${expired && html`<p class="note" role="status">${m.t('sessionExpired')}</p>`}
    <p>${m.t('signInIntro')}</p>
    <button class="primary" id="signin" onClick=${go} disabled=${busy}>${m.t('signInWith')}</button>
    ${err && html`<p class="error" role="alert">${m.t('error', { msg: err.message })}</p>`}
    <details class="token-signin">
      <summary>${m.t('signInToken')}</summary>
      <form onSubmit=${(/** @type {Event} */ e) => { e.preventDefault(); if (token.trim()) onToken(token.trim()); }}>
        <label for="token">${m.t('token')}</label>
        <input id="token" type="password" autocomplete="off" value=${token} onInput=${(/** @type {InputEvt} */ e) => setToken(e.currentTarget.value)} />
        <button type="submit">${m.t('signIn')}</button>
      </form>
    </details>
  </main>`;
}

/** @param {{ m: Messages, setLang: (lang: string) => void }} props */
function LangSwitch({ m, setLang }) {
  return html`<div class="lang">
    <label for="lang">${m.t('language')}</label>
    <select id="lang" value=${m.lang} onChange=${(/** @type {SelectEvt} */ e) => setLang(e.currentTarget.value)}>
      ${LANGS.map((l) => html`<option value=${l.code} lang=${l.code}>${l.name}</option>`)}
    </select>
  </div>`;
}

/** @param {{ m: Messages, role: string, onShown: () => void }} props */
function Home({ m, role, onShown }) {
  if (role === 'customer') return html`<${MyVehicles} m=${m} />`;
  return html`<${RecipientHome} m=${m} onShown=${onShown} />`;
}

/** @param {{ m: Messages }} props */
function MyVehicles({ m }) {
  const r = useLoad(() => /** @type {Promise<VehicleList>} */ (get('/v1/vehicles')), []);
  return html`<h1 tabindex="-1">${m.t('myVehicles')}</h1>
    ${r.loading && html`<p>${m.t('loading')}</p>`}
    <${Problem} m=${m} error=${r.error} />
    ${r.data && r.data.vehicles.length === 0 && html`<p>${m.t('noVehicles')}</p>`}
    ${r.data && html`<ul class="cards">
      ${r.data.vehicles.map((v) => html`<li><a class="card" href=${`#/v/${v.vin}`}><strong class="vin">${v.vin}</strong><span>${m.t('ownerSince', { date: m.date(v.since) })}</span></a></li>`)}
    </ul>`}`;
}

/**
 * The settings the gateway put into the page, or null.
 * @returns {PortalConfig | null}
 */
function inlineConfig() {
  try {
    /** @type {Partial<PortalConfig>} */
    const c = JSON.parse(document.getElementById('portal-config')?.textContent || '{}');
    return c.oidc ? /** @type {PortalConfig} */ (c) : null;
  } catch {
    return null;
  }
}

function App() {
  const [lang, setLangState] = useState(initialLang());
  const m = useMemo(() => messages(lang), [lang]);
  // The gateway puts its settings into the page; /portal/config.json answers the same.
  const [config, setConfig] = useState(inlineConfig);
  const [session, setSession] = useState(currentSession());
  const [expired, setExpired] = useState(false);
  const [route, setRoute] = useState(parseRoute(location.hash));
  // Known from an earlier sign-in in this tab: the page renders at once, without waiting a turn.
  const [role, setRole] = useState(() => session?.role ?? null);
  const [bootError, setBootError] = useState(/** @type {Error | null} */ (null));
  const mainRef = useRef(/** @type {HTMLElement | null} */ (null));

  const setLang = useCallback((/** @type {string} */ l) => {
    localStorage.setItem('cardata.lang', l);
    setLangState(l);
  }, []);
  useEffect(() => {
    document.documentElement.lang = lang;
    document.title = m.t('appName');
  }, [lang]);

  useEffect(() => {
    const onHash = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', onHash);
    const onEnded = () => {
      setSession(null);
      setExpired(true);
      setRole(null);
    };
    setExpiredHandler(onEnded);
    void (async () => {
      /** @type {PortalConfig} */
      const cfg = inlineConfig() ?? (await (await fetch('/portal/config.json')).json());
      setConfig(cfg);
      // The session goes on with its refresh token, silently, until it ends.
      keepFresh(cfg, onEnded);
      try {
        const back = await completeSignIn(cfg);
        if (back) {
          setSession(currentSession());
          location.hash = back;
        }
      } catch (e) {
        setBootError(/** @type {Error} */ (e));
      }
    })();
    return () => removeEventListener('hashchange', onHash);
  }, []);

  // Who is signed in decides the home page: an owner (the vehicles route answers) or a
  // recipient of grants (a workshop or third party). The API decides, not the token's text.
  useEffect(() => {
    if (!session) return;
    if (session.role) return setRole(session.role);
    let live = true;
    const found = (/** @type {'customer' | 'recipient'} */ r) => {
      if (!live) return;
      // The stored session, which may have been refreshed meanwhile.
      updateSession({ role: r });
      setRole(r);
    };
    get('/v1/vehicles').then(
      () => found('customer'),
      (e) => found(e instanceof ApiProblem && e.status === 403 ? 'recipient' : 'customer'),
    );
    return () => {
      live = false;
    };
  }, [session]);

  // After a page change, move focus to its heading so screen readers announce it (a page
  // loaded on first use calls this once it is shown: its heading was not there before).
  const focusHeading = useCallback(() => {
    const h = mainRef.current?.querySelector('h1');
    if (h && document.activeElement?.tagName !== 'INPUT') h.focus({ preventScroll: true });
  }, []);
  useEffect(focusHeading, [route.page, route.vin, route.tab, route.id, role]);

  if (!config) return html`<p>${m.t('loading')}</p>`;
  if (!session) {
    // The data description is public (Data Act Art. 3(2): told before any contract): readable without signing in.
    if (route.page === 'data') {
      return html`<div class="shell">
        <header class="top"><a class="brand" href="#/">${m.t('appName')}</a><${LangSwitch} m=${m} setLang=${setLang} /></header>
        <main id="main" ref=${mainRef}><${DataDescriptionPage} m=${m} onShown=${focusHeading} /></main>
      </div>`;
    }
    return html`<div class="shell">
      <header class="top"><span class="brand">${m.t('appName')}</span><nav aria-label=${m.t('nav')}><ul><li><a href="#/data">${m.t('aboutData')}</a></li></ul></nav><${LangSwitch} m=${m} setLang=${setLang} /></header>
      ${bootError && html`<p class="error" role="alert">${m.t('error', { msg: bootError.message })}</p>`}
      <${SignIn}
        m=${m}
        config=${config}
        expired=${expired}
        onToken=${(/** @type {string} */ token) => {
          const c = claims(token);
          saveSession({ accessToken: token, idToken: null, expiresAt: c.exp ? c.exp * 1000 : Date.now() + 3600_000, subject: c.sub ?? null });
          setExpired(false);
          setSession(currentSession());
          const back = takeReturnTo();
          if (back) location.hash = back;
        }}
      />
    </div>`;
  }
  const who = session.subject ?? claims(session.accessToken).sub ?? '';
  let page;
  if (!role) page = html`<p>${m.t('loading')}</p>`;
  else if (route.page === 'vehicle') page = html`<${VehicleShell} m=${m} vin=${route.vin} tab=${route.tab} />`;
  else if (route.page === 'grant') page = html`<${GrantPage} m=${m} id=${route.id} onShown=${focusHeading} />`;
  else if (route.page === 'catalogue') page = html`<${CataloguePage} m=${m} onShown=${focusHeading} />`;
  else if (route.page === 'data') page = html`<${DataDescriptionPage} m=${m} onShown=${focusHeading} />`;
  else page = html`<${Home} m=${m} role=${role} onShown=${focusHeading} />`;
  return html`<div class="shell">
    <a class="skip" href="#main" onClick=${(/** @type {Event} */ e) => { e.preventDefault(); mainRef.current?.querySelector('h1')?.focus(); }}>${m.t('skip')}</a>
    <header class="top">
      <a class="brand" href="#/">${m.t('appName')}</a>
      <nav aria-label=${m.t('nav')}>
        <ul>
          <li><a href="#/" aria-current=${route.page === 'home' || route.page === 'vehicle' || route.page === 'grant' ? 'page' : undefined}>${role === 'recipient' ? m.t('sharedWithYou') : m.t('myVehicles')}</a></li>
          <li><a href="#/catalogue" aria-current=${route.page === 'catalogue' ? 'page' : undefined}>${m.t('catalogue')}</a></li>
          <li><a href="#/data" aria-current=${route.page === 'data' ? 'page' : undefined}>${m.t('aboutData')}</a></li>
          ${config.oidc.issuer ? null : html`<li><a id="connect-device" href=${`/oidc/device?lang=${m.lang}`}>${m.t('connectDevice')}</a></li>`}
        </ul>
      </nav>
      <${LangSwitch} m=${m} setLang=${setLang} />
      <span class="who">${m.t('signedInAs', { who })}</span>
      <button id="signout" onClick=${async () => { await signOut(config, m.lang); setSession(null); setRole(null); }}>${m.t('signOut')}</button>
    </header>
    <main id="main" ref=${mainRef} tabindex="-1">${page}</main>
  </div>`;
}

const TABS = ['overview', 'privacy', 'sharing', 'access', 'download'];
/** @type {Record<string, import('./i18n.js').MessageKey>} */
const TAB_LABEL = { overview: 'overview', privacy: 'privacy', sharing: 'sharing', access: 'accessLog', download: 'download' };

/** @param {{ m: Messages, vin: string, tab: string }} props */
function VehicleShell({ m, vin, tab }) {
  const t = TABS.includes(tab) ? tab : 'overview';
  let body;
  if (t === 'privacy') body = html`<${PrivacyPage} m=${m} vin=${vin} />`;
  else if (t === 'sharing') body = html`<${SharingPage} m=${m} vin=${vin} />`;
  else if (t === 'access') body = html`<${AccessLogPage} m=${m} vin=${vin} />`;
  else if (t === 'download') body = html`<${DownloadPage} m=${m} vin=${vin} />`;
  else body = html`<${VehiclePage} m=${m} vin=${vin} />`;
  return html`<h1 tabindex="-1">${m.t(TAB_LABEL[t])} <span class="vin">${vin}</span></h1>
    <nav class="tabs" aria-label=${m.t('vehicleSections')}>
      <ul>
        ${TABS.map((x) => html`<li><a href=${`#/v/${vin}/${x}`} aria-current=${x === t ? 'page' : undefined}>${m.t(TAB_LABEL[x])}</a></li>`)}
      </ul>
    </nav>
    ${body}`;
}

render(html`<${App} />`, /** @type {HTMLElement} */ (document.getElementById('app')));
