// The live CarData routes (SSE) through app.inject() on in-memory ports, beyond the
// access matrix's first bytes: a record goes out as an event with its cursor, a change of
// terms ends the stream with its reason, streams per caller are bounded, a grant stream's
// disclosure is narrowed to what it sent. The fan-out itself is a fake: the test delivers
// to the subscribers the route opened (stream/hub.ts has its own tests).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { StreamFeed } from '../../../api/ports.ts';
import { createApiHarness, type ApiHarness } from '../fakes/api-app.ts';

const VIN = 'WBA00000000000001';
const OWNER = 'owner-a';
const TP = 'tp-1';
const GRANT = randomUUID();

type Record_ = Parameters<Parameters<StreamFeed['open']>[0]['deliver']>[0][number];

/** A stored record as the fan-out hands it out: its line is the NDJSON export's, projected. */
function record(tx: number, recordedAtMs: number): Record_ {
  const values = { technical: { speedKmh: 88.5 }, consumption: { totalDistanceKm: 15000 }, location: { latitude: 48.1, longitude: 11.5 } };
  const json = (p: { categories: readonly string[]; nulled: readonly string[] }) => {
    const o: Record<string, unknown> = { vin: VIN, seq: tx, recordedAt: new Date(recordedAtMs).toISOString() };
    for (const c of p.categories) o[c] = p.nulled.includes(c) ? null : values[c as keyof typeof values];
    return JSON.stringify(o);
  };
  return { vin: VIN, tx, ord: 1, recordedAtMs, json, line: (p, out, at) => at + out.write(json(p), at, 'latin1') };
}

