// Finding 9 of issue 23: the embedded OpenID Provider's keys at rest and their rotation,
// through the real path: real gateways on one TimescaleDB, the Authorization Code + PKCE
// flow over HTTP, the JWKS as a verifier reads it, the entry points (main.ts, the CLI) as
// child processes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { api, provision, startTestGateway, testVin, waitFor } from '../helpers/gateway.ts';
import { TEST_REDIRECT_URI, refreshWith, signInWithCode } from '../helpers/oidc.ts';
import { freePort, killAllChildren, runChild } from '../helpers/proc.ts';
import { loadConfig } from '../../config/index.ts';
import { startGateway, type RunningGateway } from '../../app/gateway.ts';
import { createPgDb } from '../../storage/driver/db.ts';
import { createOidcStore } from '../../storage/repos/sign-in.ts';
import { parseKeyEncryptionKey, sealingCodec } from '../../identity/key-envelope.ts';
import { SIGNING_KEYS, asRing, retirementWindowS } from '../../identity/signing-keys.ts';
import { KEK_FILE } from '../../app/key-encryption.ts';

const KEK = randomBytes(32).toString('base64');
/** The first instance's HTTP port: one issuer for every instance (PUBLIC_URL), as behind a balancer, and across restarts. */
let portA: number;
let COMMON: Record<string, string>;

let db: TestDatabase;
const open: RunningGateway[] = [];
const base = (g: RunningGateway) => `http://127.0.0.1:${g.httpPort}`;
const headerOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString('utf8')) as { kid: string };
const rows = () => db.query<{ name: string; material: unknown; text: string }>('SELECT name, material, material::text AS text FROM oidc_keys ORDER BY name');

/** An instance; `first`: the one on PUBLIC_URL's port. */
async function gateway(env: Record<string, string> = {}, first = false): Promise<RunningGateway> {
  const g = await startTestGateway(db.url, { ...COMMON, ...(first ? { HTTP_PORT: String(portA) } : {}), ...env });
  open.push(g);
  return g;
}
async function stop(g: RunningGateway): Promise<void> {
  await g.close();
  open.splice(open.indexOf(g), 1);
}
async function jwksKids(g: RunningGateway): Promise<string[]> {
  const r = await api(g, 'GET', '/oidc/jwks', undefined, null);
  expect(r.status).toBe(200);
  for (const k of r.body.keys as Record<string, unknown>[]) expect(k).not.toHaveProperty('d');
  return (r.body.keys as { kid: string }[]).map((k) => k.kid);
}
let accounts = 0;
/** A fresh customer account with a vehicle; signs in at `g`. */
async function customer(g: RunningGateway) {
  const username = `key-user-${++accounts}`;
  const password = `pw-${username}-0123456789`;
  const subject = `owner-key-${accounts}`;
  const a = await api(g, 'POST', '/v1/admin/accounts', { username, password, role: 'customer', subject });
  expect(a.status, JSON.stringify(a.body)).toBe(201);
  await provision(g, testVin(), subject);
  return { username, password };
}
const vehicles = async (g: RunningGateway, token: string) => (await api(g, 'GET', '/v1/vehicles', undefined, token)).status;

/** `node --import tsx <entry>` with these settings only. */
const run = (entry: string, args: string[], env: Record<string, string>) => runChild(process.execPath, ['--import', 'tsx', entry, ...args], { LOG_LEVEL: 'silent', ...env }, 60_000);
async function mainWith(env: Record<string, string>) {
  return run('main.ts', [], { MQTT_HOST: '127.0.0.1', HTTP_HOST: '127.0.0.1', MQTT_PORT: String(await freePort()), HTTP_PORT: String(await freePort()), ADMIN_TOKEN: 'test-admin-token-0123456789abcdef', ...env });
}

beforeAll(async () => {
  db = await createTestDatabase();
  portA = await freePort();
  COMMON = { OIDC_PORTAL_REDIRECT_URIS: TEST_REDIRECT_URI, PUBLIC_URL: `http://127.0.0.1:${portA}` };
});
afterAll(async () => {
  for (const g of [...open].reverse()) await g.close().catch(() => {});
  killAllChildren();
  await db?.drop();
});

