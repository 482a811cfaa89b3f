// A vehicle's overview: latest values (live through the stream when the gateway offers
// it), charts over a chosen range from the time-bucketed series, and the trip track.
import { html } from 'htm/preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { get, openStream } from './api.js';
import { Chart } from './charts.js';
import { Track } from './track.js';
import { useLoad, Problem } from './util.js';
import { DAY, DEFAULT_SPAN_MS, chartsPath, consentPath, latestPath, takeBootTime, trackPath } from './boot.js';
/** @import { Messages, MessageKey } from './i18n.js' */
/** @import { Dispatch, StateUpdater } from 'preact/hooks' */

/** The groups of a record's values. */
const GROUPS = /** @type {const} */ (['technical', 'consumption', 'location']);

/** @type {[MessageKey, number][]} */
const PRESETS = [
  ['last24h', DAY],
  ['last7d', 7 * DAY],
  ['last30d', 30 * DAY],
  ['last365d', 365 * DAY],
];

/** How often the latest record is asked for while no stream is open, ms. */
export const POLL_MS = 5000;

const dateInput = (/** @type {number} */ ms) => new Date(ms - new Date(ms).getTimezoneOffset() * 60_000).toISOString().slice(0, 10);

/**
 * Which way the latest values are kept current, said in words (and to screen readers when it changes).
 * @param {{ m: Messages, mode: string, id?: string }} props
 */
export function LiveBadge({ m, mode, id = 'live-state' }) {
  const text = mode === 'live' ? m.t('live') : mode === 'polling' ? m.t('polling', { s: POLL_MS / 1000 }) : m.t('connecting');
  return html`<span class=${`badge ${mode}`} id=${id} data-mode=${mode}>${text}</span>`;
}

/** @param {{ m: Messages, mode: string }} props */
export function LiveStatus({ m, mode }) {
  const said = mode === 'live' ? m.t('liveOn') : mode === 'polling' ? m.t('liveOff', { s: POLL_MS / 1000 }) : '';
  return html`<p class="sr-only" role="status">${said}</p>`;
}

/** @param {{ m: Messages, record: Pick<TelemetryRecord, (typeof GROUPS)[number]> | null, id?: string }} props */
export function LatestTable({ m, record, id = 'latest-values' }) {
  /** @type {[string, number | null][]} */
  const rows = [];
  for (const g of GROUPS) {
    const vals = record?.[g];
    if (!vals) continue;
    for (const [k, v] of Object.entries(vals)) rows.push([`${g}.${k}`, v]);
  }
  return html`<table class="values" id=${id}>
    <caption class="sr-only">${m.t('latest')}</caption>
    <thead><tr><th scope="col">${m.t('field')}</th><th scope="col">${m.t('value')}</th></tr></thead>
    <tbody>${rows.map(([f, v]) => html`<tr data-field=${f}><th scope="row">${m.label(f)}</th><td>${m.unit(f, v)}</td></tr>`)}</tbody>
  </table>`;
}

/**
 * The latest values kept current: through the vehicle's stream (SSE) while it is open,
 * by asking for the latest record every POLL_MS only while it is not. Returns the mode
 * shown to the person: 'live', 'polling' (stream down or refused) or 'connecting'.
 * @param {string} vin
 * @param {Dispatch<StateUpdater<TelemetryRecord | null>>} setRecord
 */
function useLiveLatest(vin, setRecord) {
  const [mode, setMode] = useState('connecting');
  const add = (/** @type {TelemetryRecord} */ rec) => setRecord((p) => merge(p, rec));
  const reread = () => /** @type {Promise<Latest>} */ (get(latestPath(vin))).then((r) => r.record && add(r.record), () => {});
  useEffect(() => {
    setMode('connecting');
    return openStream(`/v1/vehicles/${vin}/stream`, {
      onEvent: (ev) => {
        if (ev.event !== 'record') return;
        try {
          add(JSON.parse(ev.data));
        } catch {
          // an event that is not a record line: ignored
        }
      },
      onState: (state, _status, resumed) => {
        setMode(state === 'live' ? 'live' : 'polling');
        // A stream opened without a cursor starts live: what was committed between the
        // page's read of the latest record and now is read once more. A resumed one
        // sends what was missed itself.
        if (state === 'live' && !resumed) void reread();
      },
    });
  }, [vin]);
  // A stream that does not answer within a polling interval: poll meanwhile.
  useEffect(() => {
    if (mode !== 'connecting') return;
    const t = setTimeout(() => setMode((x) => (x === 'connecting' ? 'polling' : x)), POLL_MS);
    return () => clearTimeout(t);
  }, [vin, mode]);
  useEffect(() => {
    if (mode !== 'polling') return;
    const t = setInterval(reread, POLL_MS);
    return () => clearInterval(t);
  }, [vin, mode]);
  return mode;
}

