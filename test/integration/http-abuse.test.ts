// Hostile input on every HTTP route: malformed JSON, wrong types, huge bodies, path
// traversal and NULs in VINs, SQL-looking strings and unicode junk in every parameter,
// query and body field, repeated query keys, junk headers. Every refusal is a 4xx
// application/problem+json with a `code`, never a 5xx, and afterwards the database is
// as it was (the tables exist, their row counts unchanged).
//
// Requests go over raw TCP (node:net) so that paths, headers and bodies reach the server
// byte for byte (fetch would normalise `..` segments and refuse a GET with a body).
import { afterAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import type { TestDatabase } from '../helpers/db.ts';
import { tableDigests } from '../helpers/db-digest.ts';
import { gatewayTest } from '../helpers/fixtures.ts';
import { ADMIN_TOKEN, api, connectVehicle, encodeBatch, FULL_CONSUMPTION, FULL_LOCATION, FULL_TECHNICAL, provision, publish, record, testVin } from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let gw: RunningGateway;

// ---------------------------------------------------------------------------
// Raw HTTP/1.1 client.

interface Res {
  status: number;
  headers: Record<string, string>;
  text: string;
  json: any;
  ms: number;
}

function dechunk(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let p = 0;
  while (p < b.length) {
    const eol = b.indexOf('\r\n', p);
    if (eol < 0) break;
    const n = parseInt(b.subarray(p, eol).toString('latin1'), 16);
    if (!(n > 0)) break;
    out.push(b.subarray(eol + 2, eol + 2 + n));
    p = eol + 2 + n + 2;
  }
  return Buffer.concat(out);
}

/** Sends `bytes` as one request on a fresh connection and reads the answer (Connection: close). */
function rawRequest(bytes: Buffer, timeoutMs = 10_000): Promise<Res> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = net.connect({ host: '127.0.0.1', port: gw.httpPort });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      // A live stream (SSE) answered 200 never ends by itself: its head is the answer.
      const all = Buffer.concat(chunks);
      const sep = all.indexOf('\r\n\r\n');
      if (sep >= 0 && /\r\ncontent-type: text\/event-stream/i.test(all.subarray(0, sep).toString('latin1'))) s.destroy();
    });
    s.on('error', () => {}); // an early answer (413) may reset our writing side; what was read still counts
    s.on('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const sep = all.indexOf('\r\n\r\n');
      if (sep < 0) return reject(new Error(`no HTTP answer (got ${JSON.stringify(all.toString('latin1').slice(0, 200))})`));
      const [statusLine, ...lines] = all.subarray(0, sep).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      let body: Buffer = all.subarray(sep + 4);
      if (/chunked/i.test(headers['transfer-encoding'] ?? '')) body = dechunk(body);
      const text = body.toString('utf8');
      let json: unknown = undefined;
      try {
        json = JSON.parse(text);
      } catch {
        // not JSON: json stays undefined
      }
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, text, json, ms: performance.now() - t0 });
    });
    // not end(): a half-closed client makes node's HTTP server drop a response still being prepared
    s.on('connect', () => s.write(bytes));
  });
}

interface Req {
  method: string;
  /** Sent as is (latin1), or raw bytes. */
  path: string | Buffer;
  token?: string | null;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Content-Type sent with a body; default application/json. */
  contentType?: string | null;
  /** Send the body chunked, without Content-Length. */
  chunked?: boolean;
}

function http(r: Req): Promise<Res> {
  const head: string[] = [`Host: 127.0.0.1:${gw.httpPort}`, 'Connection: close'];
  if (r.token) head.push(`Authorization: Bearer ${r.token}`);
  for (const [k, v] of Object.entries(r.headers ?? {})) head.push(`${k}: ${v}`);
  let body: Buffer = Buffer.alloc(0);
  if (r.body !== undefined) {
    body = typeof r.body === 'string' ? Buffer.from(r.body, 'utf8') : r.body;
    if (r.contentType !== null) head.push(`Content-Type: ${r.contentType ?? 'application/json'}`);
    if (r.chunked) {
      head.push('Transfer-Encoding: chunked');
      const parts: Buffer[] = [];
      for (let i = 0; i < body.length; i += 8192) {
        const c = body.subarray(i, i + 8192);
        parts.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'));
      }
      parts.push(Buffer.from('0\r\n\r\n'));
      body = Buffer.concat(parts);
    } else head.push(`Content-Length: ${body.length}`);
  }
  const path = typeof r.path === 'string' ? Buffer.from(r.path, 'latin1') : r.path;
  return rawRequest(Buffer.concat([Buffer.from(`${r.method} `), path, Buffer.from(` HTTP/1.1\r\n${head.join('\r\n')}\r\n\r\n`, 'latin1'), body]));
}

// ---------------------------------------------------------------------------
// Hostile values.

const SQL = [
  `' OR 1=1 --`,
  `; DROP TABLE vehicles;`,
  `'; DROP TABLE vehicles; --`,
  `1' UNION SELECT secret_hash FROM vehicles --`,
  `$$; DROP TABLE vehicles; $$`,
  `'; SELECT pg_sleep(5); --`,
  `WBA' OR 'x'='x`,
];
const UNICODE = [
  'ＷＢＡ１２３４５６７８９０１２３４５６７', // fullwidth
  '🚗'.repeat(17),
  '\u202eNIV\u202c' + 'A'.repeat(11),
  'WBA\u0000' + '1'.repeat(13),
  'A\u0301'.repeat(17), // combining accents
  '\ud800' + 'A'.repeat(16), // lone surrogate
  '\uffff'.repeat(17),
  'İ'.repeat(17), // changes length when lowercased
  'WBA' + '\u200b'.repeat(14), // zero-width spaces
  'ß'.repeat(17), // uppercases to SS
];
/** encodeURIComponent, with lone surrogates as their (invalid) UTF-8 bytes %ED%A0%80. */
function enc(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      out += encodeURIComponent(s.slice(i, i + 2));
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff) out += '%ED%A0%80';
    else out += encodeURIComponent(s[i]!);
  }
  return out;
}

