// Vehicle secrets and admin tokens: generated with a CSPRNG, stored only as salted scrypt
// hashes, compared in constant time. Format of a hash: scrypt$N$r$p$salt_b64$hash_b64.
import { randomBytes, scrypt, timingSafeEqual, createHash } from 'node:crypto';

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

export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  const expected = Buffer.from(hash, 'base64');
  const key = await scryptAsync(secret, Buffer.from(salt, 'base64'), Number(n), Number(r), Number(p));
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
  let running = 0;
  const queue: (() => void)[] = [];
  async function slot<T>(f: () => Promise<T>): Promise<T> {
    // A finished call hands its slot to the next waiter directly: no newcomer slips in between.
    if (running >= opts.concurrency) await new Promise<void>((r) => queue.push(r));
    else running++;
    try {
      return await f();
    } finally {
      const next = queue.shift();
      if (next) next();
      else running--;
    }
  }
  return {
    async verify(secret, stored) {
      const ok = await slot(() => verifySecret(secret, stored ?? dummy));
      return stored !== null && ok;
    },
    running: () => running,
    waiting: () => queue.length,
  };
}
