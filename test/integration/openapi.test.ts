// The OpenAPI document is generated from the routes' zod schemas: every route is in it,
// with its request and response schemas.
import { describe, expect, it } from 'vitest';
import { gatewayTest } from '../helpers/fixtures.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let gw: RunningGateway;
const test = gatewayTest();
test.beforeAll(async ({ gw: testGw }) => {
  gw = testGw;
});

describe('OpenAPI', () => {
  it('lists every route with its schemas, and serves the interactive docs', async () => {
    const res = await fetch(`http://127.0.0.1:${gw.httpPort}/docs/json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, any>> };
    expect(doc.openapi).toMatch(/^3\./);
    const expected: [string, string][] = [
      ['/v1/admin/vehicles', 'post'],
      ['/v1/admin/tokens', 'post'],
      ['/v1/admin/vehicles/{vin}/transfer', 'post'],
      ['/v1/vehicles/{vin}/consent', 'get'],
      ['/v1/vehicles/{vin}/consent', 'put'],
      ['/v1/vehicles/{vin}/consent/history', 'get'],
      ['/v1/vehicles/{vin}/restriction', 'put'],
      ['/v1/vehicles/{vin}/data', 'delete'],
      ['/v1/vehicles/{vin}/cardata', 'get'],
      ['/v1/vehicles/{vin}/location/latest', 'get'],
      ['/v1/vehicles/{vin}/status', 'get'],
      ['/v1/vehicles/{vin}/disclosures', 'get'],
      ['/v1/catalogue', 'get'],
      ['/v1/data-description', 'get'],
      ['/v1/workshop/vehicles/{vin}/consumption', 'get'],
      ['/v1/reports/obfcm', 'get'],
      ['/healthz', 'get'],
      ['/readyz', 'get'],
      ['/v1/admin/recipients', 'post'],
      ['/v1/recipients', 'get'],
      ['/v1/vehicles/{vin}/grants', 'post'],
      ['/v1/vehicles/{vin}/grants', 'get'],
      ['/v1/vehicles/{vin}/grants/{id}', 'delete'],
      ['/v1/vehicles/{vin}/grants/{id}/receipt', 'get'],
      ['/v1/vehicles/{vin}/checkin-codes', 'post'],
      ['/v1/workshop/checkins', 'post'],
      ['/v1/grants', 'get'],
      ['/v1/grants/{id}/cardata', 'get'],
      ['/v1/webhooks', 'post'],
      ['/v1/webhooks', 'get'],
      ['/v1/webhooks/{id}', 'get'],
      ['/v1/webhooks/{id}', 'delete'],
      ['/v1/webhooks/{id}/replay', 'post'],
    ];
    for (const [p, m] of expected) expect(doc.paths[p]?.[m], `${m.toUpperCase()} ${p}`).toBeDefined();
    const put = doc.paths['/v1/vehicles/{vin}/consent']!.put;
    const body = put.requestBody.content['application/json'].schema;
    expect(Object.keys(body.properties).sort()).toEqual(['co2Sharing', 'location']);
    expect(put.responses['200'].content['application/json'].schema.properties.since).toBeDefined();
    const ui = await fetch(`http://127.0.0.1:${gw.httpPort}/docs/`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toContain('swagger');
  });
});