/** Values for a VIN path segment, already as they go into the URL. */
function vinJunk(vin: string): [string, string][] {
  return [
    ['..%2F..%2Fetc%2Fpasswd', '..%2F..%2Fetc%2Fpasswd'],
    ['..%2f..%2f..%2fetc%2fpasswd', '..%2f..%2f..%2fetc%2fpasswd'],
    ['%2e%2e%2f%2e%2e%2fetc%2fpasswd', '%2e%2e%2f%2e%2e%2fetc%2fpasswd'],
    ['..%5C..%5Cwindows%5Cwin.ini', '..%5C..%5Cwindows%5Cwin.ini'],
    ['double-encoded %252e%252e%252f', '%252e%252e%252fetc%252fpasswd'],
    ['%00', '%00'],
    ['VIN%00', `${vin}%00`],
    ['VIN[0..16]%00', `${vin.slice(0, 16)}%00`],
    ['VIN%2F..%2F..', `${vin}%2F..%2F..`],
    ['lowercase VIN', vin.toLowerCase()],
    ['16 characters', vin.slice(0, 16)],
    ['18 characters', vin + 'A'],
    ['..', '..'],
    ['*', '*'],
    ['VIN;DROP', `${vin};DROP%20TABLE%20vehicles`],
    ...SQL.map((s): [string, string] => [`SQL ${s}`, enc(s)]),
    ...UNICODE.filter((s) => !/[\ud800-\udfff]/.test(s)).map((s, i): [string, string] => [`unicode #${i}`, enc(s)]),
  ];
}

/**
 * VIN segments fastify's router itself refuses (before any route code runs): percent-
 * encodings that do not decode to UTF-8 (FST_ERR_BAD_URL), and a parameter longer than
 * find-my-way's maxParamLength of 100 (FST_ERR_MAX_PARAM_LENGTH). Tested on their own.
 */
const UNDECODABLE: [string, string][] = [
  ['invalid percent-encoding %ZZ', '%ZZ'],
  ['truncated percent-encoding %E0%A4%A', '%E0%A4%A'],
  ['a lone %', '%'],
  ['overlong UTF-8 %C0%AE%C0%AE%2F', '%C0%AE%C0%AE%2Fetc'],
  ['an encoded lone surrogate %ED%A0%80', '%ED%A0%80' + 'A'.repeat(16)],
  ['4000 characters (over maxParamLength)', 'A'.repeat(4000)],
];

/** Malformed JSON bodies; `strict`: not JSON at all (also refused on a route without a body schema). */
const MALFORMED_JSON: [string, string | Buffer, boolean][] = [
  ['{', '{', true],
  ['{"', '{"', true],
  ['{"a":}', '{"a":}', true],
  ['trailing comma', '{"a":1,}', true],
  ['single quotes', "{'a':1}", true],
  ['unclosed array', '[1,2', true],
  ['nul', 'nul', true],
  ['trailing brace', '{"a":1}}', true],
  ['two objects', '{"a":1}{"b":2}', true],
  ['NaN', 'NaN', true],
  ['{"a":NaN}', '{"a":NaN}', true],
  ['{"a":Infinity}', '{"a":Infinity}', true],
  ['bad escape', '{"a":"\\x41"}', true],
  ['short unicode escape', '{"a":"\\u12"}', true],
  ['raw control character in a string', '{"a":"\u0001"}', true],
  ['comment', '/* */{}', true],
  ['invalid UTF-8 bytes', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), false],
  ['BOM then {}', '\ufeff{}', false],
  ['null', 'null', false],
  ['[]', '[]', false],
  ['a string', '"str"', false],
  ['a number', '0', false],
  ['true', 'true', false],
  ['__proto__ pollution', '{"__proto__":{"admin":true}}', false],
  ['constructor.prototype pollution', '{"constructor":{"prototype":{"admin":true}}}', false],
  ['20000 nested arrays', '['.repeat(20_000) + ']'.repeat(20_000), false],
  ['5000 nested objects', '{"a":'.repeat(5000) + '1' + '}'.repeat(5000), false],
  ['empty body', '', false],
];

/** Wrong-typed values per kind of field, as raw JSON text. */
const WRONG: Record<'string' | 'boolean' | 'number', string[]> = {
  string: ['123', 'true', 'null', '[]', '{}', '["a"]', '""', JSON.stringify('x'.repeat(20_000))],
  boolean: ['"true"', '1', '0', 'null', '[]', '{}', '"yes"'],
  number: ['"60"', '1.5', '-1', '0', '1e309', '9007199254740993', 'null', 'true', '[60]', '-0.0'],
};

// ---------------------------------------------------------------------------
// The routes (README "HTTP" table), checked against the app's own OpenAPI document.

type Auth = 'admin' | 'owner' | 'workshop' | 'authority' | 'third_party' | 'anyone';
interface RouteDef {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** As in the OpenAPI document; {vin} is the parameter. */
  path: string;
  auth: Auth;
  /** Valid body: field → [kind, valid raw JSON value]. */
  body?: Record<string, ['string' | 'boolean' | 'number', () => string]>;
  /** Query fields of the route's schema → a valid value. */
  query?: Record<string, string>;
  /** The route mutates: no request that might be valid is sent (junk queries on schema-less routes). */
  mutates?: boolean;
  /** Free-text body fields, where SQL-looking and unusual Unicode strings are valid values (tested verbatim in grants.test.ts). */
  free?: string[];
  /** The owner (token subject) and vehicle of an owner route, when not abuse-owner's VIN_A: the rate limit counts per subject. */
  owner?: string;
  /** The recipient (token subject) of a recipient route, when not abuse-<role>: the rate limit counts per subject. */
  recipient?: string;
}