/** An open event stream: what arrived so far, and its end. */
async function open(h: ApiHarness, url: string, token: string, headers: Record<string, string> = {}) {
  const r = await h.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}`, ...headers }, payloadAsStream: true });
  const stream = r.stream();
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString('utf8')));
  stream.on('error', () => {});
  const ended = new Promise<void>((resolve) => stream.once('end', resolve));
  return {
    status: r.statusCode,
    headers: r.headers,
    text: () => text,
    ended,
    /** Waits until the received text matches. */
    async until(re: RegExp): Promise<string> {
      for (let i = 0; i < 100 && !re.test(text); i++) await new Promise((res) => setTimeout(res, 10));
      expect(text).toMatch(re);
      return text;
    },
    close: () => r.raw.res.destroy(),
  };
}

let h: ApiHarness;
let owner: string;
let tp: string;

beforeAll(async () => {
  h = await createApiHarness({ stream: { maxPerCaller: 2 } });
  owner = await h.token('customer', OWNER);
  tp = await h.token('third_party', TP);
});
afterAll(async () => {
  await h?.app.close();
});
beforeEach(() => {
  h.world.reset();
  h.world.vehicle(VIN, OWNER);
  h.world.recipient(TP, 'third_party');
  h.world.grant(GRANT, { vin: VIN, recipientId: TP, categories: ['technical'], access: ['stream'] });
});

const sub = () => {
  const s = [...h.feed.subs];
  expect(s).toHaveLength(1);
  return s[0]!;
};

describe('GET /v1/vehicles/{vin}/stream (inject, fakes)', () => {
  it('sends a delivered record as an event with its cursor, and ends with ownership_ended after a transfer', async () => {
    const s = await open(h, `/v1/vehicles/${VIN}/stream`, owner);
    expect(s.status).toBe(200);
    expect(s.headers['content-type']).toBe('text/event-stream');
    await s.until(/^: keep-alive\n\n/);
    sub().deliver([record(7, Date.now() - 1000)], true);
    const text = await s.until(/event: record/);
    expect(text).toMatch(/id: 1\.7\.1\.[A-Za-z0-9_-]{6}\nevent: record\ndata: \{"vin":"WBA00000000000001","seq":7,.*"technical":\{"speedKmh":88\.5\}/);
    await h.world.transfer(VIN, 'owner-next');
    sub().recheck();
    await s.ended;
    expect(s.text()).toMatch(/id: 1\.7\.1\.\S+\nevent: end\ndata: \{"reason":"ownership_ended","resumeFrom":"1\.7\.1\.\S+"\}\n\n$/);
    expect(h.feed.subs.size).toBe(0);
  });

  it('writes positions as null after a location opt-out, without ending the stream', async () => {
    const s = await open(h, `/v1/vehicles/${VIN}/stream`, owner);
    await s.until(/keep-alive/);
    h.world.consent(VIN, { location: false });
    sub().recheck();
    await new Promise((res) => setTimeout(res, 20));
    sub().deliver([record(8, Date.now() - 1000)], true);
    expect(await s.until(/event: record/)).toMatch(/"location":null/);
    s.close();
  });

  it('bounds the open streams per caller (429), and frees a place when one closes', async () => {
    const a = await open(h, `/v1/vehicles/${VIN}/stream`, owner);
    const b = await open(h, `/v1/vehicles/${VIN}/stream`, owner);
    const c = await open(h, `/v1/vehicles/${VIN}/stream`, owner);
    expect([a.status, b.status, c.status]).toEqual([200, 200, 429]);
    await c.ended;
    expect(JSON.parse(c.text())).toMatchObject({ status: 429, code: 'API_ERR_TOO_MANY_STREAMS' });
    a.close();
    await new Promise((res) => setImmediate(res));
    const d = await open(h, `/v1/vehicles/${VIN}/stream`, owner);
    expect(d.status).toBe(200);
    b.close();
    d.close();
  });

  it('resumes after a cursor it gave (the feed opens after that position)', async () => {
    const s = await open(h, `/v1/vehicles/${VIN}/stream`, owner);
    sub().deliver([record(9, Date.now() - 1000)], true);
    const cursor = /id: (\S+)/.exec(await s.until(/id: /))![1]!;
    s.close();
    await new Promise((res) => setImmediate(res));
    h.feed.opened.length = 0;
    const t = await open(h, `/v1/vehicles/${VIN}/stream`, owner, { 'last-event-id': cursor });
    expect(t.status).toBe(200);
    expect(h.feed.opened[0]).toMatchObject({ after: { tx: 9, ord: 1 }, fromMs: null });
    t.close();
  });
});

describe('GET /v1/grants/{id}/stream (inject, fakes)', () => {
  it("sends the grant's categories only, ends with revoked after a revocation, and narrows its disclosure to what it sent", async () => {
    const s = await open(h, `/v1/grants/${GRANT}/stream`, tp);
    expect(s.status).toBe(200);
    const filed = h.world.state.disclosures.filter((d) => d.grantId === GRANT);
    expect(filed).toHaveLength(1);
    const t = Date.now() - 5000;
    sub().deliver([record(3, t)], true);
    const text = await s.until(/event: record/);
    expect(text).toMatch(/data: \{"vin":"WBA00000000000001","seq":3,"recordedAt":"[^"]+","technical":\{"speedKmh":88\.5\}\}\n/);
    expect(await h.stores.grants.revoke(VIN, OWNER, GRANT, 'customer:owner-a')).toBe('revoked');
    sub().recheck();
    await s.ended;
    expect(s.text()).toMatch(/event: end\ndata: \{"reason":"revoked",/);
    // settleSession: the disclosure names the measurement times sent.
    for (let i = 0; i < 50 && filed[0]!.rangeFrom?.getTime() !== t; i++) await new Promise((res) => setTimeout(res, 5));
    expect(filed[0]).toMatchObject({ rangeFrom: new Date(t), rangeTo: new Date(t) });
  });

  it('ends with restricted when the owner restricts processing', async () => {
    const s = await open(h, `/v1/grants/${GRANT}/stream`, tp);
    await s.until(/keep-alive/);
    h.world.consent(VIN, { restricted: true });
    sub().recheck();
    await s.ended;
    expect(s.text()).toMatch(/event: end\ndata: \{"reason":"restricted",/);
  });

  it('a stream that sent nothing settles its disclosure with no range', async () => {
    const s = await open(h, `/v1/grants/${GRANT}/stream`, tp);
    await s.until(/keep-alive/);
    s.close();
    const d = h.world.state.disclosures.find((x) => x.grantId === GRANT)!;
    for (let i = 0; i < 50 && d.rangeFrom !== null; i++) await new Promise((res) => setTimeout(res, 5));
    expect(d).toMatchObject({ rangeFrom: null, rangeTo: null });
  });
});
