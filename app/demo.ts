// `npm run demo`: the gateway and the simulator together, then the data is left to
// explore through the API. Uses the same settings as `npm start` (embedded database by
// default); DEMO_VEHICLES, DEMO_RATE and DEMO_DURATION_S size the simulated fleet.
import { loadConfig } from '../config/index.ts';
import { createLogger, startGateway } from './gateway.ts';
import { runSimulation, formatSummary } from '../simulator/run.ts';
import { newSecret } from '../identity/secrets.ts';

const num = (name: string, dflt: number) => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`${name} must be a positive number`);
    process.exit(2);
  }
  return v;
};

const config = loadConfig({ LOG_LEVEL: 'warn', ...process.env });
const gw = await startGateway(config, createLogger(config.logLevel));
const http = `${gw.https ? 'https' : 'http'}://127.0.0.1:${gw.httpPort}`;
const owner = 'demo-owner';
console.log(`gateway up: MQTT 127.0.0.1:${gw.mqttPort}, HTTP ${http}, storage: ${gw.storage}`);

const ac = new AbortController();
process.once('SIGINT', () => ac.abort());
const result = await runSimulation({
  vehicles: num('DEMO_VEHICLES', 5),
  rate: num('DEMO_RATE', 2),
  durationS: num('DEMO_DURATION_S', 20),
  batch: 10,
  httpUrl: http,
  mqttUrl: `mqtt://127.0.0.1:${gw.mqttPort}`,
  adminToken: gw.adminToken,
  ownerId: owner,
  inflight: 10,
  seed: 42,
  signal: ac.signal,
  onProgress: () => {},
});
console.log(formatSummary(result));

// The owner's API token, for the curl lines below: as long as TOKEN_TTL_S allows (the
// admin API's default). A refusal stops the demo with the API's reason, never a blank token.
const tokRes = await fetch(`${http}/v1/admin/tokens`, {
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: `Bearer ${gw.adminToken}` },
  body: JSON.stringify({ role: 'customer', subject: owner }),
});
const tok = (await tokRes.json()) as { token?: string; expiresAt?: string; detail?: string };
if (tokRes.status !== 201 || typeof tok.token !== 'string') {
  console.error(`demo: the owner's API token was refused (${tokRes.status}): ${tok.detail ?? JSON.stringify(tok)}`);
  await gw.close();
  process.exit(1);
}
// A person's account at the embedded OpenID Provider, to sign in to the portal with
// (replaced on every run: its password is shown once, here).
const password = newSecret().slice(0, 20);
const adminHeaders = { 'content-type': 'application/json', authorization: `Bearer ${gw.adminToken}` };
await fetch(`${http}/v1/admin/accounts/demo`, { method: 'DELETE', headers: { authorization: adminHeaders.authorization } });
const account = await fetch(`${http}/v1/admin/accounts`, {
  method: 'POST',
  headers: adminHeaders,
  body: JSON.stringify({ username: 'demo', password, role: 'customer', subject: owner }),
});
const signIn = account.status === 201 ? `sign in as "demo", password ${password}` : `"Sign in with an access token", paste $TOKEN below`;
const vins = (await gw.db.query<{ vin: string }>('SELECT vin FROM vehicles WHERE owner_id = $1 ORDER BY created_at DESC LIMIT 3', [owner])).rows.map((r) => r.vin);
const v = vins[0] ?? '<VIN>';
console.log(`
The gateway keeps running with the data. Explore it (Ctrl-C to stop):
  portal:         ${http}/   (${signIn})
  admin token:    ${gw.adminToken}
  vehicles:       ${vins.join(', ')}
  export TOKEN=${tok.token}   # the owner's API token, valid until ${tok.expiresAt ?? 'TOKEN_TTL_S from now'}
  curl -H "authorization: Bearer $TOKEN" "${http}/v1/vehicles/${v}/cardata?format=ndjson" | head
  curl -H "authorization: Bearer $TOKEN" "${http}/v1/vehicles/${v}/location/latest"
  curl -H "authorization: Bearer $TOKEN" "${http}/v1/vehicles/${v}/consent"
  curl "${http}/v1/catalogue"       API docs: ${http}/docs
`);
const stop = () => void gw.close().then(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