let VIN_A = ''; // owned by 'abuse-owner', with telemetry
let VIN_T = ''; // for the transfer route
/** Per owner of the grant routes: their vehicle, a grant to abuse-third_party, and a revoked grant (its DELETE is always refused, 409: nothing changes). */
const GRANTS: Record<string, { vin: string; a: string; r: string }> = {};
const ROUTES: RouteDef[] = [
  { method: 'GET', path: '/healthz', auth: 'anyone' },
  { method: 'GET', path: '/readyz', auth: 'anyone' },
  { method: 'GET', path: '/metrics', auth: 'anyone' },
  { method: 'GET', path: '/v1/catalogue', auth: 'anyone' },
  { method: 'GET', path: '/v1/data-description', auth: 'anyone' },
  {
    method: 'POST',
    path: '/v1/admin/vehicles',
    auth: 'admin',
    mutates: true,
    body: { vin: ['string', () => JSON.stringify(testVin())], ownerId: ['string', () => '"abuse-new-owner"'] },
  },
  {
    method: 'POST',
    path: '/v1/admin/tokens',
    auth: 'admin',
    mutates: true,
    body: { role: ['string', () => '"customer"'], subject: ['string', () => '"abuse-subject"'], ttlSeconds: ['number', () => '60'] },
  },
  { method: 'POST', path: '/v1/admin/vehicles/{vin}/transfer', auth: 'admin', mutates: true, body: { newOwnerId: ['string', () => '"abuse-next-owner"'] } },
  { method: 'DELETE', path: '/v1/admin/tokens/{jti}', auth: 'admin', mutates: true },
  {
    method: 'POST',
    path: '/v1/admin/accounts',
    auth: 'admin',
    mutates: true,
    body: { username: ['string', () => '"abuse-person"'], password: ['string', () => '"abuse-password-0123"'], role: ['string', () => '"customer"'] },
    free: ['password'],
  },
  { method: 'GET', path: '/v1/admin/accounts', auth: 'admin' },
  { method: 'POST', path: '/v1/admin/keys/rotate', auth: 'admin', mutates: true },
  { method: 'PUT', path: '/v1/admin/accounts/{username}/password', auth: 'admin', mutates: true, body: { password: ['string', () => '"abuse-new-password-0123"'] }, free: ['password'] },
  { method: 'POST', path: '/v1/admin/revocations', auth: 'admin', mutates: true, body: { subject: ['string', () => '"abuse-revoked-subject"'] }, free: ['subject'] },
  { method: 'DELETE', path: '/v1/admin/accounts/{username}', auth: 'admin', mutates: true },
  { method: 'POST', path: '/v1/admin/vehicles/{vin}/secret', auth: 'admin', mutates: true },
  { method: 'GET', path: '/v1/vehicles/{vin}/consent', auth: 'owner' },
  {
    method: 'PUT',
    path: '/v1/vehicles/{vin}/consent',
    auth: 'owner',
    mutates: true,
    body: { location: ['boolean', () => 'true'], co2Sharing: ['boolean', () => 'true'] },
    query: { eraseHistory: 'false' },
  },
  { method: 'GET', path: '/v1/vehicles/{vin}/consent/history', auth: 'owner' },
  { method: 'PUT', path: '/v1/vehicles/{vin}/restriction', auth: 'owner', mutates: true, body: { restricted: ['boolean', () => 'false'] } },
  { method: 'DELETE', path: '/v1/vehicles/{vin}/data', auth: 'owner', mutates: true, query: { category: 'technical' } },
  { method: 'GET', path: '/v1/vehicles/{vin}/cardata', auth: 'owner', query: { format: 'ndjson', from: '2024-01-01', to: '2099-01-01T00:00:00Z', categories: 'technical' } },
  { method: 'GET', path: '/v1/vehicles/{vin}/location/latest', auth: 'owner' },
  { method: 'GET', path: '/v1/vehicles/{vin}/disclosures', auth: 'owner' },
  { method: 'GET', path: '/v1/workshop/vehicles/{vin}/consumption', auth: 'workshop', query: { from: '2024-01-01', to: '2099-01-01' } },
  { method: 'GET', path: '/v1/reports/obfcm', auth: 'authority', query: { from: '2024-01-01', to: '2099-01-01' } },
  {
    method: 'POST',
    path: '/v1/admin/recipients',
    auth: 'admin',
    mutates: true,
    body: { id: ['string', () => '"abuse-new-recipient"'], role: ['string', () => '"workshop"'], name: ['string', () => '"Abuse Garage"'] },
    free: ['name'],
  },
  // Service clients: {id} is a grant's id here, no recipient's (404 past validation); {clientId} stays as written (400).
  { method: 'POST', path: '/v1/admin/recipients/{id}/clients', auth: 'admin', mutates: true },
  { method: 'GET', path: '/v1/admin/recipients/{id}/clients', auth: 'admin' },
  { method: 'DELETE', path: '/v1/admin/recipients/{id}/clients/{clientId}', auth: 'admin', mutates: true },
  { method: 'GET', path: '/v1/recipients', auth: 'authority' },
  {
    method: 'POST',
    path: '/v1/vehicles/{vin}/grants',
    auth: 'owner',
    mutates: true,
    body: { recipientId: ['string', () => '"abuse-third_party"'], categories: ['string', () => '["technical"]'], purpose: ['string', () => '"abuse"'] },
    free: ['purpose'],
    owner: 'abuse-owner-g1',
  },
  { method: 'GET', path: '/v1/vehicles/{vin}/grants', auth: 'owner', owner: 'abuse-owner-g2' },
  { method: 'DELETE', path: '/v1/vehicles/{vin}/grants/{id}', auth: 'owner', mutates: true, owner: 'abuse-owner-g3' },
  { method: 'GET', path: '/v1/vehicles/{vin}/grants/{id}/receipt', auth: 'owner', owner: 'abuse-owner-g4' },
  { method: 'POST', path: '/v1/vehicles/{vin}/checkin-codes', auth: 'owner', mutates: true, body: { visitHours: ['number', () => '2'] }, owner: 'abuse-owner-g5' },
  { method: 'POST', path: '/v1/workshop/checkins', auth: 'workshop', mutates: true, body: { code: ['string', () => '"AAAAA-AAAAA"'] } },
  { method: 'GET', path: '/v1/grants', auth: 'third_party' },
  // The portal's reads (each with its own owner: the rate limit counts per subject).
  { method: 'GET', path: '/v1/vehicles', auth: 'owner', owner: 'abuse-owner-p1' },
  { method: 'GET', path: '/v1/vehicles/{vin}/latest', auth: 'owner', query: { categories: 'technical' }, owner: 'abuse-owner-p2' },
  { method: 'GET', path: '/v1/vehicles/{vin}/status', auth: 'owner', owner: 'abuse-owner-c1' },
  { method: 'GET', path: '/v1/vehicles/{vin}/series', auth: 'owner', query: { from: '2024-01-01T00:00:00Z', to: '2024-01-02T00:00:00Z', bucket: '1h', categories: 'technical' }, owner: 'abuse-owner-p3' },
  { method: 'GET', path: '/v1/vehicles/{vin}/stream', auth: 'owner', query: { after: '', from: '2099-01-01T00:00:00Z' }, owner: 'abuse-owner-s1' },
  // Another recipient than the holder of the grants: its own rate-limit budget; the grant is not its own (404 past validation).
  { method: 'GET', path: '/v1/grants/{id}/stream', auth: 'third_party', query: { after: '', from: '2099-01-01T00:00:00Z' }, owner: 'abuse-owner-g5', recipient: 'abuse-third_party-s' },
  { method: 'GET', path: '/v1/grants/{id}/cardata', auth: 'third_party', query: { format: 'ndjson', from: '2024-01-01', to: '2099-01-01T00:00:00Z' }, owner: 'abuse-owner-g4' },
  // Webhooks: the valid body names a documentation address (refused, 400): nothing is created. {id} is a grant's id, no webhook's (404 past validation).
  { method: 'POST', path: '/v1/webhooks', auth: 'third_party', mutates: true, body: { url: ['string', () => '"https://203.0.113.7/hook"'] }, recipient: 'abuse-third_party-w1' },
  { method: 'GET', path: '/v1/webhooks', auth: 'third_party', recipient: 'abuse-third_party-w2' },
  { method: 'GET', path: '/v1/webhooks/{id}', auth: 'third_party', owner: 'abuse-owner-g4', recipient: 'abuse-third_party-w3' },
  { method: 'DELETE', path: '/v1/webhooks/{id}', auth: 'third_party', mutates: true, owner: 'abuse-owner-g3', recipient: 'abuse-third_party-w4' },
  { method: 'POST', path: '/v1/webhooks/{id}/replay', auth: 'third_party', mutates: true, body: { from: ['string', () => '"2099-01-01T00:00:00Z"'] }, owner: 'abuse-owner-g4', recipient: 'abuse-third_party-w5' },
];
const routeName = (r: RouteDef) => `${r.method} ${r.path}`;

