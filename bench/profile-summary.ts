// Where the time goes in a V8 .cpuprofile (node --cpu-prof): self time by function and
// by package/file. Used by `npm run bench -- --profile` on the ingest gateway; also
// runnable alone: tsx bench/profile-summary.ts <file.cpuprofile> [top]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function where(url: string): string {
  if (!url) return '(native/V8)';
  let p = url;
  try {
    if (url.startsWith('file://')) p = fileURLToPath(url);
  } catch {
    // keep as is
  }
  const nm = p.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = p.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (p.startsWith('node:')) return p;
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  return p.startsWith(repo) ? path.relative(repo, p) : p;
}

export function summarize(file: string, top = 25): string {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i]!, (self.get(prof.samples[i]!) ?? 0) + (prof.timeDeltas[i] ?? 0));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fn = new Map<string, number>();
  const pkg = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const w = where(n.callFrame.url);
    const name = n.callFrame.functionName || '(anonymous)';
    const key = name.startsWith('(') && !n.callFrame.url ? name : `${name}  ${w}:${n.callFrame.lineNumber + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    const pk = name === '(idle)' ? '(idle)' : name === '(garbage collector)' ? '(garbage collector)' : name === '(program)' ? '(program)' : w;
    pkg.set(pk, (pkg.get(pk) ?? 0) + us);
  }
  const pct = (us: number) => ((100 * us) / total).toFixed(1).padStart(5) + ' %';
  const lines: string[] = [];
  lines.push(`profile ${file}: ${(total / 1e6).toFixed(1)} s sampled`);
  lines.push('self time by package / file:');
  for (const [k, us] of [...pkg].sort((a, b) => b[1] - a[1]).slice(0, 15)) lines.push(`  ${pct(us)}  ${k}`);
  lines.push(`self time by function (top ${top}):`);
  for (const [k, us] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(us)}  ${k}`);
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const f = process.argv[2];
  if (!f) {
    console.error('usage: tsx bench/profile-summary.ts <file.cpuprofile> [top]');
    process.exit(2);
  }
  console.log(summarize(f, Number(process.argv[3] ?? 25)));
}
