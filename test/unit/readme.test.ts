// The README's configuration table is the documentation of every setting: keep it whole.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS } from '../../config/index.ts';

describe('README', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('## Configuration');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const documented = new Set([...section.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((m) => m[1]));
  it('documents every setting of the configuration schema', () => {
    expect(CONFIG_KEYS.filter((k) => !documented.has(k))).toEqual([]);
  });
  it('documents no setting the schema does not know', () => {
    expect([...documented].filter((k) => !(CONFIG_KEYS as string[]).includes(k!))).toEqual([]);
  });
});