// A token per route and role: the rate limit (600/min) is per token, and this file sends
// a few hundred requests per route. The admin token is one: its routes stay under 600.
const tokens = new Map<string, string>();
async function mint(role: string, subject: string): Promise<string> {
  const r = await api(gw, 'POST', '/v1/admin/tokens', { role, subject });
  expect(r.status).toBe(201);
  return r.body.token as string;
}
async function tokenFor(r: RouteDef): Promise<string | null> {
  if (r.auth === 'anyone') return null;
  if (r.auth === 'admin') return ADMIN_TOKEN;
  const key = routeName(r);
  if (!tokens.has(key)) tokens.set(key, await mint(r.auth === 'owner' ? 'customer' : r.auth, r.auth === 'owner' ? (r.owner ?? 'abuse-owner') : (r.recipient ?? `abuse-${r.auth}`)));
  // (abuse-workshop and abuse-third_party are registered recipients; the latter holds GRANT_A)
  return tokens.get(key)!;
}
const vinOf = (r: RouteDef) => (r.path.includes('transfer') ? VIN_T : r.owner ? GRANTS[r.owner]!.vin : VIN_A);
const grantOf = (r: RouteDef) => (r.owner ? (r.method === 'DELETE' ? GRANTS[r.owner]!.r : GRANTS[r.owner]!.a) : '');
// A token id and a username nobody has: the routes answer 404 to them, never change anything.
const pathWith = (r: RouteDef, vinSegment: string, query = '', idSegment = grantOf(r)) =>
  r.path.replace('{vin}', vinSegment).replace('{id}', idSegment).replace('{jti}', '0f0e0d0c-0b0a-4090-8070-605040302010').replace('{username}', 'abuse-nobody') + query;
const qs = (q: Record<string, string>) => Object.entries(q).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
const validQuery = (r: RouteDef) => (r.query ? '?' + qs(r.query) : '');
function bodyWith(r: RouteDef, field?: string, rawValue?: string): string {
  const parts = Object.entries(r.body!).map(([k, [, v]]) => `${JSON.stringify(k)}:${k === field ? rawValue! : v()}`);
  return `{${parts.join(',')}}`;
}

// ---------------------------------------------------------------------------
// Expectations.

type Expect = 'client-error' | 'not-5xx' | number;
interface Case {
  label: string;
  req: Req;
  expect: Expect;
}

