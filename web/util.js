// Shared pieces of the pages: loading state, problem display.
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiProblem } from './api.js';
/** @import { Messages } from './i18n.js' */

/**
 * Loads once per key; { data, error, loading, reload }.
 * @template T
 * @param {() => Promise<T>} fn
 * @param {readonly unknown[]} deps
 */
export function useLoad(fn, deps) {
  const [st, setSt] = useState(/** @type {{ data: T | null, error: Error | null, loading: boolean }} */ ({ data: null, error: null, loading: true }));
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setSt((s) => ({ ...s, loading: true }));
    fn().then(
      (data) => live && setSt({ data, error: null, loading: false }),
      (/** @type {Error} */ error) => live && setSt({ data: null, error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, n]);
  return { ...st, reload: () => setN((x) => x + 1) };
}

/** @param {{ m: Messages, error: Error | null }} props */
export function Problem({ m, error }) {
  if (!error) return null;
  if (error instanceof ApiProblem && (error.status === 404 || error.status === 405) && error.code === 'API_ERR_NOT_FOUND' && /no route/.test(error.message)) {
    return html`<p class="note">${m.t('notAvailable')}</p>`;
  }
  return html`<p class="error" role="alert">${m.t('error', { msg: error.message })}</p>`;
}

