// The portal's first script. The gateway puts its text into index.html (allowed by its
// hash in the page's CSP), so it runs while the page is parsed, before any module is even
// asked for: it reads the session and, when a signed-in owner opens a vehicle's overview,
// starts that page's four API reads at once. They go out first, ahead of the module
// requests in the browser's queue (six connections per host), and the gateway answers
// them while the modules load. Each early answer is used once, by the same request the
// page makes (api.js), or dropped. A classic script, no imports and no exports: it
// publishes what the modules need on globalThis.cardataBoot (boot.js hands it on).
(() => {
  if (globalThis.cardataBoot) return;

  /** Where the session is kept (auth.js writes it): sessionStorage, so it ends with the tab. */
  const SESSION = 'cardata.session';

  /**
   * The signed-in session, or null (none, or expired: its access token expired and it
   * has no refresh token to get another).
   * @returns {Session | null}
   */
  function currentSession() {
    try {
      /** @type {Session | null} */
      const s = JSON.parse(sessionStorage.getItem(SESSION) ?? 'null');
      if (!s || typeof s.accessToken !== 'string') return null;
      if (typeof s.expiresAt === 'number' && s.expiresAt <= Date.now() && typeof s.refreshToken !== 'string') return null;
      return s;
    } catch {
      return null;
    }
  }

  // The reads a vehicle's overview starts with, named in one place (vehicle.js asks for them too).

  const DAY = 86_400_000;
  /** The range the overview opens with. */
  const DEFAULT_SPAN_MS = 7 * DAY;
  const TRACK_BUCKETS = ['10s', '30s', '1m', '5m', '15m', '1h', '3h', '1d'];
  /** @type {Record<string, number>} */
  const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: DAY };
  /** @param {string} b */
  const bucketMs = (b) => Number(b.slice(0, -1)) * UNIT_MS[b.slice(-1)];
  /** The track's bucket: the finest giving at most 2,000 points over the span. */
  const trackBucket = (/** @type {number} */ span) => TRACK_BUCKETS.find((b) => span / bucketMs(b) <= 2000) ?? '1d';

  const rangeQuery = (/** @type {TimeRange} */ range) => `from=${new Date(range.from).toISOString()}&to=${new Date(range.to).toISOString()}`;

  const latestPath = (/** @type {string} */ vin) => `/v1/vehicles/${vin}/latest`;
  const consentPath = (/** @type {string} */ vin) => `/v1/vehicles/${vin}/consent`;
  /** The fields the overview's charts draw (only these are summarised and sent). */
  const CHART_FIELDS = [
    'technical.speedKmh',
    'technical.odometerKm',
    'technical.fuelLevelPct',
    'technical.batterySocPct',
    'technical.outsideTempC',
    'technical.coolantTempC',
    'technical.engineOilTempC',
    'consumption.totalFuelConsumedL',
    'consumption.totalDistanceKm',
    'consumption.totalGridEnergyIntoBatteryKwh',
  ];
  /** @type {CardataBoot['chartsPath']} */
  const chartsPath = (vin, range) => `/v1/vehicles/${vin}/series?${rangeQuery(range)}&fields=${CHART_FIELDS.join(',')}`;
  /** @type {CardataBoot['trackPath']} */
  const trackPath = (vin, range) => `/v1/vehicles/${vin}/series?${rangeQuery(range)}&bucket=${trackBucket(range.to - range.from)}&fields=location.latitude,location.longitude`;

  /**
   * The vehicle whose overview `hash` addresses, or null.
   * @param {string} hash
   */
  function overviewVin(hash) {
    const m = /^#\/v\/([^/]+)(?:\/overview)?\/?$/.exec(hash || '');
    return m ? decodeURIComponent(m[1]) : null;
  }

  /** How long an early answer waits for the page to take it, ms. */
  const KEEP_MS = 30_000;
  /** @type {Map<string, { res: Promise<Response>, token: string }>} */
  const early = new Map();
  /** @type {{ vin: string, now: number } | null} */
  let boot = null;

  /**
   * The answer started early for GET `path` with this token, once; else null.
   * @param {string} path
   * @param {string} token
   */
  function takeEarly(path, token) {
    const e = early.get(path);
    if (!e) return null;
    early.delete(path);
    return e.token === token ? e.res : null;
  }

  /**
   * The moment the early reads' range ends, for the overview of `vin`, once; else null.
   * @param {string} vin
   */
  function takeBootTime(vin) {
    if (!boot || boot.vin !== vin) return null;
    const t = boot.now;
    boot = null;
    return t;
  }

  globalThis.cardataBoot = { SESSION, currentSession, DAY, DEFAULT_SPAN_MS, CHART_FIELDS, latestPath, consentPath, chartsPath, trackPath, overviewVin, takeEarly, takeBootTime };

  if (typeof location === 'undefined' || typeof fetch !== 'function') return;
  const s = currentSession();
  const vin = overviewVin(location.hash);
  // Only an owner has a vehicle overview; before the role is known, the page finds it out first.
  if (!s || s.role !== 'customer' || !vin) return;
  const now = Date.now();
  // An access token due for a refresh: the page refreshes it first, then reads.
  if ((s.refreshAt ?? s.expiresAt) <= now) return;
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
