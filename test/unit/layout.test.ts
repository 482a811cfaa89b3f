// The layout's import rules (README "Code layout"), checked on the source: which folder may
// import which, no cycle between folders, and nothing at the root but the entry point.
// Reads files only.
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Folder → the project folders its files may import (besides their own); identity/ and metrics/ are leaves anyone may use. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  config: [],
  proto: [],
  identity: ['proto'],
  metrics: ['proto'],
  filters: ['proto'],
  access: ['proto'],
  storage: ['proto'],
  stream: ['proto', 'storage'],
  gateway: ['proto', 'filters', 'identity'],
  api: ['proto', 'filters', 'access', 'identity', 'stream'],
  webhooks: ['proto', 'access', 'storage', 'stream', 'identity', 'metrics'],
  app: ['config', 'proto', 'identity', 'metrics', 'filters', 'access', 'storage', 'stream', 'gateway', 'api', 'simulator', 'webhooks'],
  cli: ['config', 'proto', 'identity', 'storage', 'api', 'app'],
  simulator: ['proto', 'identity'],
};
/** Of stream/, api/ may use only the modules without I/O: the session and the cursor. */
const API_MAY_USE_OF_STREAM = new Set(['stream/sse.ts', 'stream/cursor.ts']);

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(ROOT, dir))) {
    const rel = path.posix.join(dir, name);
    if (name === 'node_modules' || name === 'gen') continue;
    if (statSync(path.join(ROOT, rel)).isDirectory()) out.push(...sources(rel));
    else if (/\.ts$/.test(name) && !name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

/** Project-relative targets of a file's relative imports and re-exports (type-only ones too). */
function importsOf(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g)) {
    const spec = m[1] ?? m[2]!;
    out.push(path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)));
  }
  return out;
}

const folderOf = (file: string): string => (file.includes('/') ? file.slice(0, file.indexOf('/')) : '.');

describe('the layout', () => {
  const files = Object.keys(MAY_IMPORT).flatMap(sources);
  const edges = files.flatMap((f) => importsOf(f).map((to) => ({ from: f, to })));

  it('has sources in every folder it names', () => {
    for (const folder of Object.keys(MAY_IMPORT)) expect(files.some((f) => folderOf(f) === folder), folder).toBe(true);
    expect(edges.length).toBeGreaterThan(100);
  });

  it('no folder imports one it may not (README "Code layout")', () => {
    const wrong = edges.filter(({ from, to }) => {
      const a = folderOf(from);
      const b = folderOf(to);
      if (a === b) return false;
      if (!MAY_IMPORT[a]!.includes(b)) return true;
      return a === 'api' && b === 'stream' && !API_MAY_USE_OF_STREAM.has(to);
    });
    expect(wrong.map((e) => `${e.from} -> ${e.to}`)).toEqual([]);
  });

  it('has no cycle between folders', () => {
    const next = new Map<string, Set<string>>();
    for (const { from, to } of edges) {
      const a = folderOf(from);
      const b = folderOf(to);
      if (a !== b) (next.get(a) ?? next.set(a, new Set()).get(a)!).add(b);
    }
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (n: string, trail: string[]): void => {
      if (state.get(n) === 'done') return;
      if (state.get(n) === 'open') {
        cycles.push([...trail.slice(trail.indexOf(n)), n].join(' -> '));
        return;
      }
      state.set(n, 'open');
      for (const m of next.get(n) ?? []) visit(m, [...trail, n]);
      state.set(n, 'done');
    };
    for (const n of next.keys()) visit(n, []);
    expect(cycles).toEqual([]);
  });

  it('keeps only the entry point and tooling files at the root', () => {
    const rootTs = readdirSync(ROOT).filter((n) => n.endsWith('.ts'));
    expect(rootTs.sort()).toEqual(['main.ts', 'vitest.config.ts']);
  });
});