describe('keys at rest', () => {
  let plainKid: string;
  let before: { accessToken: string };

  it('an earlier version (no key-encryption key) kept the private key as plain JSON', async () => {
    const g = await gateway({}, true);
    plainKid = (await jwksKids(g))[0]!;
    before = await signInWithCode(base(g), await customer(g));
    await stop(g);
    const r = await rows();
    expect(r.map((x) => x.name)).toEqual(['cookie-keys', 'signing-rs256']);
    // What finding 9 is about: whoever reads the table reads the private exponent.
    expect(r.find((x) => x.name === 'signing-rs256')!.text).toContain('"d":');
  });

  it('the first start with KEY_ENCRYPTION_KEY encrypts those rows; the key is kept, and tokens signed before still verify', async () => {
    const [a, b] = await Promise.all([gateway({ KEY_ENCRYPTION_KEY: KEK }, true), gateway({ KEY_ENCRYPTION_KEY: KEK })]);
    for (const r of await rows()) {
      expect(r.material).toMatchObject({ enc: 'A256GCM', iv: expect.any(String), tag: expect.any(String), ct: expect.any(String) });
      expect(r.text).not.toContain('"d"');
      expect(r.text).not.toContain('"kty"');
    }
    expect(await jwksKids(a)).toEqual([plainKid]);
    expect(await jwksKids(b)).toEqual([plainKid]);
    expect(await vehicles(a, before.accessToken)).toBe(200);
    const t = await signInWithCode(base(b), await customer(b));
    expect(headerOf(t.accessToken).kid).toBe(plainKid);
    expect(await vehicles(a, t.accessToken)).toBe(200);
    await stop(b);
    await stop(a);
  });

  it('a wrong KEY_ENCRYPTION_KEY stops the start with a clear error, not a crash', async () => {
    const wrong = randomBytes(32).toString('base64');
    await expect(startTestGateway(db.url, { ...COMMON, KEY_ENCRYPTION_KEY: wrong })).rejects.toThrow(/KEY_ENCRYPTION_KEY is not the key the stored OpenID Provider keys were encrypted with/);
    const r = await mainWith({ DATABASE_URL: db.url, KEY_ENCRYPTION_KEY: wrong });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cardata-gateway: cannot start: KEY_ENCRYPTION_KEY is not the key the stored OpenID Provider keys were encrypted with/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    // No key at all, the rows encrypted: said as plainly.
    await expect(startTestGateway(db.url, COMMON)).rejects.toThrow(/encrypted, and KEY_ENCRYPTION_KEY is not set/);
    // The rows are untouched by the failed starts.
    for (const r2 of await rows()) expect(r2.material).toMatchObject({ enc: 'A256GCM' });
  }, 90_000);

  it('NODE_ENV=production without KEY_ENCRYPTION_KEY: refused at start, naming the key and how to make one', async () => {
    const r = await mainWith({ DATABASE_URL: db.url, NODE_ENV: 'production' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('KEY_ENCRYPTION_KEY: required with NODE_ENV=production');
    expect(r.stderr).toContain('openssl rand -base64 32');
    expect(r.stdout).not.toContain('cardata-gateway is running');
  }, 90_000);

  it('the embedded database without KEY_ENCRYPTION_KEY: a key generated beside its data (0600), reused at the next start', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cardata-kek-'));
    try {
      const cfg = loadConfig({ DATA_DIR: dir, MQTT_HOST: '127.0.0.1', MQTT_PORT: '0', HTTP_HOST: '127.0.0.1', HTTP_PORT: '0', ADMIN_TOKEN: 'test-admin-token-0123456789abcdef', LOG_LEVEL: 'silent' });
      let g = await startGateway(cfg);
      const kid = (await jwksKids(g))[0];
      const file = path.join(dir, KEK_FILE);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const material = (await g.db.query<{ text: string }>('SELECT material::text AS text FROM oidc_keys')).rows;
      expect(material).toHaveLength(2);
      for (const m of material) expect(m.text).toMatch(/"enc": ?"A256GCM"/);
      await g.close();
      g = await startGateway(cfg);
      expect((await jwksKids(g))[0]).toBe(kid);
      await g.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('rotation of the signing key', () => {
  let a: RunningGateway;
  let b: RunningGateway;
  let oldKid: string;
  let newKid: string;
  let early: Awaited<ReturnType<typeof signInWithCode>>;

  beforeAll(async () => {
    // The default JWKS cooldown (30 s): a rotation must not wait for it.
    a = await gateway({ KEY_ENCRYPTION_KEY: KEK }, true);
    b = await gateway({ KEY_ENCRYPTION_KEY: KEK });
    oldKid = (await jwksKids(a))[0]!;
    early = await signInWithCode(base(a), await customer(a));
    // Both instances' verifiers have the JWKS cached.
    expect(await vehicles(a, early.accessToken)).toBe(200);
    expect(await vehicles(b, early.accessToken)).toBe(200);
  });

  it('needs the admin token', async () => {
    const r = await api(a, 'POST', '/v1/admin/keys/rotate', undefined, 'not-the-admin-token-000000');
    expect(r.status).toBe(401);
    expect(await jwksKids(a)).toEqual([oldKid]);
  });

  it('publishes the new key at once, signs with it, and the token from before still verifies on every instance', async () => {
    const r = await api(a, 'POST', '/v1/admin/keys/rotate');
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    newKid = r.body.kid as string;
    expect(newKid).not.toBe(oldKid);
    expect(r.body.verifying).toEqual([newKid, oldKid]);
    expect(await jwksKids(a)).toEqual([newKid, oldKid]);
    // The stored ring stays encrypted.
    for (const row of await rows()) expect(row.text).not.toContain('"d"');

    expect(await vehicles(a, early.accessToken)).toBe(200);
    expect(await vehicles(b, early.accessToken)).toBe(200);
    const t = await signInWithCode(base(a), await customer(a));
    expect(headerOf(t.accessToken).kid).toBe(newKid);
    expect(await vehicles(a, t.accessToken)).toBe(200);
    // The other instance: a token naming the new key is verified at once (NOTIFY, or the read it causes).
    expect(await vehicles(b, t.accessToken)).toBe(200);
    await waitFor(async () => (await jwksKids(b)).join() === [newKid, oldKid].join());
    const tb = await signInWithCode(base(b), await customer(b));
    expect(headerOf(tb.accessToken).kid).toBe(newKid);
    expect(await vehicles(a, tb.accessToken)).toBe(200);
  });

  it('a session from before goes on: its refresh token gives an access token with the new key', async () => {
    const r = await refreshWith(base(b), early.refreshToken!);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(headerOf(r.body.access_token!).kid).toBe(newKid);
    expect(await vehicles(a, r.body.access_token!)).toBe(200);
  });

  it('rotations at once (both instances) each add a key; no token in flight is refused', async () => {
    const [r1, r2] = await Promise.all([api(a, 'POST', '/v1/admin/keys/rotate'), api(b, 'POST', '/v1/admin/keys/rotate')]);
    expect([r1.status, r2.status]).toEqual([200, 200]);
    expect(r1.body.kid).not.toBe(r2.body.kid);
    const all = [r1.body.verifying as string[], r2.body.verifying as string[]].sort((x, y) => y.length - x.length)[0]!;
    expect(all).toHaveLength(4);
    expect(all.slice(2)).toEqual([newKid, oldKid]);
    await waitFor(async () => (await jwksKids(a)).length === 4 && (await jwksKids(b)).length === 4);
    expect(await vehicles(a, early.accessToken)).toBe(200);
    expect(await vehicles(b, early.accessToken)).toBe(200);
    const t = await signInWithCode(base(b), await customer(b));
    expect(all.slice(0, 2)).toContain(headerOf(t.accessToken).kid);
    expect(await vehicles(a, t.accessToken)).toBe(200);
  });

  it('the CLI rotates too (rotate-signing-key); the running gateways publish its key', async () => {
    const r = await run('cli/index.ts', ['rotate-signing-key', '--json'], { DATABASE_URL: db.url, KEY_ENCRYPTION_KEY: KEK });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { kid: string; verifying: string[] };
    expect(out.verifying[0]).toBe(out.kid);
    await waitFor(async () => (await jwksKids(a))[0] === out.kid && (await jwksKids(b))[0] === out.kid, 10_000);
    const t = await signInWithCode(base(a), await customer(a));
    expect(headerOf(t.accessToken).kid).toBe(out.kid);
    expect(await vehicles(b, t.accessToken)).toBe(200);
    // With a wrong key the CLI says so and changes nothing.
    const bad = await run('cli/index.ts', ['rotate-signing-key'], { DATABASE_URL: db.url, KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64') });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/KEY_ENCRYPTION_KEY is not the key/);
    expect((await jwksKids(a))[0]).toBe(out.kid);
  }, 90_000);

  it('once its window has passed, a replaced key is gone from the JWKS of every instance', async () => {
    // Time moved on: the first key was replaced longer ago than the window (as stored).
    const windowS = retirementWindowS(loadConfig({}).oidc.accessTokenTtlS);
    const pg = createPgDb(db.url, { max: 1 });
    try {
      const store = createOidcStore(pg, sealingCodec(parseKeyEncryptionKey(KEK)));
      await store.updateKeyMaterial(SIGNING_KEYS, (cur) => {
        const ring = asRing(cur);
        return { keys: ring.keys.map((k) => (k.jwk.kid === oldKid ? { ...k, retiredAt: Math.floor(Date.now() / 1000) - windowS - 1 } : k)) };
      });
    } finally {
      await pg.close();
    }
    await waitFor(async () => !(await jwksKids(a)).includes(oldKid) && !(await jwksKids(b)).includes(oldKid));
    expect(await jwksKids(a)).toContain(newKid);
    // A token it signed would have expired by now; this one (its clock stopped) is refused.
    expect(await vehicles(a, early.accessToken)).toBe(401);
  });

  it('without an embedded provider there is nothing to rotate: 409 problem, and the CLI says so', async () => {
    const off = await gateway({ KEY_ENCRYPTION_KEY: KEK, OIDC_EMBEDDED: 'off' });
    const r = await api(off, 'POST', '/v1/admin/keys/rotate');
    expect(r.status).toBe(409);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(r.body).toMatchObject({ status: 409, code: 'API_ERR_CONFLICT' });
    expect(r.body.detail).toMatch(/no embedded OpenID Provider runs here/);
    const c = await run('cli/index.ts', ['rotate-signing-key'], { DATABASE_URL: db.url, KEY_ENCRYPTION_KEY: KEK, OIDC_EMBEDDED: 'off' });
    expect(c.code).toBe(1);
    expect(c.stderr).toMatch(/no embedded OpenID Provider is configured/);
  }, 60_000);
});
