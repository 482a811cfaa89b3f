// Command-line flags of the simulator, validated with zod so that every
// mistake is reported with the flag that caused it.
import { SUBJECT_MAX_LENGTH, SUBJECT_PATTERN, SUBJECT_RULE } from '../identity/subject.ts';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { VIN_PREFIX_PATTERN, MAX_VIN_PREFIX_LENGTH } from './vin.ts';
import type { SimulationOptions } from './run.ts';

export const USAGE = `Usage: npm run simulate -- [flags]

Provisions simulated vehicles through the admin API, connects each over MQTT
and publishes protobuf TelemetryBatch messages in real time.

Flags:
  --vehicles N        number of vehicles (default 10)
  --rate R            records per second per vehicle, may be fractional (default 1)
  --duration S        seconds to drive, may be fractional (default 30)
  --batch B           records per MQTT message (default 10)
  --http URL          admin HTTP API of the gateway (default http://127.0.0.1:8080)
  --mqtt URL          MQTT broker of the gateway (default mqtt://127.0.0.1:1883)
  --admin-token T     admin bearer token (default: environment variable ADMIN_TOKEN)
  --owner ID          ownerId the vehicles are provisioned for (default simulator)
  --inflight K        unacknowledged messages allowed per vehicle (default 10)
  --concurrency C     vehicles provisioned / connected at the same time (default 20)
  --seed N            seed of the driving model, 0..4294967295 (default: random, printed)
  --vin-prefix P      first 1-${MAX_VIN_PREFIX_LENGTH} characters of every VIN; the rest is random
  --quiet             no progress lines on stderr
  -h, --help          print this help

At the end one line is printed to stdout:
  simulator: vehicles=N records_sent=X records_acked=Y messages_sent=M messages_acked=K duration_s=D acked_records_per_s=R
The exit status is 0 when every message was acknowledged, 1 otherwise.`;

/** The command line's share of the simulation options, plus its own. */
export interface SimulatorArgs extends Pick<SimulationOptions, 'vehicles' | 'rate' | 'durationS' | 'batch' | 'httpUrl' | 'mqttUrl' | 'adminToken' | 'ownerId' | 'inflight'> {
  concurrency: number;
  /** Undefined: the caller picks a random seed (and should print it). */
  seed: number | undefined;
  vinPrefix: string | undefined;
  quiet: boolean;
}

export type ParseResult =
  | { kind: 'ok'; args: SimulatorArgs }
  | { kind: 'help' }
  | { kind: 'error'; errors: string[] };

const numberFlag = () => z.coerce.number({ error: 'must be a number' }).refine(Number.isFinite, 'must be a finite number');
const intFlag = (min: number, max: number) =>
  z.coerce
    .number({ error: 'must be a whole number' })
    .int({ error: 'must be a whole number' })
    .min(min, { error: `must be at least ${min}` })
    .max(max, { error: `must be at most ${max}` });

const urlFlag = (protocols: readonly string[]) =>
  z.string().refine(
    (s) => URL.canParse(s) && protocols.includes(new URL(s).protocol),
    `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`,
  );

// Keys are the flag names, so an issue's path names the flag directly.
const schema = z.object({
  vehicles: intFlag(1, 1_000_000).default(10),
  rate: numberFlag()
    .refine((r) => r > 0, 'must be greater than 0')
    // Above 1000/s two records would share a recordedAtMs millisecond.
    .refine((r) => r <= 1000, 'must be at most 1000'),
  duration: numberFlag().refine((s) => s > 0, 'must be greater than 0').refine((s) => s <= 7 * 86_400, 'must be at most 604800 (7 days)'),
  batch: intFlag(1, 10_000).default(10),
  http: urlFlag(['http:', 'https:']).default('http://127.0.0.1:8080'),
  mqtt: urlFlag(['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'tls:', 'ws:', 'wss:']).default('mqtt://127.0.0.1:1883'),
  'admin-token': z.string({ error: 'is required (or set the environment variable ADMIN_TOKEN)' }).min(1, 'must not be empty'),
  owner: z
    .string()
    .min(1, 'must not be empty')
    .max(SUBJECT_MAX_LENGTH, `must be at most ${SUBJECT_MAX_LENGTH} characters`)
    .regex(SUBJECT_PATTERN, `must be ${SUBJECT_RULE}`)
    .default('simulator'),
  // MQTT packet identifiers are 16-bit and shared by a connection's in-flight messages.
  inflight: intFlag(1, 65_535).default(10),
  concurrency: intFlag(1, 10_000).default(20),
  seed: intFlag(0, 0xffff_ffff).optional(),
  'vin-prefix': z
    .string()
    .transform((s) => s.toUpperCase())
    .refine((s) => VIN_PREFIX_PATTERN.test(s), `must be 1-${MAX_VIN_PREFIX_LENGTH} characters of 0-9 and A-Z without I, O, Q`)
    .optional(),
  quiet: z.boolean().default(false),
});

const STRING_FLAGS = [
  'vehicles', 'rate', 'duration', 'batch', 'http', 'mqtt', 'admin-token',
  'owner', 'inflight', 'concurrency', 'seed', 'vin-prefix',
] as const;

/**
 * Parses the simulator's command line (without the node and script paths).
 * `env` supplies ADMIN_TOKEN when --admin-token is absent.
 */
export function parseSimulatorArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): ParseResult {
  let values: Record<string, string | boolean | undefined>;
  try {
    const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    };
    for (const name of STRING_FLAGS) options[name] = { type: 'string' };
    ({ values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }));
  } catch (err) {
    return { kind: 'error', errors: [describeParseError(err)] };
  }
  if (values['help'] === true) return { kind: 'help' };

  const input: Record<string, unknown> = { ...values };
  delete input['help'];
  // Defaults for rate and duration live here rather than in the schema: zod
  // does not run refinements on a default, and these need the refinements.
  input['rate'] ??= '1';
  input['duration'] ??= '30';
  if (input['admin-token'] === undefined && env['ADMIN_TOKEN'] !== undefined) input['admin-token'] = env['ADMIN_TOKEN'];

  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    return {
      kind: 'error',
      errors: parsed.error.issues.map((issue) => {
        const flag = String(issue.path[0] ?? '');
        return flag === '' ? issue.message : `--${flag} ${issue.message}`;
      }),
    };
  }
  const a = parsed.data;
  return {
    kind: 'ok',
    args: {
      vehicles: a.vehicles,
      rate: a.rate,
      durationS: a.duration,
      batch: a.batch,
      httpUrl: a.http,
      mqttUrl: a.mqtt,
      adminToken: a['admin-token'],
      ownerId: a.owner,
      inflight: a.inflight,
      concurrency: a.concurrency,
      seed: a.seed,
      vinPrefix: a['vin-prefix'],
      quiet: a.quiet,
    },
  };
}

/** node:util parseArgs messages mention its own API; say which flag is wrong instead. */
function describeParseError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const flag = /'(-{1,2}[^' ]+)/.exec(message)?.[1];
  const code = err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown flag ${flag ?? message} (see --help)`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (flag === undefined) return message;
      if (/argument missing/.test(message)) return `${flag} needs a value`;
      if (/ambiguous/.test(message)) return `${flag} needs a value; write a value starting with '-' as ${flag}=-VALUE`;
      if (/does not take/.test(message)) return `${flag} does not take a value`;
      return message;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${/'([^']*)'/.exec(message)?.[1] ?? message}: every value belongs to a flag (see --help)`;
    default:
      return message;
  }
}
