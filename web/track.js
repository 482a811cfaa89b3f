// The trip track drawn locally as SVG from stored positions: no map tiles, no service
// asked. Equirectangular projection scaled by cos(latitude): exact enough for a city.
import { html } from 'htm/preact';
/** @import { Messages } from './i18n.js' */

/**
 * @param {{ points: { t: number, lat: number, lon: number }[], m: Messages, from: number, to: number }} props
 * (from, to: ms since epoch)
 */
export function Track({ points, m, from, to }) {
  if (points.length === 0) return null;
  const W = 640;
  const H = 360;
  const pad = 16;
  const lat0 = points.reduce((a, p) => a + p.lat, 0) / points.length;
  const k = Math.cos((lat0 * Math.PI) / 180);
  const xs = points.map((p) => p.lon * k);
  const ys = points.map((p) => p.lat);
  const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
  const span = Math.max(maxX - minX, maxY - minY, 1e-6);
  const s = Math.min((W - 2 * pad) / span, (H - 2 * pad) / span);
  const ox = (W - (maxX - minX) * s) / 2;
  const oy = (H - (maxY - minY) * s) / 2;
  /** @type {(i: number) => [number, number]} */
  const pt = (i) => [ox + (xs[i] - minX) * s, H - (oy + (ys[i] - minY) * s)];
  const d = points.map((_, i) => pt(i).map((v) => v.toFixed(1)).join(',')).join(' ');
  const [sx, sy] = pt(0);
  const [ex, ey] = pt(points.length - 1);
  const label = m.t('trackLabel', { n: m.number(points.length), from: m.dateTime(from), to: m.dateTime(to) });
  return html`<svg class="track" viewBox="0 0 ${W} ${H}" role="img" aria-label=${label} data-points=${points.length}>
    <title>${label}</title>
    <rect x="0" y="0" width=${W} height=${H} fill="#f4f6f8" />
    <polyline points=${d} fill="none" stroke="#0b57d0" stroke-width="3" stroke-linejoin="round" stroke-linecap="round" />
    <circle cx=${sx} cy=${sy} r="7" fill="#146c2e"><title>${m.t('start')}</title></circle>
    <circle cx=${ex} cy=${ey} r="7" fill="#b3261e"><title>${m.t('end')}</title></circle>
  </svg>`;
}