// (not `disclosures`: the workshop's and authority's reads that are meant to succeed add rows there)
const TABLES = ['vehicles', 'telemetry', 'obfcm_readings', 'quarantine', 'consent_events', 'ownership_periods', 'erasure_log', 'accounts', 'recipients', 'grants', 'grant_events', 'checkin_codes'];
async function counts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of TABLES) out[t] = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${t}`))[0]!.n;
  return out;
}

/** Problems with one answer, or null when it is as expected. */
function judge(c: Case, res: Res): string | null {
  if (res.status >= 500) return `${res.status} (5xx): ${res.text.slice(0, 200)}`;
  if (typeof c.expect === 'number' && res.status !== c.expect) return `status ${res.status}, expected ${c.expect}: ${res.text.slice(0, 200)}`;
  if (c.expect === 'client-error' && (res.status < 400 || res.status > 499)) return `status ${res.status}, expected a 4xx: ${res.text.slice(0, 200)}`;
  if (res.status >= 400) {
    if (!/^application\/problem\+json/.test(res.headers['content-type'] ?? '')) return `${res.status} with content-type ${res.headers['content-type']}: ${res.text.slice(0, 200)}`;
    if (typeof res.json?.code !== 'string' || !/^API_ERR_/.test(res.json.code)) return `${res.status} without a code: ${res.text.slice(0, 200)}`;
    if (res.json.status !== res.status) return `problem status ${res.json.status} ≠ ${res.status}`;
  }
  if (res.ms > 4000) return `took ${Math.round(res.ms)} ms`;
  return null;
}

/** Runs the cases (a few at a time) and returns the failures as readable lines. */
async function run(cases: Case[], tally: Map<number, number>): Promise<string[]> {
  const failures: string[] = [];
  let i = 0;
  const worker = async () => {
    while (i < cases.length) {
      const c = cases[i++]!;
      let res: Res;
      try {
        res = await http(c.req);
      } catch (err) {
        failures.push(`${c.label}: ${(err as Error).message}`);
        continue;
      }
      tally.set(res.status, (tally.get(res.status) ?? 0) + 1);
      const p = judge(c, res);
      if (p) failures.push(`${c.label} → ${p}`);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return failures;
}

/** Every hostile request for one route. */
async function casesFor(r: RouteDef): Promise<Case[]> {
  const token = await tokenFor(r);
  const name = routeName(r);
  const vin = vinOf(r);
  const cases: Case[] = [];
  const base = pathWith(r, vin, validQuery(r));
  const add = (label: string, req: Partial<Req>, expect: Expect = 'client-error') =>
    cases.push({ label: `${name} ${label}`, req: { method: r.method, path: base, token, ...req }, expect });

  // VIN path segment
  if (r.path.includes('{vin}')) {
    for (const [label, seg] of vinJunk(vin)) {
      add(`vin=${label}`, { path: pathWith(r, seg, validQuery(r)), ...(r.body ? { body: bodyWith(r) } : {}) });
    }
    // unencoded traversal: no route has that many segments
    add('unencoded ../../etc/passwd', { path: pathWith(r, '../../etc/passwd', validQuery(r)), ...(r.body ? { body: bodyWith(r) } : {}) });
  }

  // grant id path segment: malformed, unknown, someone else's
  if (r.path.includes('{id}')) {
    const id = grantOf(r);
    const ids: [string, string][] = [
      ['not a UUID', 'not-a-uuid'],
      ['UUID + junk', `${id}x`],
      ['UUID without dashes', id.replace(/-/g, '')],
      ['unknown UUID', '00000000-0000-4000-8000-000000000000'],
      ['%00', '%00'],
      ['UUID%00', `${id}%00`],
      ['..', '..'],
      ['4000 characters', '9'.repeat(4000)],
      ...SQL.map((s): [string, string] => [`SQL ${s}`, enc(s)]),
      ...UNICODE.filter((s) => !/[\ud800-\udfff]/.test(s)).map((s, i): [string, string] => [`unicode #${i}`, enc(s)]),
    ];
    for (const [label, seg] of ids) add(`id=${label}`, { path: pathWith(r, vinOf(r), validQuery(r), seg) });
  }

  // query fields of the schema
  if (r.query) {
    for (const field of Object.keys(r.query)) {
      const withValue = (raw: string) => pathWith(r, vin, '?' + Object.entries(r.query!).map(([k, v]) => `${k}=${k === field ? raw : encodeURIComponent(v)}`).join('&'));
      const b = r.body ? { body: bodyWith(r) } : {};
      for (const s of SQL) add(`?${field}=${s}`, { path: withValue(enc(s)), ...b });
      for (const [i, s] of UNICODE.entries()) add(`?${field}=unicode #${i}`, { path: withValue(enc(s)), ...b });
      add(`?${field} repeated`, { path: pathWith(r, vin, `${validQuery(r)}&${field}=${encodeURIComponent(r.query[field]!)}`), ...b });
      add(`?${field} empty`, { path: withValue(''), ...b });
      add(`?${field} 4000 characters`, { path: withValue('9'.repeat(4000)), ...b });
      add(`?${field}[]=`, { path: pathWith(r, vin, `${validQuery(r)}&${field}[]=x`), ...b });
      add(`?${field}=%00`, { path: withValue('%00'), ...b });
      add(`?${field}=invalid %ZZ`, { path: withValue('%ZZ'), ...b });
    }
    const b = r.body ? { body: bodyWith(r) } : {};
    for (const k of ['zzz', '__proto__', 'constructor', 'hasOwnProperty', 'toString', 'constructor[prototype][admin]']) {
      add(`?${k}=1 (unknown key)`, { path: pathWith(r, vin, `${validQuery(r)}&${k}=1`), ...b });
    }
  } else if (!r.mutates) {
    // No query schema: junk query keys are ignored, the answer is the same as without them.
    const clean = await http({ method: r.method, path: base, token });
    for (const q of [...SQL.map((s) => `q=${enc(s)}`), 'a=1&a=2&a=3', '__proto__[admin]=1', 'constructor[prototype][admin]=1', `x=${'%FF'.repeat(100)}`, 'x=%ZZ']) {
      add(`?${q.slice(0, 40)} (no query schema: ignored)`, { path: `${base}?${q}` }, clean.status);
    }
  }

  // bodies
  if (r.body) {
    for (const [label, body] of MALFORMED_JSON) add(`malformed JSON: ${label}`, { body });
    for (const [field, [kind]] of Object.entries(r.body)) {
      for (const w of WRONG[kind]) add(`${field}=${w.slice(0, 30)}`, { body: bodyWith(r, field, w) });
      if (kind === 'string' && !r.free?.includes(field)) {
        for (const s of SQL) add(`${field}=${s}`, { body: bodyWith(r, field, JSON.stringify(s)) });
        for (const [i, s] of UNICODE.entries()) add(`${field}=unicode #${i}`, { body: bodyWith(r, field, JSON.stringify(s)) });
      }
      // missing field
      const rest = Object.entries(r.body).filter(([k]) => k !== field && !(k === 'ttlSeconds'));
      if (field !== 'ttlSeconds') add(`missing ${field}`, { body: `{${rest.map(([k, [, v]]) => `${JSON.stringify(k)}:${v()}`).join(',')}}` });
    }
    add('an extra field', { body: bodyWith(r).replace(/}$/, ',"isAdmin":true}') });
    add('duplicate keys, last one invalid', { body: bodyWith(r).replace(/}$/, `,${JSON.stringify(Object.keys(r.body)[0])}:{"$ne":null}}`) });
    add('text/plain', { body: bodyWith(r), contentType: 'text/plain' }); // fastify parses text/plain as a string: 400
    add('application/x-www-form-urlencoded', { body: 'vin=x&ownerId=y', contentType: 'application/x-www-form-urlencoded' }, 415);
    add('no content-type', { body: bodyWith(r), contentType: null });
    add('a huge body (70 KiB)', { body: bodyWith(r).replace(/}$/, `,"pad":${JSON.stringify('x'.repeat(70 * 1024))}}`) }, 413);
    add('a huge body (1 MiB), chunked', { body: bodyWith(r).replace(/}$/, `,"pad":${JSON.stringify('x'.repeat(1024 * 1024))}}`), chunked: true }, 413);
  } else if (r.method === 'DELETE') {
    // No body schema, but a body is parsed: what is not JSON is refused (valid JSON would be ignored).
    for (const [label, body, strict] of MALFORMED_JSON) if (strict) add(`malformed JSON: ${label}`, { body });
    add('a huge body (70 KiB)', { body: JSON.stringify({ pad: 'x'.repeat(70 * 1024) }) }, 413);
  } else {
    // GET: a body is not read; the answer is the route's normal one, never a 5xx.
    add('GET with a malformed JSON body', { body: '{"a":' }, 'not-5xx');
    add('GET with a 100 KiB body', { body: 'x'.repeat(100 * 1024), contentType: 'application/octet-stream' }, 'not-5xx');
  }

  // headers
  // Bogus credentials on an otherwise valid request: 401 (a mutation would show in the counts).
  const valid: Partial<Req> = r.body ? { body: bodyWith(r) } : {};
  const expectAuth: Expect = r.auth === 'anyone' ? 'not-5xx' : 401;
  add('Authorization: Bearer <8000 characters>', { token: 'A'.repeat(8000), ...valid }, expectAuth);
  add('Authorization: Bearer <latin-1 junk>', { token: 'é\u00ff\u0080.x.y', ...valid }, expectAuth);
  add('Authorization: Basic', { token: null, headers: { Authorization: 'Basic YWRtaW46YWRtaW4=' }, ...valid }, expectAuth);
  add('Authorization: Bearer (empty)', { token: null, headers: { Authorization: 'Bearer ' }, ...valid }, expectAuth);
  add('Authorization: Bearer a.b.c with SQL', { token: `x.${encodeURIComponent(SQL[0]!)}.y`, ...valid }, expectAuth);
  // Junk headers with the right token: on a mutating route the request is made invalid
  // besides (an extra body field, a bad query value), so that nothing is changed.
  const invalid: Partial<Req> = r.body ? { body: bodyWith(r).replace(/^\{/, '{"zzz":1,') } : r.mutates ? { path: pathWith(r, vin, '?category=zzz') } : {};
  const expectValid: Expect = r.mutates ? 'client-error' : 'not-5xx';
  add('x-request-id: 8000 characters', { headers: { 'x-request-id': 'r'.repeat(8000) }, ...invalid }, expectValid);
  add('Accept-Encoding junk', { headers: { 'Accept-Encoding': 'gzip;q=NaN, br;q=-1, *;q=1e999, zstd' }, ...invalid }, expectValid);
  return cases;
}