/**
 * Newest record wins, group by group (a record may carry only some groups).
 * @param {TelemetryRecord | null} prev
 * @param {TelemetryRecord} rec
 * @returns {TelemetryRecord}
 */
function merge(prev, rec) {
  if (!prev) return rec;
  if (Date.parse(rec.recordedAt) < Date.parse(prev.recordedAt)) return prev;
  const out = { ...prev, seq: rec.seq, recordedAt: rec.recordedAt };
  for (const g of GROUPS) if (rec[g]) out[g] = { ...(prev[g] ?? {}), ...rec[g] };
  return out;
}

/** @param {{ m: Messages, vin: string }} props */
export function VehiclePage({ m, vin }) {
  const latest = useLoad(() => /** @type {Promise<Latest>} */ (get(latestPath(vin))), [vin]);
  const consent = useLoad(() => /** @type {Promise<ConsentState>} */ (get(consentPath(vin))), [vin]);
  const [record, setRecord] = useState(/** @type {TelemetryRecord | null} */ (null));
  useEffect(() => setRecord(null), [vin]);
  // The stored latest record and the stream's records meet: the newest wins, whichever came first.
  useEffect(() => {
    const r = latest.data?.record;
    if (r) setRecord((p) => merge(p, r));
  }, [latest.data]);
  const mode = useLiveLatest(vin, setRecord);

  // The range ends now, asked for at once (beside the latest record, not after it); for a
  // car parked since before the range began it moves to the newest stored record.
  // The moment the early reads were started for (boot.js), so the page's reads are the same.
  const [now] = useState(() => takeBootTime(vin) ?? Date.now());
  const [span, setSpan] = useState(DEFAULT_SPAN_MS);
  const newest = latest.data?.record ? Date.parse(latest.data.record.recordedAt) + 1000 : null;
  const anchor = newest !== null && newest < now - span ? newest : now;
  const [custom, setCustom] = useState(/** @type {TimeRange | null} */ (null));
  const range = custom ?? { from: anchor - span, to: anchor };

  return html`
    <section aria-labelledby="latest-h">
      <h2 id="latest-h">${m.t('latest')} <${LiveBadge} m=${m} mode=${mode} /></h2>
      <${LiveStatus} m=${m} mode=${mode} />
      ${latest.loading && !record && html`<p>${m.t('loading')}</p>`}
      <${Problem} m=${m} error=${latest.error} />
      ${!latest.loading && !record && html`<p>${m.t('noData')}</p>`}
      ${record && html`<p class="muted" id="latest-at">${m.t('latestAt', { time: m.dateTime(record.recordedAt) })}</p><${LatestTable} m=${m} record=${record} />`}
    </section>
    <section aria-labelledby="charts-h">
      <h2 id="charts-h">${m.t('charts')}</h2>
      <${RangePicker} m=${m} span=${span} custom=${custom} range=${range} setSpan=${(/** @type {number} */ s) => { setCustom(null); setSpan(s); }} setCustom=${setCustom} />
      <${Charts} m=${m} vin=${vin} range=${range} />
      <${TrackSection} m=${m} vin=${vin} range=${range} locationAllowed=${consent.data ? consent.data.location : consent.loading ? null : true} />
    </section>`;
}

