// The data categories a caller may ask for: one rule for the HTTP API and the CLI.
import { GROUPS, type Group } from '../proto/fields.ts';

/**
 * A comma-separated list of categories (technical, consumption, location), in the
 * contract's order; blanks and repeats are ignored, at least one is needed.
 */
export function parseCategories(list: string): { ok: true; groups: Group[] } | { ok: false; message: string } {
  const parts = [...new Set(list.split(',').map((x) => x.trim()).filter(Boolean))];
  for (const p of parts) {
    if (!(GROUPS as readonly string[]).includes(p)) return { ok: false, message: `unknown category ${JSON.stringify(p)}: use ${GROUPS.join(', ')}` };
  }
  if (parts.length === 0) return { ok: false, message: 'at least one category' };
  return { ok: true, groups: GROUPS.filter((g) => parts.includes(g)) };
}

/**
 * The categories of a CarData export: the telemetry groups and `connectivity` (its
 * connections, a file of the ZIP: README "Connectivity"); blanks and repeats ignored, at
 * least one needed.
 */
export function parseExportCategories(list: string): { ok: true; groups: Group[]; connectivity: boolean } | { ok: false; message: string } {
  const parts = [...new Set(list.split(',').map((x) => x.trim()).filter(Boolean))];
  const connectivity = parts.includes('connectivity');
  const rest = parts.filter((p) => p !== 'connectivity');
  if (rest.length === 0) return connectivity ? { ok: true, groups: [], connectivity } : { ok: false, message: 'at least one category' };
  const r = parseCategories(rest.join(','));
  if (!r.ok) return { ok: false, message: r.message.replace(/: use .*/, `: use ${GROUPS.join(', ')}, connectivity`) };
  return { ok: true, groups: r.groups, connectivity };
}