// ---------------------------------------------------------------------------

let before: Record<string, number>;
/** Every table's rows (digest) once the fixtures are in, compared with the same afterwards. */
let digestBefore: Record<string, string>;
/**
 * Rows this file adds itself are left out of both digests (tokens it mints later, reads it
 * makes that are logged as disclosures, a retention period starting meanwhile, the vehicle of
 * the SQL-looking owner id): every row that was there must be there afterwards, unchanged.
 */
let digestScope: Record<string, string>;
/** The vehicle the SQL-looking owner id test provisions. */
const SQL_VIN = testVin();
const tally = new Map<number, number>();
let sent = 0;

// Requests of one route run several at a time with one token: the export cap
// (EXPORTS_PER_CALLER_MAX, tested in api-limits.test.ts) must not be what answers them.
const test = gatewayTest({ EXPORTS_PER_CALLER_MAX: '100' });
test.beforeAll(async ({ db: testDb, gw: testGw }) => {
  db = testDb;
  gw = testGw;
  // Fixtures: vehicle A (owner abuse-owner) with telemetry, vehicle T for the transfer route.
  const a = await provision(gw, undefined, 'abuse-owner');
  VIN_A = a.vin;
  VIN_T = (await provision(gw, undefined, 'abuse-owner-t')).vin;
  const c = await connectVehicle(gw, a.vin, a.secret);
  const t = Date.now() - 60_000;
  await publish(c, `v1/vehicles/${a.vin}/telemetry`, encodeBatch(a.vin, [1, 2, 3].map((s) => record(s, t + s * 1000, { technical: FULL_TECHNICAL, consumption: FULL_CONSUMPTION, location: FULL_LOCATION }))));
  await c.endAsync();
  // Grants: a recipient of each kind; per owner of a grant route a vehicle, a grant to the third party, a revoked grant.
  for (const [id, role] of [['abuse-workshop', 'workshop'], ['abuse-third_party', 'third_party'], ['abuse-third_party-s', 'third_party']]) {
    expect((await api(gw, 'POST', '/v1/admin/recipients', { id, role, name: id })).status).toBe(201);
  }
  for (const owner of new Set(ROUTES.map((r) => r.owner).filter((o): o is string => o !== undefined))) {
    const v = (await provision(gw, undefined, owner)).vin;
    const ownerTok = await mint('customer', owner);
    const grant = async () => (await api(gw, 'POST', `/v1/vehicles/${v}/grants`, { recipientId: 'abuse-third_party', categories: ['technical'], purpose: 'abuse', dataFrom: '2024-01-01T00:00:00Z' }, ownerTok)).body.id as string;
    GRANTS[owner] = { vin: v, a: await grant(), r: await grant() };
    expect((await api(gw, 'DELETE', `/v1/vehicles/${v}/grants/${GRANTS[owner].r}`, undefined, ownerTok)).status).toBe(204);
  }
  before = await counts();
  const lit = (x: string) => `'${x.replace(/'/g, "''")}'`;
  const jtis = (await db.query<{ jti: string }>('SELECT jti FROM api_tokens')).map((r) => r.jti);
  const lastDisclosure = (await db.query<{ n: string }>('SELECT coalesce(max(id), 0)::text AS n FROM disclosures'))[0]!.n;
  const cut = (await db.query<{ t: string }>('SELECT clock_timestamp()::text AS t'))[0]!.t;
  digestScope = {
    api_tokens: jtis.length ? `t.jti IN (${jtis.map(lit).join(', ')})` : 'false',
    disclosures: `t.id <= ${lastDisclosure}`,
    scheduled_runs: `t.started_at <= ${lit(cut)}::timestamptz`,
    vehicles: `t.vin <> ${lit(SQL_VIN)}`,
    ownership_periods: `t.vin <> ${lit(SQL_VIN)}`,
  };
  digestBefore = await tableDigests(db.query, { where: digestScope });
});
afterAll(async () => {
  const lines = [...tally.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}: ${n}`);
  console.log(`http-abuse: ${sent} hostile requests; answers by status: ${lines.join(', ')}`);
});

describe('the route table', () => {
  it('covers every route of the app (its OpenAPI document), and the hidden /metrics', async () => {
    const doc = (await (await fetch(`http://127.0.0.1:${gw.httpPort}/docs/json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const inApp = Object.entries(doc.paths)
      .filter(([p]) => !p.startsWith('/docs'))
      .flatMap(([p, ops]) => Object.keys(ops).filter((m) => ['get', 'post', 'put', 'delete', 'patch'].includes(m)).map((m) => `${m.toUpperCase()} ${p}`))
      .sort();
    expect(ROUTES.filter((r) => r.path !== '/metrics').map(routeName).sort()).toEqual(inApp);
  });
});