/** @param {{ m: Messages, span: number, custom: TimeRange | null, range: TimeRange, setSpan: (span: number) => void, setCustom: (range: TimeRange | null) => void }} props */
function RangePicker({ m, span, custom, range, setSpan, setCustom }) {
  const [from, setFrom] = useState(dateInput(range.from));
  const [to, setTo] = useState(dateInput(range.to));
  return html`<div class="range">
    <fieldset>
      <legend>${m.t('range')}</legend>
      ${PRESETS.map(([k, s]) => html`<button type="button" class=${!custom && span === s ? 'chip on' : 'chip'} aria-pressed=${!custom && span === s ? 'true' : 'false'} onClick=${() => setSpan(s)}>${m.t(k)}</button>`)}
    </fieldset>
    <form class="inline" onSubmit=${(/** @type {Event} */ e) => {
      e.preventDefault();
      const f = Date.parse(from);
      const t = Date.parse(to) + DAY;
      if (f < t) setCustom({ from: f, to: t });
    }}>
      <label for="range-from">${m.t('from')}</label><input id="range-from" type="date" value=${from} onInput=${(/** @type {InputEvt} */ e) => setFrom(e.currentTarget.value)} />
      <label for="range-to">${m.t('to')}</label><input id="range-to" type="date" value=${to} onInput=${(/** @type {InputEvt} */ e) => setTo(e.currentTarget.value)} />
      <button type="submit">${m.t('apply')}</button>
    </form>
  </div>`;
}

/** @param {readonly (number | null | undefined)[]} vals */
function extent(vals) {
  let min = Infinity, max = -Infinity;
  for (const v of vals) if (v !== null && v !== undefined) { if (v < min) min = v; if (v > max) max = v; }
  return min === Infinity ? null : { min, max };
}

/** @param {readonly (number | null | undefined)[]} vals */
function firstLast(vals) {
  /** @type {number | null} */
  let first = null;
  /** @type {number | null} */
  let last = null;
  for (const v of vals) if (v !== null && v !== undefined) { if (first === null) first = v; last = v; }
  return { first, last };
}

/** @typedef {{ label: string, field: string, values: (number | null)[] }} ChartSeries */

