// A vitest reporter (registered in vitest.config.ts after the default one) that ends the run
// with every skipped test and why: "N skipped:", then one line per test. The reason is the
// note given to ctx.skip(reason) (test/helpers/skip.ts); a test skipped without one
// (it.skip, describe.skipIf, it.todo, left out by -t or .only) says which of those it was.
import path from 'node:path';
import type { Reporter, TestCase, TestModule, Vitest } from 'vitest/node';

function reasonOf(t: TestCase, namePattern: RegExp | undefined): string {
  const r = t.result();
  if (r.state === 'skipped' && r.note) return r.note;
  if (t.options.mode === 'todo') return 'todo (it.todo), not written yet';
  if (namePattern && !namePattern.test(t.fullName)) return `not selected by the name filter ${String(namePattern)}`;
  return 'skipped without a reason (it.skip / describe.skip / skipIf, or .only on another test)';
}

export default class SkipReporter implements Reporter {
  private vitest: Vitest | undefined;

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const pattern = this.vitest?.config.testNamePattern;
    const root = this.vitest?.config.root ?? process.cwd();
    const lines: string[] = [];
    let count = 0;
    for (const m of testModules) {
      const file = `[${m.project.name}] ${path.relative(root, m.moduleId)}`;
      // Tests left out by -t: one line per file, not one per test.
      let unselected = 0;
      for (const t of m.children.allTests()) {
        if (t.result().state !== 'skipped') continue;
        count++;
        const r = t.result();
        if (!(r.state === 'skipped' && r.note) && t.options.mode !== 'todo' && pattern && !pattern.test(t.fullName)) unselected++;
        else lines.push(`  ${file} > ${t.fullName}: ${reasonOf(t, pattern)}`);
      }
      if (unselected) lines.push(`  ${file}: ${unselected} test${unselected === 1 ? '' : 's'} not selected by the name filter ${String(pattern)}`);
    }
    const out = count ? `\n${count} skipped:\n${lines.join('\n')}\n` : '\n0 skipped.\n';
    if (this.vitest) this.vitest.logger.log(out);
    else process.stdout.write(out);
  }
}