describe('hostile requests, route by route: a 4xx problem+json with a code, never a 5xx', () => {
  it.each(ROUTES.map((r) => [routeName(r), r] as const))('%s', async (_name, r) => {
    const cases = await casesFor(r);
    sent += cases.length;
    const failures = await run(cases, tally);
    expect(failures, `${failures.length} of ${cases.length} requests answered wrongly`).toEqual([]);
    expect(tally.get(429) ?? 0, 'rate-limited: fewer requests reached the route than intended').toBe(0);
  }, 60_000);
});

/** Answers of requests sent once and judged by two tests: "a 4xx, never a 5xx" and "as problem+json". */
function shared(build: () => Promise<{ label: string; send: () => Promise<Res> }[]>) {
  let p: Promise<{ label: string; res: Res | Error }[]> | null = null;
  return () =>
    (p ??= build().then((reqs) => Promise.all(reqs.map(async (r) => ({ label: r.label, res: await r.send().catch((e: Error) => e) })))));
}
const fourXX = (xs: { label: string; res: Res | Error }[]) =>
  xs.filter(({ res }) => res instanceof Error || res.status < 400 || res.status > 499).map(({ label, res }) => `${label} → ${res instanceof Error ? res.message : `${res.status} ${res.text.slice(0, 120)}`}`);
const notProblem = (xs: { label: string; res: Res | Error }[]) =>
  xs
    .filter(({ res }) => !(res instanceof Error) && !(/^application\/problem\+json/.test(res.headers['content-type'] ?? '') && /^API_ERR_/.test(res.json?.code ?? '')))
    .map(({ label, res }) => `${label} → ${(res as Res).status} ${(res as Res).headers['content-type']} ${(res as Res).text.slice(0, 140)}`);

