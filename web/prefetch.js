// The first reads of a page, started as soon as the document is parsed: a signed-in owner
// opening a vehicle's overview waits for its modules (a dozen, no bundle) and for its
// API reads; started here, the two overlap instead of following each other. Each early
// answer is used once, by the same request the page makes (api.js), or dropped.
import { currentSession } from './auth.js';
import { DEFAULT_SPAN_MS, chartsPath, consentPath, latestPath, overviewVin, trackPath } from './vehicle-queries.js';

/** How long an early answer waits for the page to take it, ms. */
const KEEP_MS = 30_000;
const early = new Map();
let boot = null;

(() => {
  const s = currentSession();
  const vin = overviewVin(location.hash);
  // Only an owner has a vehicle overview; before the role is known, the page finds it out first.
  if (!s || s.role !== 'customer' || !vin) return;
  const now = Date.now();
  boot = { vin, now };
  // Visible in the browser's performance timeline (and to the tests): when the early reads began.
  performance.mark('cardata:prefetch');
  const range = { from: now - DEFAULT_SPAN_MS, to: now };
  for (const path of [latestPath(vin), consentPath(vin), chartsPath(vin, range), trackPath(vin, range)]) {
    const res = fetch(path, { headers: { authorization: `Bearer ${s.accessToken}` } });
    res.catch(() => {});
    early.set(path, { res, token: s.accessToken });
  }
  setTimeout(() => early.clear(), KEEP_MS);
})();

/** The answer started early for GET `path` with this token, once; else null. */
export function takeEarly(path, token) {
  const e = early.get(path);
  if (!e) return null;
  early.delete(path);
  return e.token === token ? e.res : null;
}

/** The moment the early reads' range ends, for the overview of `vin`, once; else null. */
export function takeBootTime(vin) {
  if (!boot || boot.vin !== vin) return null;
  const t = boot.now;
  boot = null;
  return t;
}
