// The reads a vehicle's overview starts with, named in one place: the page asks for them,
// and web/prefetch.js starts them before the page's modules have loaded. No imports: this
// module is on the first, shortest path of a page load.

export const DAY = 86_400_000;
/** The range the overview opens with. */
export const DEFAULT_SPAN_MS = 7 * DAY;
const TRACK_BUCKETS = ['10s', '30s', '1m', '5m', '15m', '1h', '3h', '1d'];
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: DAY };
const bucketMs = (b) => Number(b.slice(0, -1)) * UNIT_MS[b.slice(-1)];
/** The track's bucket: the finest giving at most 2,000 points over the span. */
const trackBucket = (span) => TRACK_BUCKETS.find((b) => span / bucketMs(b) <= 2000) ?? '1d';

const rangeQuery = (range) => `from=${new Date(range.from).toISOString()}&to=${new Date(range.to).toISOString()}`;

export const latestPath = (vin) => `/v1/vehicles/${vin}/latest`;
export const consentPath = (vin) => `/v1/vehicles/${vin}/consent`;
export const chartsPath = (vin, range) => `/v1/vehicles/${vin}/series?${rangeQuery(range)}`;
export const trackPath = (vin, range) => `/v1/vehicles/${vin}/series?${rangeQuery(range)}&bucket=${trackBucket(range.to - range.from)}&categories=location`;

/** The vehicle whose overview `hash` addresses, or null. */
export function overviewVin(hash) {
  const m = /^#\/v\/([^/]+)(?:\/overview)?\/?$/.exec(hash || '');
  return m ? decodeURIComponent(m[1]) : null;
}
