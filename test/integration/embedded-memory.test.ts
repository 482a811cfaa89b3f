// The embedded database's memory (storage/driver/pglite-init.ts, issue 24): the first
// start's initdb runs in a child process and leaves a whole cluster or nothing; every start
// uses the 16MB buffer pool, also on a data directory whose postgresql.conf says 128MB;
// and `npm start` on an empty DATA_DIR stays far below the 937 MB it peaked at when initdb
// ran in the gateway's own process (a memory bound, not a timing: the figure itself is
// the benchmark's, `npm run bench -- --only=embedded`).
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createPgliteDb } from '../../storage/driver/pglite.ts';
import { initPgliteDataDir, PGLITE_SHARED_BUFFERS } from '../../storage/driver/pglite-init.ts';
import { freePort, killAllChildren, spawnChild, waitForHttp200 } from '../helpers/proc.ts';

const root = mkdtempSync(path.join(tmpdir(), 'cardata-embedded-memory-'));
afterAll(() => {
  killAllChildren();
  rmSync(root, { recursive: true, force: true });
});

function hwmKb(pid: number): number {
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM for ${pid}`);
  return Number(m[1]);
}

describe('embedded database: first start and settings', () => {
  it('initdb in a child: a whole cluster, stale leftovers removed, files of others kept, a second call changes nothing', { timeout: 600_000 }, async () => {
    const dir = path.join(root, 'data');
    mkdirSync(path.join(dir, '.initdb-999999', 'base'), { recursive: true });
    writeFileSync(path.join(dir, '.initdb-999999', 'PG_VERSION'), 'half-made\n');
    writeFileSync(path.join(dir, 'key-encryption-key'), 'not the database\n');
    await initPgliteDataDir(dir);
    const entries = readdirSync(dir);
    expect(entries.filter((e) => e.startsWith('.initdb-'))).toEqual([]);
    expect(readFileSync(path.join(dir, 'PG_VERSION'), 'utf8').trim()).toMatch(/^\d+$/);
    expect(entries).toEqual(expect.arrayContaining(['base', 'global', 'pg_wal', 'postgresql.conf', 'key-encryption-key']));
    expect(readFileSync(path.join(dir, 'key-encryption-key'), 'utf8')).toBe('not the database\n');
    // initdb was told the pool size, so postgresql.conf records it
    expect(readFileSync(path.join(dir, 'postgresql.conf'), 'utf8')).toMatch(new RegExp(`^shared_buffers = ${PGLITE_SHARED_BUFFERS}`, 'm'));

    const before = readFileSync(path.join(dir, 'global', 'pg_control'));
    await initPgliteDataDir(dir);
    expect(readFileSync(path.join(dir, 'global', 'pg_control')).equals(before)).toBe(true);

    // a data directory made before this setting (postgresql.conf: 128MB) starts with 16MB too
    const conf = path.join(dir, 'postgresql.conf');
    writeFileSync(conf, readFileSync(conf, 'utf8').replace(/^shared_buffers = .*$/m, 'shared_buffers = 128MB'));
    const db = await createPgliteDb(dir);
    try {
      const r = await db.query<{ shared_buffers: string }>('SHOW shared_buffers');
      expect(r.rows[0]!.shared_buffers).toBe(PGLITE_SHARED_BUFFERS);
      await db.query('CREATE TABLE t (x int PRIMARY KEY)');
      await db.query('INSERT INTO t SELECT generate_series(1, 1000)');
    } finally {
      await db.close();
    }
    const again = await createPgliteDb(dir);
    try {
      expect((await again.query<{ n: number }>('SELECT count(*)::int AS n FROM t')).rows[0]!.n).toBe(1000);
    } finally {
      await again.close();
    }
  });

  it('an in-memory database (the tests\' own) uses the same pool', { timeout: 300_000 }, async () => {
    const db = await createPgliteDb(null);
    try {
      expect((await db.query<{ shared_buffers: string }>('SHOW shared_buffers')).rows[0]!.shared_buffers).toBe(PGLITE_SHARED_BUFFERS);
    } finally {
      await db.close();
    }
  });

  it('npm start on an empty DATA_DIR: the gateway process peaks under 400 MB (937 MB when initdb ran inside it)', { timeout: 600_000 }, async () => {
    const dataDir = path.join(root, 'npm-start');
    const httpPort = await freePort();
    const mqttPort = await freePort();
    // as `npm start` runs it (package.json), without npm in between, so the pid is the gateway's
    const child = spawnChild(process.execPath, ['--import', 'tsx', 'main.ts'], {
      DATA_DIR: dataDir,
      MQTT_HOST: '127.0.0.1',
      MQTT_PORT: String(mqttPort),
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: String(httpPort),
      LOG_LEVEL: 'warn',
    });
    try {
      await waitForHttp200(`http://127.0.0.1:${httpPort}/readyz`, 540_000, child);
      await child.waitForOutput(/cardata-gateway is running/, 10_000);
      expect(existsSync(path.join(dataDir, 'PG_VERSION'))).toBe(true);
      const kb = hwmKb(child.pid);
      console.log(`embedded npm start, first start: gateway VmHWM ${Math.round(kb / 1024)} MB`);
      expect(kb).toBeLessThan(400 * 1024);
    } finally {
      await child.stop(15_000);
    }
  });
});
