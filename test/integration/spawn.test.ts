// devkit/spawn.ts, the one spawner of the tests and the benchmark, on real node children:
// output capture, bounded waits, signals, the process group killed as a whole, the IPC
// request/response protocol the benchmark's children speak.
import { afterAll, describe, expect, it } from 'vitest';
import { killAllProcesses, spawnProcess } from '../../devkit/spawn.ts';

const node = (code: string, opts: Parameters<typeof spawnProcess>[2] = {}) => spawnProcess(process.execPath, ['-e', code], opts);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

afterAll(() => killAllProcesses());

describe('spawnProcess', () => {
  it('captures stdout and stderr apart and interleaved, and reports the exit code', async () => {
    const p = node(`process.stdout.write('out1\\n'); process.stderr.write('err1\\n'); setTimeout(() => { process.stdout.write('out2\\n'); process.exit(3); }, 50);`);
    const e = await p.exited(10_000);
    expect(e.code).toBe(3);
    expect(p.stdout()).toBe('out1\nout2\n');
    expect(p.stderr()).toBe('err1\n');
    expect(p.output()).toContain('err1');
    expect(p.running).toBe(false);
  });

  it('waitForOutput resolves on a match, and rejects with the output when the process exits first', async () => {
    const p = node(`console.log('port=1234'); setTimeout(() => {}, 10_000);`);
    const m = await p.waitForOutput(/port=(\d+)/, 10_000);
    expect(m[1]).toBe('1234');
    p.killTree();
    const q = node(`console.log('bye')`);
    await expect(q.waitForOutput(/never/, 10_000)).rejects.toThrow(/exited.*bye/s);
  });

  it('exited() rejects after its timeout while the process runs; stop() ends it with SIGTERM', async () => {
    const p = node(`setInterval(() => {}, 1000)`);
    await expect(p.exited(200)).rejects.toThrow(/still running after 200 ms/);
    const e = await p.stop(5000);
    expect(e.signal).toBe('SIGTERM');
  });

  it('stop() falls back to SIGKILL when SIGTERM is ignored', async () => {
    const p = node(`process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000)`);
    await p.waitForOutput(/ready/, 10_000);
    const e = await p.stop(300);
    expect(e.signal).toBe('SIGKILL');
  });

  it('killTree() ends the whole process group, grandchildren included', async () => {
    const p = node(`const c = require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); console.log('grandchild=' + c.pid); setInterval(() => {}, 1000);`);
    const m = await p.waitForOutput(/grandchild=(\d+)/, 10_000);
    const grandchild = Number(m[1]);
    expect(alive(grandchild)).toBe(true);
    p.killTree();
    await p.exited(10_000);
    const t0 = Date.now();
    while (alive(grandchild) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
    expect(alive(grandchild)).toBe(false);
  });

  it('IPC: call() gets the reply with its id, errors come back as rejections, waitFor() sees typed messages', async () => {
    const child = `
      process.send({ type: 'ready', n: 7 });
      process.on('disconnect', () => process.exit(0));
      process.on('message', (m) => {
        if (m.cmd === 'add') process.send({ id: m.id, result: m.args.a + m.args.b });
        else process.send({ id: m.id, error: 'unknown command ' + m.cmd });
      });`;
    const p = node(child, { ipc: true });
    expect(await p.waitFor<{ n: number }>('ready', 10_000)).toMatchObject({ type: 'ready', n: 7 });
    expect(await p.call<number>('add', { a: 2, b: 40 }, 10_000)).toBe(42);
    await expect(p.call('nope', undefined, 10_000)).rejects.toThrow(/unknown command nope/);
    p.killTree();
    await p.exited(10_000);
    await expect(p.call('add', { a: 1, b: 1 })).rejects.toThrow(/not running/);
  });

  it('a command that cannot be started settles as exited with the spawn error', async () => {
    const p = spawnProcess('/nonexistent/binary', []);
    const e = await p.exited(10_000);
    expect(e.code).toBeNull();
    expect(p.stderr()).toMatch(/spawn error.*ENOENT/);
  });
});
