// Wake-up latency of the two fan-out engines considered for the live streams, measured on
// this machine: PostgreSQL NOTIFY (what the gateway uses: STREAM_FANOUT=notify) and Redis
// pub/sub (Debian's redis-server with ioredis). Either only wakes the other instances'
// tailers, which then read the stream log by cursor (docs/scaling.md says why a bus cannot
// carry the records themselves); this measures what the wake-up itself costs.
//
// One publisher sends MESSAGES messages at RATE a second, each carrying its send time; a
// subscriber on its own connection takes the difference on arrival (one process, one
// clock). The engines take turns, two rounds each. Only 127.0.0.1; bounded in count.
//
//   npm run bench:wakeup      (Redis is skipped, and said so, when redis-server is not installed)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { freePort } from '../devkit/spawn.ts';
import { REPO_DIR, percentile, serverUrl } from './lib.ts';

const MESSAGES = Number(process.env.BENCH_WAKEUP_MESSAGES ?? 2000);
const RATE = Number(process.env.BENCH_WAKEUP_RATE ?? 200);
const CHANNEL = 'bench_wakeup';

interface Figures {
  messages: number;
  received: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Sends MESSAGES stamped messages at RATE/s through `publish`; `arrivals` holds what came back. */
async function paced(publish: (payload: string) => Promise<unknown>, arrivals: number[]): Promise<Figures> {
  arrivals.length = 0;
  const t0 = performance.now();
  for (let i = 0; i < MESSAGES; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await publish(String(performance.now()));
  }
  for (let k = 0; k < 100 && arrivals.length < MESSAGES; k++) await new Promise((r) => setTimeout(r, 20));
  const lat = [...arrivals].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  return { messages: MESSAGES, received: lat.length, p50: r(percentile(lat, 50)), p90: r(percentile(lat, 90)), p99: r(percentile(lat, 99)), max: r(lat[lat.length - 1] ?? NaN) };
}

async function notifyRound(url: string): Promise<Figures> {
  const arrivals: number[] = [];
  const sub = new pg.Client({ connectionString: url });
  const pub = new pg.Client({ connectionString: url });
  await sub.connect();
  await pub.connect();
  try {
    sub.on('notification', (n) => arrivals.push(performance.now() - Number(n.payload)));
    await sub.query(`LISTEN ${CHANNEL}`);
    return await paced((p) => pub.query('SELECT pg_notify($1, $2)', [CHANNEL, p]), arrivals);
  } finally {
    await sub.end();
    await pub.end();
  }
}

async function redisRound(port: number): Promise<Figures> {
  const arrivals: number[] = [];
  const sub = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
  const pub = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
  await sub.connect();
  await pub.connect();
  try {
    sub.on('message', (_c: string, m: string) => arrivals.push(performance.now() - Number(m)));
    await sub.subscribe(CHANNEL);
    return await paced((p) => pub.publish(CHANNEL, p), arrivals);
  } finally {
    sub.disconnect();
    pub.disconnect();
  }
}

async function startRedis(): Promise<{ port: number; child: ChildProcess; version: string } | { missing: string }> {
  const which = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const bin = which.stdout.trim();
  if (!bin) return { missing: 'redis-server is not installed (Debian: apt-get install redis-server)' };
  const version = spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout.trim();
  const port = await freePort();
  const child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { stdio: 'ignore' });
  for (let k = 0; k < 100; k++) {
    const up = await new Promise<boolean>((r) => {
      const c = net.connect({ host: '127.0.0.1', port }, () => {
        c.destroy();
        r(true);
      });
      c.on('error', () => r(false));
    });
    if (up) return { port, child, version };
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill();
  throw new Error(`redis-server did not listen on ${port}`);
}

async function main(): Promise<void> {
  const url = serverUrl();
  const redis = await startRedis();
  const results: { notify: Figures[]; redis: Figures[] | null; redisVersion?: string; redisSkipped?: string; messages: number; ratePerSec: number; date: string } = {
    notify: [],
    redis: 'missing' in redis ? null : [],
    messages: MESSAGES,
    ratePerSec: RATE,
    date: new Date().toISOString(),
  };
  if ('missing' in redis) results.redisSkipped = redis.missing;
  else results.redisVersion = redis.version;
  try {
    for (let round = 0; round < 2; round++) {
      results.notify.push(await notifyRound(url));
      if (!('missing' in redis)) results.redis!.push(await redisRound(redis.port));
    }
  } finally {
    if (!('missing' in redis)) redis.child.kill();
  }
  const dir = path.join(REPO_DIR, 'bench/results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'wakeup.json'), `${JSON.stringify(results, null, 2)}\n`);
  const line = (name: string, f: Figures) => `${name.padEnd(28)} ${String(f.received).padStart(5)}/${f.messages}  p50 ${f.p50} ms  p90 ${f.p90} ms  p99 ${f.p99} ms  max ${f.max} ms`;
  console.log(`wake-up latency, ${MESSAGES} messages at ${RATE}/s, publish → subscriber (one process)`);
  results.notify.forEach((f, i) => console.log(line(`PostgreSQL NOTIFY, round ${i + 1}`, f)));
  if (results.redis) results.redis.forEach((f, i) => console.log(line(`Redis pub/sub, round ${i + 1}`, f)));
  else console.log(`Redis pub/sub: skipped: ${results.redisSkipped}`);
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err);
    process.exit(1);
  },
);