/** @param {{ m: Messages, vin: string, range: TimeRange }} props */
function Charts({ m, vin, range }) {
  const path = chartsPath(vin, range);
  const s = useLoad(() => /** @type {Promise<Series>} */ (get(path)), [path]);
  const charts = useMemo(() => {
    if (!s.data) return null;
    const f = s.data.fields;
    /** @type {(name: string, agg?: 'avg' | 'max') => (number | null)[]} */
    const col = (name, agg = 'avg') => f[name]?.[agg] ?? [];
    const has = (/** @type {(number | null)[]} */ vals) => vals.some((v) => v !== null);
    /** @type {(id: string, titleKey: MessageKey, list: ChartSeries[]) => { id: string, title: string, series: ChartSeries[], summary: string }} */
    const def = (id, titleKey, list) => {
      const series = list.filter((x) => has(x.values));
      const title = m.t(titleKey);
      let summary;
      if (series.length === 0) summary = m.t('chartEmpty', { name: title });
      else {
        summary = series
          .map((x) => {
            // Not null: only series with values are drawn.
            const e = /** @type {{ min: number, max: number }} */ (extent(x.values));
            return m.t('chartSummary', { name: x.label, from: m.dateTime(range.from), to: m.dateTime(range.to), min: m.unit(x.field, e.min), max: m.unit(x.field, e.max) });
          })
          .join(' ');
      }
      return { id, title, series, summary };
    };
    // Average consumption from the lifetime counters: fuel used per 100 km driven.
    const fuel = col('consumption.totalFuelConsumedL', 'max');
    const dist = col('consumption.totalDistanceKm', 'max');
    const lifetime = fuel.map((v, i) => (v !== null && dist[i] ? (v / dist[i]) * 100 : null));
    const fl = firstLast(fuel), dl = firstLast(dist);
    const driven = dl.last !== null && dl.first !== null ? dl.last - dl.first : 0;
    const inRange = driven > 0 && fl.last !== null ? ((fl.last - /** @type {number} */ (fl.first)) / driven) * 100 : null;
    const list = [
      def('chart-speed', 'chartSpeed', [
        { label: `${m.label('technical.speedKmh')} (${m.t('avg')})`, field: 'technical.speedKmh', values: col('technical.speedKmh') },
        { label: `${m.label('technical.speedKmh')} (${m.t('max')})`, field: 'technical.speedKmh', values: col('technical.speedKmh', 'max') },
      ]),
      def('chart-odometer', 'chartOdometer', [{ label: m.label('technical.odometerKm'), field: 'technical.odometerKm', values: col('technical.odometerKm', 'max') }]),
      def('chart-energy', 'chartEnergy', [
        { label: m.label('technical.fuelLevelPct'), field: 'technical.fuelLevelPct', values: col('technical.fuelLevelPct') },
        { label: m.label('technical.batterySocPct'), field: 'technical.batterySocPct', values: col('technical.batterySocPct') },
      ]),
      def('chart-temps', 'chartTemps', [
        { label: m.label('technical.outsideTempC'), field: 'technical.outsideTempC', values: col('technical.outsideTempC') },
        { label: m.label('technical.coolantTempC'), field: 'technical.coolantTempC', values: col('technical.coolantTempC') },
        { label: m.label('technical.engineOilTempC'), field: 'technical.engineOilTempC', values: col('technical.engineOilTempC') },
      ]),
      def('chart-obfcm', 'chartObfcm', [
        { label: m.label('consumption.totalFuelConsumedL'), field: 'consumption.totalFuelConsumedL', values: fuel },
        { label: m.label('consumption.totalGridEnergyIntoBatteryKwh'), field: 'consumption.totalGridEnergyIntoBatteryKwh', values: col('consumption.totalGridEnergyIntoBatteryKwh', 'max') },
      ]),
      def('chart-consumption', 'chartAvgConsumption', [{ label: m.t('chartAvgConsumption'), field: 'avgConsumption', values: lifetime }]),
    ];
    return { list, inRange, driven, lifetime: firstLast(lifetime).last };
  }, [s.data, m.lang]);
  if (s.loading) return html`<p>${m.t('loading')}</p>`;
  if (s.error) return html`<${Problem} m=${m} error=${s.error} />`;
  if (!s.data || !charts) return null;
  const xs = s.data.t;
  return html`<div class="charts" data-buckets=${xs.length}>
    ${charts.inRange !== null && html`<p id="avg-consumption">${m.t('avgInRange', { value: m.unit('avgConsumption', charts.inRange), dist: m.unit('consumption.totalDistanceKm', charts.driven) })}</p>`}
    ${charts.lifetime !== null && html`<p>${m.t('avgLifetime', { value: m.unit('avgConsumption', charts.lifetime) })}</p>`}
    ${charts.list.map((c) => html`<${Chart} key=${c.id} id=${c.id} m=${m} title=${c.title} xs=${xs} series=${c.series} summary=${c.summary} range=${range} />`)}
  </div>`;
}

/**
 * `locationAllowed`: the owner's location choice; null while it is being read (an empty track is explained only once it is known).
 * @param {{ m: Messages, vin: string, range: TimeRange, locationAllowed: boolean | null }} props
 */
function TrackSection({ m, vin, range, locationAllowed }) {
  const path = trackPath(vin, range);
  const s = useLoad(() => /** @type {Promise<Series>} */ (get(path)), [path]);
  const points = useMemo(() => {
    if (!s.data) return [];
    const lat = s.data.fields['location.latitude']?.avg ?? [];
    const lon = s.data.fields['location.longitude']?.avg ?? [];
    /** @type {{ t: number, lat: number, lon: number }[]} */
    const out = [];
    for (let i = 0; i < s.data.t.length; i++) if (lat[i] !== null && lon[i] !== null && lat[i] !== undefined) out.push({ t: s.data.t[i], lat: /** @type {number} */ (lat[i]), lon: /** @type {number} */ (lon[i]) });
    return out;
  }, [s.data]);
  return html`<section aria-labelledby="track-h" id="track">
    <h2 id="track-h">${m.t('track')}</h2>
    <p class="muted">${m.t('trackIntro')}</p>
    ${s.loading && html`<p>${m.t('loading')}</p>`}
    <${Problem} m=${m} error=${s.error} />
    ${!s.loading && points.length === 0 && locationAllowed !== null && html`<p id="track-empty">${locationAllowed ? m.t('trackEmpty') : m.t('trackOptedOut')}</p>`}
    ${points.length > 0 && html`<${Track} m=${m} points=${points} from=${points[0].t} to=${points[points.length - 1].t} />`}
  </section>`;
}
