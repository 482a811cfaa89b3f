// The operator CLI as operators run it: child processes (`node --import tsx cli/index.ts …`, what `npm run cli --` runs, and the
// package bin `node bin/cardata-gateway.js …`) against a fresh database, exit codes
// 0 done / 1 failed / 2 usage / 3 conflict / 4 not found; a secret it prints opens an
// MQTT session on a gateway using the same database.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { connectVehicle, encodeBatch, publish, record, startTestGateway, testVin, tryConnect } from '../helpers/gateway.ts';
import { killAllChildren, runChild } from '../helpers/proc.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let gw: RunningGateway | null = null;
// Where PGlite would put its files if a command ignored DATABASE_URL: must stay empty.
const dataDir = mkdtempSync(path.join(tmpdir(), 'cardata-cli-'));

type Result = { code: number | null; stdout: string; stderr: string };

/** `node --import tsx cli/index.ts …` (what `npm run cli --` runs) on the test database. */
const cli = (...args: string[]): Promise<Result> => runChild(process.execPath, ['--import', 'tsx', 'cli/index.ts', ...args], { DATABASE_URL: db.url, DATA_DIR: dataDir }, 30_000);
/** The package bin, `node bin/cardata-gateway.js …`, on the test database. */
const bin = (...args: string[]): Promise<Result> => runChild('node', ['bin/cardata-gateway.js', ...args], { DATABASE_URL: db.url, DATA_DIR: dataDir }, 30_000);

const show = (r: Result) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

/** The last line of stdout that parses as JSON. */
function jsonOut(r: Result): any {
  const lines = r.stdout.trim().split('\n').reverse();
  for (const l of lines) {
    try {
      return JSON.parse(l);
    } catch {
      // not JSON: try the line before
    }
  }
  throw new Error(`no JSON in stdout\n${show(r)}`);
}

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  killAllChildren();
  await gw?.close();
  await db?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('usage', () => {
  it('--help: exit 0, lists every command; also through the package bin', async () => {
    const [a, b] = await Promise.all([cli('--help'), bin('--help')]);
    for (const r of [a, b]) {
      expect(r.code, show(r)).toBe(0);
      expect(r.stdout).toContain('usage: cardata-gateway <command>');
      for (const c of ['migrate', 'provision', 'vehicles', 'consent']) expect(r.stdout).toMatch(new RegExp(`^\\s+${c}\\s`, 'm'));
    }
  });

  it("a command's --help: exit 0 with its usage", async () => {
    const r = await cli('provision', '--help');
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain('provision --vin <VIN> --owner <ownerId>');
  });

  it('unknown command: exit 2, says so on stderr; no command at all: exit 2', async () => {
    const [a, b, c] = await Promise.all([cli('frobnicate'), bin('frobnicate'), cli()]);
    for (const r of [a, b]) {
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr).toContain('unknown command "frobnicate"');
    }
    expect(c.code, show(c)).toBe(2);
  });

  it('unknown option: exit 2', async () => {
    const r = await cli('vehicles', '--bogus');
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toContain('usage: cardata-gateway vehicles');
  });
});

