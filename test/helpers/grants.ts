// Grants through the public API: register a recipient, mint its token, make a grant, or
// run a workshop visit (the owner's check-in code redeemed by the workshop).
import { api } from './gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';

async function ok(p: Promise<{ status: number; body: any }>, want: number, what: string): Promise<any> {
  const r = await p;
  if (r.status !== want) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** A bearer token minted by the admin API. */
export async function mintToken(gw: RunningGateway, role: string, subject: string, ttlSeconds?: number): Promise<string> {
  return (await ok(api(gw, 'POST', '/v1/admin/tokens', { role, subject, ...(ttlSeconds ? { ttlSeconds } : {}) }), 201, 'mint token')).token as string;
}

/** Registers a recipient (admin API) and returns a token acting as it. */
export async function registerRecipient(gw: RunningGateway, id: string, role: 'workshop' | 'third_party', name = `Recipient ${id}`): Promise<string> {
  await ok(api(gw, 'POST', '/v1/admin/recipients', { id, role, name }), 201, 'register recipient');
  return mintToken(gw, role, id);
}

/** The owner grants `recipientId` access; returns the grant. */
export async function createGrant(gw: RunningGateway, vin: string, ownerToken: string, body: Record<string, unknown>): Promise<any> {
  return ok(api(gw, 'POST', `/v1/vehicles/${vin}/grants`, { purpose: 'test', ...body }, ownerToken), 201, 'create grant');
}

/** A workshop visit: the owner makes a check-in code, the workshop redeems it; returns the visit's grant. */
export async function workshopVisit(gw: RunningGateway, vin: string, ownerToken: string, workshopToken: string, codeBody: Record<string, unknown> = { visitHours: 24 }): Promise<any> {
  const c = await ok(api(gw, 'POST', `/v1/vehicles/${vin}/checkin-codes`, codeBody, ownerToken), 201, 'check-in code');
  return ok(api(gw, 'POST', '/v1/workshop/checkins', { code: c.code }, workshopToken), 201, 'redeem check-in code');
}