describe('VIN segments the router cannot decode (FST_ERR_BAD_URL, FST_ERR_MAX_PARAM_LENGTH), on every route with a {vin}', () => {
  const answers = shared(async () => {
    const out: { label: string; send: () => Promise<Res> }[] = [];
    for (const [label, seg] of UNDECODABLE) {
      for (const r of ROUTES.filter((x) => x.path.includes('{vin}'))) {
        const req: Req = { method: r.method, path: pathWith(r, seg, validQuery(r)), token: await tokenFor(r), ...(r.body ? { body: bodyWith(r) } : {}) };
        out.push({ label: `${routeName(r)} vin=${label}`, send: () => http(req) });
      }
    }
    sent += out.length;
    return out;
  });
  it('are answered with a 4xx, never a 5xx', async () => {
    expect(fourXX(await answers())).toEqual([]);
  });
  it('are answered as application/problem+json with an API_ERR_ code (README "HTTP": errors are problem details)', async () => {
    expect(notProblem(await answers())).toEqual([]);
  });
});

describe('requests the HTTP parser refuses', () => {
  const bad: [string, string | Buffer][] = [
    ['an unknown method', 'FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a garbage request line', 'GARBAGE\r\n\r\n'],
    ['a header without a colon', 'GET /v1/catalogue HTTP/1.1\r\nHost: x\r\nX-Foo\r\n\r\n'],
    ['a space in a header name', 'GET /v1/catalogue HTTP/1.1\r\nHost: x\r\nX Foo: 1\r\n\r\n'],
    ['a NUL in a header value', 'GET /v1/catalogue HTTP/1.1\r\nHost: x\r\nX-Foo: a\u0000b\r\n\r\n'],
    ['Content-Length: abc', 'POST /v1/admin/tokens HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'],
    ['two different Content-Lengths', 'POST /v1/admin/tokens HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}'],
    ['Content-Length with Transfer-Encoding (smuggling)', 'POST /v1/admin/tokens HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['headers over 16 KiB', `GET /v1/catalogue HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`],
    ['raw UTF-8 bytes in the path', Buffer.concat([Buffer.from('GET /v1/vehicles/'), Buffer.from('🚗', 'utf8'), Buffer.from('/consent HTTP/1.1\r\nHost: x\r\n\r\n')])],
    ['HTTP/9.9', 'GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n'],
  ];
  const answers = shared(async () => bad.map(([label, bytes]) => ({ label, send: () => rawRequest(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes) })));
  it('are answered with a 4xx, never a 5xx', async () => {
    expect(fourXX(await answers())).toEqual([]);
  });
  it('are answered as application/problem+json with an API_ERR_ code (README "HTTP": errors are problem details)', async () => {
    expect(notProblem(await answers())).toEqual([]);
  });
});

describe('SQL-looking strings that are valid values are stored verbatim, not executed', () => {
  it("an owner id ';DROP/**/TABLE/**/vehicles;-- (printable ASCII, no spaces) is stored as text", async () => {
    const vin = SQL_VIN;
    const owner = `';DROP/**/TABLE/**/vehicles;--`;
    const r = await api(gw, 'POST', '/v1/admin/vehicles', { vin, ownerId: owner });
    expect(r.status).toBe(201);
    const rows = await db.query<{ owner_id: string }>('SELECT owner_id FROM vehicles WHERE vin = $1', [vin]);
    expect(rows).toEqual([{ owner_id: owner }]);
    // the owner's token (subject = that string) reads the vehicle; the table is still there
    const tok = await mint('customer', owner);
    expect((await api(gw, 'GET', `/v1/vehicles/${vin}/consent`, undefined, tok)).status).toBe(200);
    before.vehicles = before.vehicles! + 1;
    before.ownership_periods = before.ownership_periods! + 1;
  });
});

describe('the rate limit (per bearer token, 600 per minute)', () => {
  it('cannot be sidestepped by spelling the same token differently in the Authorization header', async () => {
    const tok = await mint('customer', 'abuse-owner');
    // bearer() accepts any case of "Bearer" and any run of whitespace before the token
    const spellings = (i: number) => `${['Bearer', 'bearer', 'BEARER', 'BeArEr'][i % 4]}${' \t'[(i >> 2) % 2]!.repeat(1 + ((i >> 3) % 90))}${tok}`;
    const statuses: number[] = [];
    for (let i = 0; i < 700; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: 50 }, (_, j) =>
          http({ method: 'GET', path: `/v1/vehicles/${VIN_A}/consent`, token: null, headers: { Authorization: spellings(i + j) } }).then((r) => r.status),
        ),
      );
      statuses.push(...batch);
    }
    // every spelling is accepted as the same token …
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    // … so the 601st request within the minute must be refused
    expect(statuses.filter((s) => s === 429).length, 'requests refused with 429 out of 700 with one token').toBeGreaterThanOrEqual(100);
  });
});

describe('afterwards', () => {
  it('every table still exists and no row was added, changed away or erased by the hostile requests', async () => {
    const reg = await db.query<{ t: string | null }>(`SELECT to_regclass('public.vehicles')::text AS t`);
    expect(reg[0]!.t).toBe('vehicles');
    expect(await counts()).toEqual(before);
    // Not only the counts: every row of every table, as it was (see digestScope).
    expect(await tableDigests(db.query, { where: digestScope })).toEqual(digestBefore);
    // (api_tokens grows with the tokens this file mints for itself; none may have been revoked)
    expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM api_tokens WHERE revoked_at IS NOT NULL'))[0]!.n).toBe(0);
    // vehicle A still has its data and its owner; T was not transferred
    expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM telemetry WHERE vin = $1 AND odometer_km IS NOT NULL', [VIN_A]))[0]!.n).toBe(3);
    const owners = await db.query<{ vin: string; owner_id: string }>('SELECT vin, owner_id FROM vehicles WHERE vin = ANY($1) ORDER BY owner_id', [[VIN_A, VIN_T]]);
    expect(owners.map((o) => o.owner_id)).toEqual(['abuse-owner', 'abuse-owner-t']);
    expect((await fetch(`http://127.0.0.1:${gw.httpPort}/readyz`)).status).toBe(200);
  });
});
