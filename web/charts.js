// Time-series charts with uPlot (canvas), each inside a <figure> whose caption and text
// summary say what the chart shows, for people who cannot see it.
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

const COLORS = ['#0b57d0', '#b3261e', '#146c2e', '#7a4b00', '#6a1b9a'];

/**
 * series: [{ label, values: (number|null)[] }] over xs (ms since epoch).
 * summary: the text alternative.
 */
export function Chart({ id, title, xs, series, summary, m, height = 200 }) {
  const box = useRef(null);
  useEffect(() => {
    if (!box.current || xs.length === 0) return;
    const width = Math.max(280, Math.min(box.current.clientWidth || 640, 900));
    const fmtDate = new Intl.DateTimeFormat(m.locale, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
    const plot = new uPlot(
      {
        width,
        height,
        // Times are in the viewer's time zone, labelled in the viewer's language.
        fmtDate: () => (d) => fmtDate.format(d),
        legend: { show: series.length > 1, live: false },
        cursor: { show: true, points: { show: false } },
        scales: { x: { time: true } },
        axes: [
          { stroke: '#333', grid: { stroke: '#e4e4e4' } },
          { stroke: '#333', grid: { stroke: '#e4e4e4' }, size: 60, values: (_u, ticks) => ticks.map((v) => m.number(v, 1)) },
        ],
        series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false, points: { show: xs.length < 60 } }))],
      },
      [xs.map((x) => x / 1000), ...series.map((s) => s.values)],
      box.current,
    );
    return () => plot.destroy();
  }, [xs, series, m.lang]);
  return html`<figure class="chart" id=${id} aria-labelledby=${id + '-t'}>
    <figcaption id=${id + '-t'}>${title}</figcaption>
    <div ref=${box} class="chart-box" role="img" aria-label=${summary}></div>
    <p class="chart-summary">${summary}</p>
  </figure>`;
}
