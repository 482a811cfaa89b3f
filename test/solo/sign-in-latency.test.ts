// Password checks in a queue of their own (README "Sign-in"): with 50 concurrent
// wrong-password sign-ins from one address, vehicles' CONNECT → CONNACK p99 stays under
// 100 ms. A latency figure: it runs in the `solo` project, after the others, with the
// machine to itself (scripts/test.sh), since two other test files on the two cores would
// measure them, not the gateway.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { provision, startTestGateway, testVin } from '../helpers/gateway.ts';
import { TEST_REDIRECT_URI } from '../helpers/oidc.ts';
import { Browser, account } from '../helpers/sign-in-browser.ts';
import type { RunningGateway } from '../../app/gateway.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('password checks in a queue of their own (finding 3: guessing slows the vehicles)', () => {
  const VEHICLES = 20;
  const ATTACKERS = 50;
  const MEASURE_MS = 10_000;
  let gw: RunningGateway;
  let fleet: { vin: string; secret: string }[];
  beforeAll(async () => {
    gw = await startTestGateway(db.url, {
      OIDC_PORTAL_REDIRECT_URIS: TEST_REDIRECT_URI,
      // The throttle off: every guess reaches the password checks (the throttle is tested above).
      SIGN_IN_FAILURES_PER_ACCOUNT_MAX: '10000',
      SIGN_IN_FAILURES_PER_SOURCE_MAX: '1000000',
      SIGN_IN_DELAY_MAX_MS: '0',
      // All 50 wait their turn (none refused with 503): 50 sign-ins really run concurrently.
      SIGN_IN_HASH_QUEUE_MAX: '64',
    });
    await account(gw, 'victim', 'victims-password-0123456');
    fleet = await Promise.all(Array.from({ length: VEHICLES }, () => provision(gw, testVin())));
  });
  afterAll(async () => {
    await gw?.close();
  });

  /** Connection opened (TCP, then CONNECT) → CONNACK received, ms, of one connection (then closed). */
  async function connectOnce(v: { vin: string; secret: string }): Promise<number> {
    const sent = performance.now();
    const client = mqtt.connect(`mqtt://127.0.0.1:${gw.mqttPort}`, { clientId: v.vin, username: v.vin, password: v.secret, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000, clean: true });
    try {
      return await new Promise<number>((resolve, reject) => {
        client.on('packetreceive', (p) => {
          if (p.cmd === 'connack') resolve(performance.now() - sent);
        });
        client.on('error', reject);
        client.on('close', () => reject(new Error('closed before CONNACK')));
      });
    } finally {
      await client.endAsync();
    }
  }

  /** Every vehicle connects, disconnects, waits 0.5-1.5 s, again, for `ms`; the CONNACK times (a failed connection: its time to fail, counted in `failed`). */
  async function vehicles(ms: number): Promise<number[] & { failed: number }> {
    const out = Object.assign([] as number[], { failed: 0 });
    const until = performance.now() + ms;
    await Promise.all(
      fleet.map(async (v, i) => {
        await sleep((i * 1000) / VEHICLES);
        while (performance.now() < until) {
          const t0 = performance.now();
          out.push(
            await connectOnce(v).catch(() => {
              out.failed++;
              return performance.now() - t0;
            }),
          );
          await sleep(500 + Math.random() * 1000);
        }
      }),
    );
    return out;
  }

  const pct = (xs: number[], p: number) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
  };
  const summary = (xs: number[] & { failed: number }) => `n ${xs.length} failed ${xs.failed} p50 ${pct(xs, 50).toFixed(1)} p99 ${pct(xs, 99).toFixed(1)} max ${Math.max(...xs).toFixed(1)} ms`;

  it(`with ${ATTACKERS} concurrent wrong-password sign-ins from one address, vehicles' CONNECT → CONNACK p99 < 100 ms`, async () => {
    const quiet = await vehicles(3000);

    // 50 attackers from 127.0.0.1, each on its own interaction, each posting a wrong password again as soon as answered.
    const stop = new AbortController();
    const statuses = new Map<number, number>();
    const attackers = Array.from({ length: ATTACKERS }, async (_, i) => {
      const b = new Browser(gw);
      await b.open();
      while (!stop.signal.aborted) {
        const r = await b.login('victim', `wrong-${i}-${Math.random()}`, {}, stop.signal).catch(() => null);
        if (r) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      }
    });
    // The queue is full of password checks.
    await sleep(1500);
    const checkedBefore = statuses.get(401) ?? 0;
    const loaded = await vehicles(MEASURE_MS);
    stop.abort();
    await Promise.all(attackers);
    const checked = (statuses.get(401) ?? 0) - checkedBefore;
    console.log(
      `[sign-in queue] vehicles' CONNECT→CONNACK quiet: ${summary(quiet)}; ` +
        `during ${ATTACKERS} concurrent wrong-password sign-ins: ${summary(loaded)}; sign-in answers ${JSON.stringify(Object.fromEntries(statuses))} (${checked} wrong passwords checked while measured)`,
    );
    // The attack was real: passwords were checked throughout, none refused for want of room.
    expect(checked).toBeGreaterThanOrEqual(10);
    expect(statuses.get(503) ?? 0).toBe(0);
    expect(loaded.length).toBeGreaterThanOrEqual(VEHICLES * 5);
    expect(quiet.failed + loaded.failed).toBe(0);
    expect(pct(loaded, 99)).toBeLessThan(100);
    // Then the queue drains: a person signs in.
    const person = new Browser(gw);
    await person.open();
    const t0 = performance.now();
    let status = 0;
    for (let i = 0; i < 120 && status !== 303; i++) {
      status = (await person.login('victim', 'victims-password-0123456')).status;
      if (status !== 303) await sleep(250);
    }
    expect(status).toBe(303);
    console.log(`[sign-in queue] after the attack, the right password accepted in ${Math.round(performance.now() - t0)} ms (the queue draining)`);
  }, 120_000);
});
