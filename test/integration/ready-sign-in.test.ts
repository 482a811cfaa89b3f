// /readyz is 200 only once every part that serves requests does, the embedded OpenID
// Provider included: polled from the first answer on, /readyz never says ready while the
// provider's discovery document still answers 503 ("the sign-in service is starting").
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { freePort, killAllChildren, sleep, spawnGateway, type GatewayProcess } from '../helpers/proc.ts';

describe('ready means ready', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    if (gw?.running) await gw.stop(10_000);
    killAllChildren();
    await db?.drop();
  });

  it('from start on, every /readyz 200 is followed by a discovery document that answers 200', async () => {
    gw = spawnGateway({ DATABASE_URL: db.url, HTTP_PORT: String(await freePort()), MQTT_PORT: String(await freePort()), ADMIN_TOKEN: 'x'.repeat(32) });
    const base = `http://127.0.0.1:${gw.httpPort}`;
    const status = (path: string) =>
      fetch(base + path, { signal: AbortSignal.timeout(2000) }).then(
        async (r) => (await r.arrayBuffer(), r.status),
        () => 0,
      );
    const samples: { ready: number; oidc: number }[] = [];
    const t0 = Date.now();
    // Bounded: until ready and 20 samples after it, or 60 s.
    while (Date.now() - t0 < 60_000 && samples.filter((s) => s.ready === 200).length < 20) {
      if (!gw.running) throw new Error(`gateway exited\n${gw.output()}`);
      const ready = await status('/readyz');
      const oidc = await status('/oidc/.well-known/openid-configuration');
      samples.push({ ready, oidc });
      await sleep(5);
    }
    const answered = samples.filter((s) => s.ready !== 0);
    expect(answered.length, 'the HTTP port answered before it was ready').toBeGreaterThan(0);
    expect(samples.filter((s) => s.ready === 200).length).toBe(20);
    expect(samples.filter((s) => s.ready === 200 && s.oidc !== 200)).toEqual([]);
  });
});
