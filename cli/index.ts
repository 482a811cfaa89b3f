// Operator CLI. Talks to the database named by DATABASE_URL (or the embedded one in
// DATA_DIR: stop the gateway first, PGlite allows one process at a time).
// Exit codes: 0 done, 1 failed, 2 usage error, 3 conflict (already exists), 4 not found.
// A second entry point: it composes storage like app/ does and takes every rule from
// where the API has it (api/provision, api/categories, api/csv, identity/), re-implementing none.
import { parseArgs } from 'node:util';
import path from 'node:path';
import { loadConfig, type Config } from '../config/index.ts';
import { createPgDb, type Db } from '../storage/driver/db.ts';
import { createPgliteDb } from '../storage/driver/pglite.ts';
import { migrate } from '../storage/driver/migrate.ts';
import { STO_ERR, isStorageError } from '../storage/errors.ts';
import { createVehicleRepo } from '../storage/repos/vehicles.ts';
import { createConsentRepo } from '../storage/repos/consent.ts';
import { VIN_RULE, isValidVin } from '../identity/vin.ts';
import { SUBJECT_MAX_LENGTH, SUBJECT_RULE, isValidSubject } from '../identity/subject.ts';
import { provisionVehicle, rotateVehicleSecret } from '../api/provision.ts';
import { hashPassword, newSecret } from '../identity/secrets.ts';
import { ROLES, createTokenService, isRole, parseKeys } from '../identity/tokens.ts';
import { createAccountRepo, createMintedTokenRepo, createOidcStore } from '../storage/repos/sign-in.ts';
import { kidsOf, liveKeys, retirementWindowS, rotateSigningKeys } from '../identity/signing-keys.ts';
import { keyEncryption } from '../app/key-encryption.ts';
import { createRightsRepo } from '../storage/repos/rights.ts';
import { createReadRepo } from '../storage/repos/reads.ts';
import { createRecipientRepo } from '../storage/repos/grants.ts';
import { BUCKETS, bucketOf, openShards } from '../storage/driver/shards.ts';
import { moveBucket } from '../storage/ops/shard-move.ts';
import { GROUPS } from '../proto/fields.ts';
import { parseCategories } from '../api/categories.ts';
import { csvStream } from '../api/csv.ts';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as remote from './remote.ts';

class UsageError extends Error {}
class ExitError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

interface Command {
  summary: string;
  usage: string;
  options: Record<string, { type: 'string' | 'boolean'; short?: string }>;
  run(args: Record<string, string | boolean | undefined>, ctx: { config: Config; db: () => Promise<Db> }): Promise<void>;
}

function need(args: Record<string, string | boolean | undefined>, name: string): string {
  const v = args[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

function vinArg(args: Record<string, string | boolean | undefined>): string {
  const vin = need(args, 'vin');
  if (!isValidVin(vin)) throw new UsageError(`--vin ${JSON.stringify(vin)} is not ${VIN_RULE}`);
  return vin;
}

/** A command of the public API (cli/remote.ts): its refusals become exit codes. */
async function viaApi(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof remote.RemoteError) throw err.exitCode === 2 ? new UsageError(err.message) : new ExitError(err.exitCode, err.message);
    throw err;
  }
}

/** --vin or --grant, exactly one. */
function vinOrGrant(a: Record<string, string | boolean | undefined>): { vin: string | null; grant: string | null } {
  const vin = typeof a.vin === 'string' ? a.vin : null;
  const grant = typeof a.grant === 'string' ? a.grant : null;
  if ((vin === null) === (grant === null)) throw new UsageError('give exactly one of --vin (your vehicle) or --grant (a grant made to you)');
  return { vin, grant };
}

