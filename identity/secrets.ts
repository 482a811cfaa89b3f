// Vehicle secrets and admin tokens: generated with a CSPRNG, stored only as salted scrypt
// hashes, compared in constant time. Format of a hash: scrypt$N$r$p$salt_b64$hash_b64.
import { randomBytes, scrypt, timingSafeEqual, createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

const KEY_LEN = 32;

/** A fresh secret: 256 random bits, base64url (43 characters). */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

function scryptAsync(secret: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, KEY_LEN, { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/**
 * Hashes a secret. `cost` is scrypt's N (power of two). The secrets are 256-bit random
 * values, not passwords: brute force is hopeless whatever the cost, so N stays modest
 * and a reconnect storm of thousands of vehicles does not starve the CPU.
 */
export async function hashSecret(secret: string, cost = 4096): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(secret, salt, cost, 8, 1);
  return `scrypt$${cost}$8$1$${salt.toString('base64')}$${key.toString('base64')}`;
}

/**
 * Hashes a password a person chose: unlike the random secrets above, it may be guessable,
 * so the cost is one of OWASP's scrypt settings (N=2^15, r=8, p=3: 32 MiB, ~0.1 s here).
 */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const n = 32768;
  const p = 3;
  const key = await scryptAsync(password, salt, n, 8, p);
  return `scrypt$${n}$8$${p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Hashes of a password nobody has: compared against when the username is unknown, so timing does not tell. */
export const UNUSABLE_PASSWORD_HASH = `scrypt$32768$8$3$${Buffer.alloc(16).toString('base64')}$${Buffer.alloc(32).toString('base64')}`;

export async function verifySecret(secret: string, stored: string, derive: typeof scryptAsync = scryptAsync): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  const expected = Buffer.from(hash, 'base64');
  const key = await derive(secret, Buffer.from(salt, 'base64'), Number(n), Number(r), Number(p));
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** Constant-time comparison of two tokens of any length (hashes first, so lengths match). */
export function tokensEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

export interface SecretVerifier {
  /**
   * Checks a secret against a stored hash, or against nothing (null: unknown VIN) with
   * the same scrypt work, so that the answer's timing does not tell which VINs exist.
   */
  verify(secret: string, stored: string | null): Promise<boolean>;
  /** scrypt calls running now. */
  running(): number;
  /** Calls waiting for a slot. */
  waiting(): number;
}

/**
 * A verifier that runs at most `concurrency` scrypt calls at once. scrypt runs on libuv's
 * thread pool (4 threads by default), which zlib (HTTP compression), fs and dns share:
 * a login flood must leave some of it to them.
 */
export function createSecretVerifier(opts: { concurrency: number; cost: number }): SecretVerifier {
  // A hash no secret matches (its key is all zeros), with the configured cost.
  const dummy = `scrypt$${opts.cost}$8$1$${randomBytes(16).toString('base64')}$${Buffer.alloc(KEY_LEN).toString('base64')}`;
  const slots = boundedSlots(opts.concurrency, Infinity);
  return {
    async verify(secret, stored) {
      const ok = await slots.run(() => verifySecret(secret, stored ?? dummy));
      return stored !== null && ok;
    },
    running: () => slots.running(),
    waiting: () => slots.waiting(),
  };
}

/** Thrown when the password checks' queue is full: the answer is 503 at once, nothing is hashed. */
export class PasswordChecksBusy extends Error {
  constructor(readonly waiting: number) {
    super(`${waiting} password checks are waiting already`);
    this.name = 'PasswordChecksBusy';
  }
}

/**
 * At most `concurrency` calls of `run` at once; at most `maxWaiting` more wait their turn
 * (first come, first served), beyond which `run` throws PasswordChecksBusy at once.
 */
function boundedSlots(concurrency: number, maxWaiting: number) {
  let running = 0;
  const queue: (() => void)[] = [];
  return {
    async run<T>(f: () => Promise<T>): Promise<T> {
      // A finished call hands its slot to the next waiter directly: no newcomer slips in between.
      if (running >= concurrency) {
        if (queue.length >= maxWaiting) throw new PasswordChecksBusy(queue.length);
        await new Promise<void>((r) => queue.push(r));
      } else running++;
      try {
        return await f();
      } finally {
        const next = queue.shift();
        if (next) next();
        else running--;
      }
    },
    running: () => running,
    waiting: () => queue.length,
  };
}

// A hash thread: scrypt run synchronously on a worker thread of its own at a low CPU
// priority (Linux: nice 10 for that thread alone, via /proc/thread-self, ~1/10 of a normal
// thread's share when they compete; elsewhere normal priority). Not libuv's pool at all;
// and on a busy machine the event loop, the database and vehicle logins go first: a
// sign-in flood costs idle CPU, not vehicles' latency. Measured on 2 cores with one busy
// with something else: vehicles' CONNACK p99 30-40 ms during 50 concurrent sign-ins; on
// the pool at normal priority it was 369 ms (test/solo/sign-in-latency.test.ts).
const HASH_THREAD = `
const { parentPort } = require('node:worker_threads');
const { scryptSync } = require('node:crypto');
try {
  const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop());
  if (tid > 0) require('node:os').setPriority(tid, 10);
} catch {}
parentPort.on('message', (m) => {
  try {
    const key = scryptSync(m.secret, Buffer.from(m.salt), ${KEY_LEN}, { N: m.n, r: m.r, p: m.p, maxmem: 256 * m.n * m.r + 1024 * 1024 });
    parentPort.postMessage({ id: m.id, key });
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: String(err && err.message || err) });
  }
});
`;

function hashThread(): { scrypt: typeof scryptAsync } {
  let worker: Worker | null = null;
  let seq = 0;
  const pending = new Map<number, { resolve: (key: Buffer) => void; reject: (err: Error) => void }>();
  const fail = (w: Worker, err: Error) => {
    if (worker !== w) return;
    worker = null;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  const start = (): Worker => {
    const w = new Worker(HASH_THREAD, { eval: true });
    w.on('message', (m: { id: number; key?: Uint8Array; error?: string }) => {
      const p = pending.get(m.id);
      pending.delete(m.id);
      if (pending.size === 0) w.unref();
      if (m.key) p?.resolve(Buffer.from(m.key));
      else p?.reject(new Error(`scrypt: ${m.error}`));
    });
    w.on('error', (err) => fail(w, err));
    w.on('exit', (code) => fail(w, new Error(`hash thread exited (${code})`)));
    return w;
  };
  return {
    scrypt(secret, salt, n, r, p) {
      const w = (worker ??= start());
      const id = ++seq;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        // An idle hash thread does not keep the process alive; a check in progress does.
        w.ref();
        w.postMessage({ id, secret, salt, n, r, p });
      });
    },
  };
}

export interface PasswordVerifier {
  /**
   * Checks a person's password against a stored hash, or against UNUSABLE_PASSWORD_HASH
   * (null: unknown username) with the same work. Throws PasswordChecksBusy when the queue is full.
   */
  verify(password: string, stored: string | null): Promise<boolean>;
  running(): number;
  waiting(): number;
}

/**
 * The sign-in form's password checks, in a queue of their own: a password hash costs
 * ~30 times a vehicle secret's (N=2^15, p=3: ~0.1-0.3 s of one thread). They run on
 * `concurrency` hash threads of their own at the lowest priority (above), never on libuv's
 * pool, where vehicle secrets are checked: a flood of sign-ins waits here, and on a busy
 * machine yields the CPU to vehicle logins.
 */
export function createPasswordVerifier(opts: { concurrency: number; maxWaiting: number }): PasswordVerifier {
  const slots = boundedSlots(opts.concurrency, opts.maxWaiting);
  // One hash thread per slot, started on first use; `slots` lets at most that many run.
  const idle = Array.from({ length: opts.concurrency }, () => hashThread());
  return {
    async verify(password, stored) {
      const ok = await slots.run(async () => {
        const thread = idle.pop()!;
        try {
          return await verifySecret(password, stored ?? UNUSABLE_PASSWORD_HASH, thread.scrypt);
        } finally {
          idle.push(thread);
        }
      });
      return stored !== null && ok;
    },
    running: () => slots.running(),
    waiting: () => slots.waiting(),
  };
}
