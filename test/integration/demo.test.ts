// `npm run demo` as a newcomer runs it: the gateway and a short simulated fleet, then the
// lines it prints to explore the data. The token it prints works: the curl lines it
// suggests answer 200 with the owner's vehicles and data.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { freePort, killAllChildren, spawnChild, type Child } from '../helpers/proc.ts';

describe('npm run demo', () => {
  let db: TestDatabase;
  let demo: Child;
  let out = '';
  beforeAll(async () => {
    db = await createTestDatabase();
    const [http, mqtt] = [await freePort(), await freePort()];
    demo = spawnChild(process.execPath, ['--import', 'tsx', 'app/demo.ts'], {
      DATABASE_URL: db.url,
      HTTP_PORT: String(http),
      HTTP_HOST: '127.0.0.1',
      MQTT_PORT: String(mqtt),
      MQTT_HOST: '127.0.0.1',
      DEMO_VEHICLES: '2',
      DEMO_RATE: '2',
      DEMO_DURATION_S: '2',
    });
    await demo.waitForOutput(/curl "http:\/\/127\.0\.0\.1:\d+\/v1\/catalogue"/, 90_000, 'stdout');
    out = demo.stdout();
  }, 120_000);
  afterAll(async () => {
    if (demo?.running) await demo.stop(10_000);
    killAllChildren();
    await db?.drop();
  });

  it('prints an owner token that reads the vehicles and the data the curl lines name', async () => {
    const token = /export TOKEN=(\S+)/.exec(out)?.[1];
    expect(token, out).toBeDefined();
    expect(token).not.toBe('undefined');
    const base = /portal:\s+(http:\/\/127\.0\.0\.1:\d+)\//.exec(out)?.[1];
    expect(base, out).toBeDefined();
    const auth = { authorization: `Bearer ${token!}` };
    const vehicles = await fetch(`${base!}/v1/vehicles`, { headers: auth });
    expect(vehicles.status).toBe(200);
    const listed = ((await vehicles.json()) as { vehicles: { vin: string }[] }).vehicles.map((v) => v.vin);
    expect(listed.length).toBe(2);
    // Each curl line of the printout, with $TOKEN as the shell would fill it in.
    const curls = [...out.matchAll(/curl -H "authorization: Bearer \$TOKEN" "([^"]+)"/g)].map((m) => m[1]!);
    expect(curls.length).toBe(3);
    for (const url of curls) {
      const r = await fetch(url, { headers: auth });
      expect(r.status, url).toBe(200);
      expect(listed.some((vin) => url.includes(vin)), url).toBe(true);
    }
    const ndjson = await (await fetch(curls[0]!, { headers: auth })).text();
    expect(ndjson.trim().split('\n').length).toBeGreaterThan(0);
  });
});