const commands: Record<string, Command> = {
  login: {
    summary: 'sign in to a gateway with a code shown here and confirmed in a browser (device flow); tokens kept for the commands below',
    usage: 'login [--gateway <URL>]   (default: $CARDATA_GATEWAY, else http://127.0.0.1:8080)',
    options: { gateway: { type: 'string' } },
    async run(a) {
      const gw = typeof a.gateway === 'string' ? a.gateway : (process.env.CARDATA_GATEWAY ?? 'http://127.0.0.1:8080');
      await viaApi(async () => void (await remote.login(gw, (l) => console.log(l))));
    },
  },
  logout: {
    summary: 'forget the tokens of login (the refresh token is revoked at the gateway)',
    usage: 'logout',
    options: {},
    async run() {
      await viaApi(() => remote.logout((l) => console.log(l)));
    },
  },
  grants: {
    summary: 'list the grants made to you (a recipient), or with --vin those you made for your vehicle (signed in with login)',
    usage: 'grants [--vin <VIN>]',
    options: { vin: { type: 'string' } },
    async run(a) {
      await viaApi(() => remote.grants(typeof a.vin === 'string' ? a.vin : null, (l) => console.log(l)));
    },
  },
  cardata: {
    summary: "export your vehicle's CarData, or a grant's, through the API (signed in with login)",
    usage: 'cardata (--vin <VIN> | --grant <id>) [--from <ISO time>] [--to <ISO time>] [--format ndjson|csv|zip] [--out <file>]',
    options: { vin: { type: 'string' }, grant: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, format: { type: 'string' }, out: { type: 'string' } },
    async run(a) {
      const which = vinOrGrant(a);
      const opt = (k: string) => (typeof a[k] === 'string' ? { [k]: a[k] } : {});
      await viaApi(() => remote.cardata({ ...which, ...opt('from'), ...opt('to'), ...opt('format'), ...opt('out') }));
    },
  },
  stream: {
    summary: "follow your vehicle's live stream, or a grant's, one record per line; goes on across token refreshes (signed in with login)",
    usage: 'stream (--vin <VIN> | --grant <id>) [--count <n>]',
    options: { vin: { type: 'string' }, grant: { type: 'string' }, count: { type: 'string' } },
    async run(a) {
      const which = vinOrGrant(a);
      const count = typeof a.count === 'string' ? Number(a.count) : null;
      if (count !== null && !(Number.isInteger(count) && count > 0)) throw new UsageError('--count must be a positive whole number');
      await viaApi(() => remote.stream({ ...which, count }, (l) => console.log(l), (l) => console.error(l)));
    },
  },
  migrate: {
    summary: 'apply the database migrations',
    usage: 'migrate',
    options: {},
    async run(_a, { db }) {
      const d = await db();
      const r = await migrate(d);
      console.log(r.applied.length ? `applied: ${r.applied.join(', ')}` : 'schema up to date');
      console.log(`timescaledb: ${r.timescaledb ? 'yes (hypertables)' : 'no (plain tables)'}`);
    },
  },
  provision: {
    summary: 'provision a vehicle and print its MQTT secret (shown once)',
    usage: 'provision --vin <VIN> --owner <ownerId> [--json]',
    options: { vin: { type: 'string' }, owner: { type: 'string' }, json: { type: 'boolean' } },
    async run(a, { db, config }) {
      const vin = vinArg(a);
      const ownerId = need(a, 'owner');
      if (!isValidSubject(ownerId)) throw new UsageError(`--owner must be 1-${SUBJECT_MAX_LENGTH} characters, ${SUBJECT_RULE}`);
      const d = await db();
      await migrate(d);
      let secret: string;
      try {
        ({ secret } = await provisionVehicle(createVehicleRepo(d), config.secretScryptCost, { vin, ownerId }));
      } catch (err) {
        if (isStorageError(err, STO_ERR.CONFLICT)) throw new ExitError(3, `vehicle ${vin} is already provisioned`);
        throw err;
      }
      if (a.json) console.log(JSON.stringify({ vin, secret }));
      else console.log(`vehicle ${vin} provisioned for owner ${ownerId}\nsecret (shown once, store it in the vehicle): ${secret}`);
    },
  },
  'rotate-secret': {
    summary: "replace a vehicle's MQTT secret and print the new one (shown once); the old one stops working",
    usage: 'rotate-secret --vin <VIN> [--json]',
    options: { vin: { type: 'string' }, json: { type: 'boolean' } },
    async run(a, { db, config }) {
      const vin = vinArg(a);
      const d = await db();
      await migrate(d);
      // The running gateways learn of it by NOTIFY and close the sessions of the old secret.
      const rotated = await rotateVehicleSecret(createVehicleRepo(d), config.secretScryptCost, vin);
      if (!rotated) throw new ExitError(4, `vehicle ${vin} is not provisioned`);
      const { secret } = rotated;
      if (a.json) console.log(JSON.stringify({ vin, secret }));
      else console.log(`vehicle ${vin}: secret rotated\nnew secret (shown once, store it in the vehicle): ${secret}`);
    },
  },
  vehicles: {
    summary: 'list provisioned vehicles',
    usage: 'vehicles [--limit N] [--after VIN] [--json]',
    options: { limit: { type: 'string' }, after: { type: 'string' }, json: { type: 'boolean' } },
    async run(a, { db }) {
      const limit = a.limit === undefined ? 100 : Number(a.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new UsageError('--limit must be an integer from 1 to 10000');
      const d = await db();
      await migrate(d);
      const list = await createVehicleRepo(d).list({ limit, ...(typeof a.after === 'string' ? { afterVin: a.after } : {}) });
      if (a.json) console.log(JSON.stringify(list));
      else for (const v of list) console.log(`${v.vin}\t${v.ownerId}\t${v.createdAt.toISOString()}`);
    },
  },
  consent: {
    summary: "show a vehicle's consent in force and its history",
    usage: 'consent --vin <VIN> [--json]',
    options: { vin: { type: 'string' }, json: { type: 'boolean' } },
    async run(a, { db }) {
      const vin = vinArg(a);
      const d = await db();
      await migrate(d);
      if (!(await createVehicleRepo(d).getCredentials(vin))) throw new ExitError(4, `vehicle ${vin} is not provisioned`);
      const tl = await createConsentRepo(d).timeline(vin, 0);
      const cur = tl[tl.length - 1]!;
      if (a.json) {
        console.log(JSON.stringify({ vin, location: cur.location, co2Sharing: cur.co2Sharing, history: tl }));
        return;
      }
      console.log(`${vin}: location ${cur.location ? 'allowed' : 'refused'}, co2Sharing ${cur.co2Sharing ? 'allowed' : 'refused'}`);
      for (const p of tl) console.log(`  since ${p.sinceMs ? new Date(p.sinceMs).toISOString() : '(defaults)'}: location=${p.location} co2Sharing=${p.co2Sharing}`);
    },
  },
  token: {
    summary: 'mint an API bearer token (needs JWT_KEYS, the keys the gateways verify with)',
    usage: 'token --role customer|workshop|third_party|authority --subject <id> [--ttl <seconds>]',
    options: { role: { type: 'string' }, subject: { type: 'string' }, ttl: { type: 'string' } },
    async run(a, { config, db }) {
      const role = need(a, 'role');
      if (!isRole(role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
      const subject = need(a, 'subject');
      if (!isValidSubject(subject)) throw new UsageError(`--subject must be 1-${SUBJECT_MAX_LENGTH} characters, ${SUBJECT_RULE}`);
      const ttl = a.ttl === undefined ? config.tokenTtlS : Number(a.ttl);
      // Capped at TOKEN_TTL_S, as for the admin API (the gateways refuse longer ones).
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > config.tokenTtlS) throw new UsageError(`--ttl must be an integer number of seconds from 1 to ${config.tokenTtlS} (TOKEN_TTL_S)`);
      if (!config.jwtKeys) throw new ExitError(1, 'JWT_KEYS is not set: a token signed with a key no gateway knows would be useless. Set JWT_KEYS as for the gateways.');
      const d = await db();
      await migrate(d);
      const t = await createTokenService(parseKeys(config.jwtKeys)).sign({ role, subject, ttlSeconds: ttl });
      // Recorded like the admin API's tokens, so that it can be revoked.
      await createMintedTokenRepo(d).record({ jti: t.jti, role, subject, issuedAt: new Date(t.issuedAt), expiresAt: new Date(t.expiresAt) });
      console.log(t.token);
    },
  },
  'revoke-token': {
    summary: 'revoke a minted API token by its jti (every gateway refuses it within a second)',
    usage: 'revoke-token --jti <uuid>',
    options: { jti: { type: 'string' } },
    async run(a, { db }) {
      const jti = need(a, 'jti').toLowerCase();
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(jti)) throw new UsageError('--jti must be the UUID of a minted token');
      const d = await db();
      await migrate(d);
      if (!(await createMintedTokenRepo(d).revoke(jti))) throw new ExitError(4, `no minted token ${jti}`);
      console.log(`token ${jti} revoked`);
    },
  },
  account: {
    summary: 'create a person\'s account at the embedded OpenID Provider (password from stdin, or generated and shown once)',
    usage: 'account --username <name> --role customer|workshop|third_party|authority [--subject <id>] [--password-stdin]',
    options: { username: { type: 'string' }, role: { type: 'string' }, subject: { type: 'string' }, 'password-stdin': { type: 'boolean' } },
    async run(a, { db }) {
      const username = need(a, 'username');
      if (!/^[A-Za-z0-9._@+-]{1,128}$/.test(username)) throw new UsageError('--username must be 1-128 characters of A-Z a-z 0-9 . _ @ + -');
      const role = need(a, 'role');
      if (!isRole(role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
      const subject = typeof a.subject === 'string' ? a.subject : username;
      if (!isValidSubject(subject)) throw new UsageError(`--subject must be 1-${SUBJECT_MAX_LENGTH} characters, ${SUBJECT_RULE}`);
      let password: string;
      if (a['password-stdin']) {
        const chunks: Buffer[] = [];
        for await (const c of process.stdin) chunks.push(c as Buffer);
        password = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
        if (password.length < 12) throw new UsageError('the password on stdin must be at least 12 characters');
      } else {
        password = newSecret();
      }
      const d = await db();
      await migrate(d);
      try {
        await createAccountRepo(d).create({ username, subject, role, passwordHash: await hashPassword(password) });
      } catch (err) {
        if (isStorageError(err, STO_ERR.CONFLICT)) throw new ExitError(3, `an account with username ${username} or subject ${subject} exists`);
        throw err;
      }
      console.log(`account ${username} created (role ${role}, subject ${subject})`);
      if (!a['password-stdin']) console.log(`password (shown once): ${password}`);
    },
  },
  'rotate-signing-key': {
    summary: "rotate the embedded OpenID Provider's signing key: the new one signs, the old one verifies until its tokens expire",
    usage: 'rotate-signing-key [--json]',
    options: { json: { type: 'boolean' } },
    async run(a, { db, config }) {
      if (!config.oidc.embedded) throw new ExitError(1, 'no embedded OpenID Provider is configured (OIDC_EMBEDDED=off, or OIDC_ISSUER set with OIDC_EMBEDDED=auto): there is no signing key to rotate');
      const d = await db();
      await migrate(d);
      // Sealed as the gateways seal it (KEY_ENCRYPTION_KEY, or the embedded database's key file).
      const store = createOidcStore(d, keyEncryption(config).codec);
      await store.sealKeyMaterial();
      const windowS = retirementWindowS(config.oidc.accessTokenTtlS);
      // The running gateways hear of it by NOTIFY (at the latest within a minute) and publish it.
      const ring = await rotateSigningKeys(store, windowS);
      const kids = kidsOf(liveKeys(ring, Math.floor(Date.now() / 1000), windowS));
      if (a.json) console.log(JSON.stringify({ kid: kids[0], verifying: kids }));
      else console.log(`signing key rotated: ${kids[0]} signs from now on${kids.length > 1 ? `; ${kids.slice(1).join(', ')} verify until ${windowS} s after they were replaced` : ''}`);
    },
  },
  recipient: {
    summary: 'register a workshop or third party that owners may grant access to (as POST /v1/admin/recipients)',
    usage: 'recipient --id <id> --role workshop|third_party --name <display name> [--json]',
    options: { id: { type: 'string' }, role: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' } },
    async run(a, { db }) {
      const id = need(a, 'id');
      if (!isValidSubject(id)) throw new UsageError(`--id must be 1-${SUBJECT_MAX_LENGTH} characters, ${SUBJECT_RULE}`);
      const role = need(a, 'role');
      if (role !== 'workshop' && role !== 'third_party') throw new UsageError('--role must be workshop or third_party');
      const name = need(a, 'name').trim();
      if (name.length < 1 || name.length > 200) throw new UsageError('--name must be 1-200 characters');
      const d = await db();
      await migrate(d);
      let r;
      try {
        r = await createRecipientRepo(d).create({ id, role, name });
      } catch (err) {
        if (isStorageError(err, STO_ERR.CONFLICT)) throw new ExitError(3, `recipient ${id} already exists`);
        throw err;
      }
      if (a.json) console.log(JSON.stringify({ id: r.id, role: r.role, name: r.name, createdAt: r.createdAt.toISOString() }));
      else console.log(`recipient ${r.id} (${r.role}) registered as ${JSON.stringify(r.name)}`);
    },
  },
  shards: {
    summary: 'list the telemetry shards (SHARD_URLS) and how many buckets each owns',
    usage: 'shards [--json]',
    options: { json: { type: 'boolean' } },
    async run(a, { db, config }) {
      if (!config.shardUrls) throw new ExitError(1, 'SHARD_URLS is not set: telemetry is in DATABASE_URL (README "Sharding")');
      const d = await db();
      const shards = await openShards(d, config.shardUrls, { role: 'cli', max: 2 });
      try {
        const rows = (
          await d.query<{ index: number; label: string; buckets: number; moving: number }>(
            `SELECT s.index, s.label, count(m.bucket)::int AS buckets, count(m.bucket) FILTER (WHERE m.state = 'moving')::int AS moving
             FROM shards s LEFT JOIN shard_map m ON m.shard = s.index GROUP BY s.index, s.label ORDER BY s.index`,
          )
        ).rows;
        if (a.json) console.log(JSON.stringify(rows));
        else for (const r of rows) console.log(`shard ${r.index}\t${r.label}\t${r.buckets} buckets${r.moving ? `, ${r.moving} moving` : ''}`);
      } finally {
        await shards.close();
      }
    },
  },
  'shard-move': {
    summary: 'move one bucket (or the bucket of --vin) to another shard: its vehicles wait while it moves (README "Sharding")',
    usage: 'shard-move (--bucket <0-4095> | --vin <VIN>) --to <shard index> [--drain-ms <ms, default 3000>] [--json]',
    options: { bucket: { type: 'string' }, vin: { type: 'string' }, to: { type: 'string' }, 'drain-ms': { type: 'string' }, json: { type: 'boolean' } },
    async run(a, { db, config }) {
      if ((a.bucket === undefined) === (a.vin === undefined)) throw new UsageError('give exactly one of --bucket and --vin');
      const bucket = a.vin !== undefined ? bucketOf(vinArg(a)) : Number(a.bucket);
      if (!Number.isInteger(bucket) || bucket < 0 || bucket >= BUCKETS) throw new UsageError(`--bucket must be an integer from 0 to ${BUCKETS - 1}`);
      const to = Number(need(a, 'to'));
      const drainMs = a['drain-ms'] === undefined ? 3000 : Number(a['drain-ms']);
      if (!Number.isInteger(drainMs) || drainMs < 0 || drainMs > 600_000) throw new UsageError('--drain-ms must be an integer from 0 to 600000');
      if (!config.shardUrls) throw new ExitError(1, 'SHARD_URLS is not set: telemetry is in DATABASE_URL, there is nothing to move');
      if (!Number.isInteger(to) || to < 0 || to >= config.shardUrls.length) throw new UsageError(`--to must be a shard index from 0 to ${config.shardUrls.length - 1} (SHARD_URLS order)`);
      const d = await db();
      const shards = await openShards(d, config.shardUrls, { role: 'cli', max: 2 });
      try {
        const r = await moveBucket(d, shards, bucket, to, {
          drainMs,
          ...(a.json ? {} : { log: (event: string, fields: Record<string, unknown>) => console.log(`${event} ${JSON.stringify(fields)}`) }),
        });
        if (a.json) console.log(JSON.stringify(r));
        else console.log(r.from === null ? `bucket ${bucket} was already on shard ${to}; other shards checked (${r.deleted.telemetry} stray telemetry rows moved)` : `bucket ${bucket} moved from shard ${r.from} to shard ${to}: ${r.vins} vehicles, ${r.copied.telemetry} telemetry rows`);
      } finally {
        await shards.close();
      }
    },
  },
  export: {
    summary: "export a vehicle's CarData (its current owner's periods) to a file",
    usage: 'export --vin <VIN> --out <file> [--format ndjson|csv] [--categories technical,consumption,location]',
    options: { vin: { type: 'string' }, out: { type: 'string' }, format: { type: 'string' }, categories: { type: 'string' } },
    async run(a, { db, config }) {
      const vin = vinArg(a);
      const out = need(a, 'out');
      const format = (a.format as string | undefined) ?? 'ndjson';
      if (format !== 'ndjson' && format !== 'csv') throw new UsageError('--format must be ndjson or csv');
      const cats = typeof a.categories === 'string' ? parseCategories(a.categories) : { ok: true as const, groups: [...GROUPS] };
      if (!cats.ok) throw new UsageError(`--categories: ${cats.message}`);
      const groups = cats.groups;
      const d = await db();
      await migrate(d);
      const rights = createRightsRepo(d);
      const owner = await rights.currentOwner(vin);
      if (owner === null) throw new ExitError(4, `vehicle ${vin} is not provisioned`);
      const periods = await rights.periodsOf(vin, owner);
      // With SHARD_URLS the records are read on the vehicle's shard (README "Sharding").
      const shards = await openShards(d, config.shardUrls, { role: 'cli', max: 2 });
      const reads = createReadRepo(d, shards);
      const file = createWriteStream(out, { flags: 'wx' });
      let n = 0;
      const body =
        format === 'ndjson'
          ? Readable.from(
              (async function* () {
                for await (const chunk of reads.ndjson(vin, periods, { from: null, to: null }, groups)) {
                  for (let i = chunk.indexOf('\n'); i !== -1; i = chunk.indexOf('\n', i + 1)) n++;
                  yield chunk;
                }
              })(),
            )
          : csvStream(
              (async function* () {
                for await (const r of reads.records(vin, periods, { from: null, to: null }, groups)) {
                  n++;
                  yield r;
                }
              })(),
              groups,
            );
      try {
        await pipeline(body, file);
      } finally {
        await shards.close();
      }
      console.log(`${n} records of ${vin} (owner ${owner}) written to ${out}`);
    },
  },
};

/** node:util parseArgs refuses the command line with codes ERR_PARSE_ARGS_*. */
function isParseArgsError(err: unknown): boolean {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS');
}

function help(): string {
  const lines = ['usage: cardata-gateway <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(14)} ${c.summary}`);
  lines.push('', 'Database: DATABASE_URL, or the embedded one in DATA_DIR (default ./data) when unset.', "Run 'cardata-gateway <command> --help' for a command's options.");
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return name ? 0 : 2;
  }
  const cmd = commands[name];
  if (!cmd) {
    console.error(`unknown command ${JSON.stringify(name)}\n\n${help()}`);
    return 2;
  }
  let db: Db | null = null;
  try {
    const { values } = parseArgs({ args: rest, options: { ...cmd.options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
    if (values.help) {
      console.log(`usage: cardata-gateway ${cmd.usage}\n\n${cmd.summary}`);
      return 0;
    }
    const config = loadConfig();
    await cmd.run(values, {
      config,
      db: async () => {
        db ??= config.databaseUrl ? createPgDb(config.databaseUrl, { max: 2, applicationName: 'cardata-cli' }) : await createPgliteDb(path.resolve(config.dataDir));
        return db;
      },
    });
    return 0;
  } catch (err) {
    if (err instanceof UsageError || isParseArgsError(err)) {
      console.error(`${(err as Error).message}\nusage: cardata-gateway ${cmd.usage}`);
      return 2;
    }
    if (err instanceof ExitError) {
      console.error(err.message);
      return err.exitCode;
    }
    console.error(`${name} failed: ${(err as Error).message}`);
    return 1;
  } finally {
    await (db as Db | null)?.close().catch(() => {});
  }
}

process.exitCode = await main(process.argv.slice(2));
