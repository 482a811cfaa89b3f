// Time-series charts with uPlot (canvas), each inside a <figure> whose caption and text
// summary say what the chart shows, for people who cannot see it.
import { html } from 'htm/preact';
import { useLayoutEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
/** @import { Messages } from './i18n.js' */

const COLORS = ['#0b57d0', '#b3261e', '#146c2e', '#7a4b00', '#6a1b9a'];

/**
 * series: [{ label, values: (number|null)[] }] over xs (ms since epoch).
 * summary: the text alternative. range: { from, to } (ms), the period asked for: the time
 * axis spans it whatever the data (one stored value would otherwise make a zero-wide axis).
 * @param {{ id: string, title: string, xs: number[], series: { label: string, field: string, values: (number | null)[] }[], summary: string, m: Messages, range?: TimeRange, height?: number }} props
 */
export function Chart({ id, title, xs, series, summary, m, range, height = 200 }) {
  const box = useRef(/** @type {HTMLDivElement | null} */ (null));
  // Drawn as soon as the figure is in the page (a layout effect), not a frame later.
  useLayoutEffect(() => {
    if (!box.current || xs.length === 0) return;
    const width = Math.max(280, Math.min(box.current.clientWidth || 640, 900));
    const span = range ? range.to - range.from : xs.length > 1 ? xs[xs.length - 1] - xs[0] : 0;
    // Tick labels in the viewer's language and time zone: days for long ranges, hours for short.
    const tick = m.dateFormat(span > 3 * 86_400_000 ? { day: 'numeric', month: 'short' } : { day: 'numeric', hour: '2-digit', minute: '2-digit' });
    const hover = m.dateFormat({ dateStyle: 'medium', timeStyle: 'short' });
    const digits = (/** @type {number} */ incr) => Math.max(0, Math.min(3, -Math.floor(Math.log10(incr || 1))));
    const plot = new uPlot(
      {
        width,
        height,
        legend: { show: series.length > 1, live: false },
        cursor: { show: true, points: { show: false } },
        scales: { x: range ? { time: true, range: [range.from / 1000, range.to / 1000] } : { time: true } },
        axes: [
          { stroke: '#333', grid: { stroke: '#e4e4e4' }, space: 70, values: (_u, ticks) => ticks.map((v) => tick.format(new Date(v * 1000))) },
          { stroke: '#333', grid: { stroke: '#e4e4e4' }, size: 64, values: (_u, ticks, _a, _s, incr) => ticks.map((v) => m.number(v, digits(incr))) },
        ],
        series: [
          { value: (_u, v) => (v === null ? '–' : hover.format(new Date(v * 1000))) },
          ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false, points: { show: xs.length < 60 }, value: (/** @type {uPlot} */ _u, /** @type {number | null} */ v) => m.unit(s.field, v) })),
        ],
      },
      [xs.map((x) => x / 1000), ...series.map((s) => s.values)],
      box.current,
    );
    return () => plot.destroy();
  }, [xs, series, m.lang, range?.from, range?.to]);
  return html`<figure class="chart" id=${id} aria-labelledby=${id + '-t'}>
    <figcaption id=${id + '-t'}>${title}</figcaption>
    <div ref=${box} class="chart-box" role="img" aria-label=${summary}></div>
    <p class="chart-summary">${summary}</p>
  </figure>`;
}