describe('on a database', () => {
  const vin = testVin();
  let secret: string;

  it('migrate: exit 0 and applies the schema; again: exit 0, nothing to apply', async () => {
    const r = await cli('migrate');
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/^applied: 001_core\.sql/m);
    expect(r.stdout).toMatch(/^timescaledb: /m);
    const tables = await db.query<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('vehicles', 'telemetry')");
    expect(tables).toHaveLength(2);
    const again = await bin('migrate');
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout).toContain('schema up to date');
  });

  it('provision --json: prints {vin, secret}, exit 0; only a hash is stored', async () => {
    const r = await cli('provision', '--vin', vin, '--owner', 'owner-cli', '--json');
    expect(r.code, show(r)).toBe(0);
    const out = jsonOut(r);
    expect(Object.keys(out).sort()).toEqual(['secret', 'vin']);
    expect(out.vin).toBe(vin);
    expect(out.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    secret = out.secret;
    const rows = await db.query<{ owner_id: string; secret_hash: string }>('SELECT owner_id, secret_hash FROM vehicles WHERE vin = $1', [vin]);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.owner_id).toBe('owner-cli');
    expect(rows[0]!.secret_hash).not.toContain(secret);
    expect(rows[0]!.secret_hash).toMatch(/^scrypt\$/);
  });

  it('the printed secret authenticates over MQTT on a gateway using the same database; a wrong one does not', async () => {
    gw = await startTestGateway(db.url);
    const client = await connectVehicle(gw, vin, secret);
    try {
      await publish(client, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [record(1, Date.now() - 1000, { technical: { speedKmh: 42 } })]));
    } finally {
      await client.endAsync();
    }
    expect(await db.query('SELECT seq FROM telemetry WHERE vin = $1', [vin])).toEqual([{ seq: 1 }]);
    const refused = await tryConnect(gw, { clientId: vin, username: vin, password: secret.slice(0, -1) + (secret.endsWith('A') ? 'B' : 'A') });
    expect(refused).not.toBeNull();
  });

  it('the same VIN again: exit 3, nothing changed (also through the bin)', async () => {
    const [a, b] = await Promise.all([cli('provision', '--vin', vin, '--owner', 'someone-else', '--json'), bin('provision', '--vin', vin, '--owner', 'someone-else')]);
    for (const r of [a, b]) {
      expect(r.code, show(r)).toBe(3);
      expect(r.stderr).toContain(`vehicle ${vin} is already provisioned`);
      expect(r.stdout).not.toMatch(/secret/);
    }
    expect(await db.query('SELECT owner_id FROM vehicles WHERE vin = $1', [vin])).toEqual([{ owner_id: 'owner-cli' }]);
  });

  it('a bad VIN, or a missing --owner: exit 2, nothing stored', async () => {
    const [bad, lower, noOwner] = await Promise.all([
      cli('provision', '--vin', 'WVWZZZ1JZXW00000I', '--owner', 'o', '--json'), // I is not allowed
      cli('provision', '--vin', vin.toLowerCase(), '--owner', 'o'),
      cli('provision', '--vin', testVin()),
    ]);
    for (const r of [bad, lower, noOwner]) expect(r.code, show(r)).toBe(2);
    expect(bad.stderr).toContain('is not an ISO 3779 VIN');
    expect(noOwner.stderr).toContain('--owner is required');
    expect(await db.query<{ n: number }>('SELECT count(*)::int AS n FROM vehicles')).toEqual([{ n: 1 }]);
  });

  it('vehicles --json lists it (also through the bin); --limit 0 is a usage error', async () => {
    const second = testVin();
    const p = await bin('provision', '--vin', second, '--owner', 'owner-bin', '--json');
    expect(p.code, show(p)).toBe(0);
    expect(jsonOut(p).vin).toBe(second);

    const [a, b, bad] = await Promise.all([cli('vehicles', '--json'), bin('vehicles', '--json'), cli('vehicles', '--limit', '0')]);
    for (const r of [a, b]) {
      expect(r.code, show(r)).toBe(0);
      const list = jsonOut(r) as { vin: string; ownerId: string; createdAt: string }[];
      expect(list.map((v) => v.vin)).toEqual([vin, second].sort());
      const mine = list.find((v) => v.vin === vin)!;
      expect(mine.ownerId).toBe('owner-cli');
      expect(Number.isNaN(Date.parse(mine.createdAt))).toBe(false);
      expect(JSON.stringify(list)).not.toContain('secret');
    }
    expect(bad.code, show(bad)).toBe(2);
    const plain = await cli('vehicles', '--limit', '1', '--after', [vin, second].sort()[0]!);
    expect(plain.code, show(plain)).toBe(0);
    expect(plain.stdout.trim().split('\n').filter((l) => /^[A-Z0-9]{17}\t/.test(l))).toEqual([expect.stringMatching(new RegExp(`^${[vin, second].sort()[1]}\\t`))]);
  });

  it('consent --json: the defaults for a new vehicle', async () => {
    const r = await cli('consent', '--vin', vin, '--json');
    expect(r.code, show(r)).toBe(0);
    expect(jsonOut(r)).toEqual({ vin, location: true, co2Sharing: true, history: [{ sinceMs: 0, location: true, co2Sharing: true, restricted: false }] });
  });

  it('consent of an unknown VIN: exit 4; of a malformed one: exit 2', async () => {
    const unknown = testVin();
    const [a, b, c] = await Promise.all([cli('consent', '--vin', unknown, '--json'), bin('consent', '--vin', unknown), cli('consent', '--vin', 'nope')]);
    for (const r of [a, b]) {
      expect(r.code, show(r)).toBe(4);
      expect(r.stderr).toContain(`vehicle ${unknown} is not provisioned`);
    }
    expect(c.code, show(c)).toBe(2);
  });

  it('token: mints a token a gateway with the same JWT_KEYS accepts; without JWT_KEYS: exit 1; bad role: exit 2', async () => {
    const keys = 'cli1:' + 'k'.repeat(40);
    const { vin: v2, secret } = await (async () => {
      const r = await cli('provision', '--vin', testVin(), '--owner', 'cli-owner', '--json');
      expect(r.code, show(r)).toBe(0);
      return jsonOut(r) as { vin: string; secret: string };
    })();
    expect(secret.length).toBeGreaterThan(30);
    const t = await runChild(process.execPath, ['--import', 'tsx', 'cli/index.ts', 'token', '--role', 'customer', '--subject', 'cli-owner', '--ttl', '600'], { DATABASE_URL: db.url, DATA_DIR: dataDir, JWT_KEYS: keys }, 30_000);
    expect(t.code, show(t)).toBe(0);
    const token = t.stdout.trim().split('\n').pop()!;
    const g = await startTestGateway(db.url, { JWT_KEYS: keys });
    try {
      const res = await fetch(`http://127.0.0.1:${g.httpPort}/v1/vehicles/${v2}/consent`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
    } finally {
      await g.close();
    }
    const none = await cli('token', '--role', 'customer', '--subject', 'x');
    expect(none.code, show(none)).toBe(1);
    expect(none.stderr).toContain('JWT_KEYS');
    const bad = await cli('token', '--role', 'root', '--subject', 'x');
    expect(bad.code, show(bad)).toBe(2);
  });

  it('recipient: registers a workshop or third party (exit 0), listed by GET /v1/recipients; a taken id exit 3; a bad role exit 2', { timeout: 120_000 }, async () => {
    const id = `cli-garage-${Date.now()}`;
    const r = await cli('recipient', '--id', id, '--role', 'workshop', '--name', 'CLI Garage', '--json');
    expect(r.code, show(r)).toBe(0);
    expect(jsonOut(r)).toMatchObject({ id, role: 'workshop', name: 'CLI Garage' });
    expect((await cli('recipient', '--id', id, '--role', 'third_party', '--name', 'Again')).code).toBe(3);
    expect((await cli('recipient', '--id', `${id}-2`, '--role', 'customer', '--name', 'x')).code).toBe(2);
    const keys = 'cli2:' + 'r'.repeat(40);
    const g = await startTestGateway(db.url, { JWT_KEYS: keys });
    try {
      const { createTokenService, parseKeys } = await import('../../identity/tokens.ts');
      const tok = (await createTokenService(parseKeys(keys)).sign({ role: 'customer', subject: 'cli-someone', ttlSeconds: 60 })).token;
      const res = await fetch(`http://127.0.0.1:${g.httpPort}/v1/recipients`, { headers: { authorization: `Bearer ${tok}` } });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { recipients: unknown[] }).recipients).toEqual([{ id, role: 'workshop', name: 'CLI Garage' }]);
    } finally {
      await g.close();
    }
    expect(await db.query('SELECT id FROM recipients ORDER BY id')).toEqual([{ id }]);
  });

  it('export: writes the current owner\'s records to a file as NDJSON or CSV; refuses to overwrite; unknown VIN exit 4', async () => {
    const r = await cli('provision', '--vin', testVin(), '--owner', 'exp-owner', '--json');
    const { vin: v3, secret } = jsonOut(r) as { vin: string; secret: string };
    gw ??= await startTestGateway(db.url);
    const c = await connectVehicle(gw, v3, secret);
    const t0 = Date.now() - 10_000;
    await publish(c, `v1/vehicles/${v3}/telemetry`, encodeBatch(v3, [1, 2, 3].map((s) => record(s, t0 + s * 1000, { technical: { speedKmh: s }, location: { latitude: 48 + s / 10, longitude: 11 } }))));
    await c.endAsync();
    const out = path.join(dataDir, '..', `cardata-cli-export-${process.pid}.ndjson`);
    const csv = out.replace(/ndjson$/, 'csv');
    try {
      const e = await cli('export', '--vin', v3, '--out', out);
      expect(e.code, show(e)).toBe(0);
      const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(lines.map((l) => [l.seq, l.technical.speedKmh, l.location.latitude])).toEqual([[1, 1, 48.1], [2, 2, 48.2], [3, 3, 48.3]]);
      const again = await cli('export', '--vin', v3, '--out', out);
      expect(again.code, show(again)).toBe(1);
      const k = await cli('export', '--vin', v3, '--out', csv, '--format', 'csv', '--categories', 'location');
      expect(k.code, show(k)).toBe(0);
      const rows = readFileSync(csv, 'utf8').trim().split(/\r?\n/);
      expect(rows[0]).toBe('vin,seq,recordedAt,receivedAt,location.latitude,location.longitude,location.headingDeg,location.altitudeM,location.accuracyM');
      expect(rows[1]).toMatch(new RegExp(`^${v3},1,${new Date(t0 + 1000).toISOString().replace(/\./g, '\\.')},\\d{4}-\\d\\d-\\d\\dT[0-9:.]+Z,48\\.1,11,,,$`));
      const unknown = await cli('export', '--vin', testVin(), '--out', out + '.x');
      expect(unknown.code, show(unknown)).toBe(4);
    } finally {
      rmSync(out, { force: true });
      rmSync(csv, { force: true });
    }
    // Five CLI processes and a gateway start: each CLI start compiles TypeScript (seconds on a loaded machine).
  }, 90_000);

  it('a database that does not answer: exit 1 with the reason', async () => {
    const u = new URL(db.url);
    u.port = '1'; // nothing listens there
    const r = await runChild(process.execPath, ['--import', 'tsx', 'cli/index.ts', 'vehicles'], { DATABASE_URL: u.toString(), DATA_DIR: dataDir }, 30_000);
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toMatch(/^vehicles failed: /m);
  });

  it('never fell back to the embedded database (DATA_DIR untouched)', () => {
    expect(readdirSync(dataDir)).toEqual([]);
  });
});
