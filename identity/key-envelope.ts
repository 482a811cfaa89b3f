// Key material at rest: the embedded OpenID Provider's signing and cookie keys are stored
// encrypted with the key-encryption key (KEY_ENCRYPTION_KEY, 32 bytes), AES-256-GCM, in a
// versioned envelope. The row's name is the additional authenticated data, so an envelope
// moved to another row does not open. A row without an envelope was written by an earlier
// version (plain JSON): it is read as it is and sealed at the first start with the key.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/** Bytes of the key-encryption key (AES-256). */
export const KEK_BYTES = 32;
/** How to make one, as the error messages say. */
export const KEK_HOWTO = 'make one with: openssl rand -base64 32 (the same on every instance)';

/** What is stored: `enc` names the scheme (and is how a sealed row is told from a plain one), `kid` the key-encryption key. */
export interface KeyEnvelope {
  enc: 'A256GCM';
  /** Id of the key-encryption key (a hash of it, not the key): a wrong key is named as such, not as corrupt data. */
  kid: string;
  iv: string;
  tag: string;
  ct: string;
}

export class KeyEnvelopeError extends Error {
  readonly code = 'KEY_ERR_ENVELOPE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KeyEnvelopeError';
  }
}

/** The 32 bytes of a key-encryption key given in base64 (or base64url); throws KeyEnvelopeError otherwise. */
export function parseKeyEncryptionKey(text: string, what = 'KEY_ENCRYPTION_KEY'): Buffer {
  const t = text.trim();
  const key = /^[A-Za-z0-9+/_-]+={0,2}$/.test(t) ? Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64') : Buffer.alloc(0);
  if (key.length !== KEK_BYTES) throw new KeyEnvelopeError(`${what} must be ${KEK_BYTES} random bytes in base64 (it decodes to ${key.length}); ${KEK_HOWTO}`);
  return key;
}

/** The id an envelope records of its key-encryption key: 16 hex digits of a SHA-256 of it. */
export function kekId(key: Buffer): string {
  return createHash('sha256').update('cardata-gateway kek\0').update(key).digest('hex').slice(0, 16);
}

/** Whether a stored value is an envelope (of any scheme); a plain value of an earlier version is a JWK or a list. */
export function isEnvelope(v: unknown): v is { enc: string } {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && typeof (v as { enc?: unknown }).enc === 'string' && 'ct' in v;
}

const aad = (name: string) => Buffer.from(`oidc_keys:${name}`, 'utf8');

/** Encrypts `value` (any JSON) for the row `name`. */
export function sealKey(key: Buffer, name: string, value: unknown): KeyEnvelope {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad(name));
  const ct = Buffer.concat([c.update(JSON.stringify(value), 'utf8'), c.final()]);
  return { enc: 'A256GCM', kid: kekId(key), iv: iv.toString('base64url'), tag: c.getAuthTag().toString('base64url'), ct: ct.toString('base64url') };
}

/** Decrypts the envelope of row `name`; throws KeyEnvelopeError naming what is wrong (another key, an unknown scheme, altered data). */
export function openKey(key: Buffer, name: string, env: unknown): unknown {
  if (!isEnvelope(env)) throw new KeyEnvelopeError(`key material ${name} is not an envelope`);
  const e = env as Partial<KeyEnvelope> & { enc: string };
  if (e.enc !== 'A256GCM') throw new KeyEnvelopeError(`key material ${name} is encrypted with ${JSON.stringify(e.enc)}, which this version does not know`);
  if (e.kid !== kekId(key)) {
    throw new KeyEnvelopeError(
      `KEY_ENCRYPTION_KEY is not the key the stored OpenID Provider keys were encrypted with (key ${String(e.kid)}; the one given is ${kekId(key)}): set the KEY_ENCRYPTION_KEY the other instances use`,
    );
  }
  try {
    const d = createDecipheriv('aes-256-gcm', key, Buffer.from(String(e.iv), 'base64url'));
    d.setAAD(aad(name));
    d.setAuthTag(Buffer.from(String(e.tag), 'base64url'));
    const plain = Buffer.concat([d.update(Buffer.from(String(e.ct), 'base64url')), d.final()]);
    return JSON.parse(plain.toString('utf8')) as unknown;
  } catch (err) {
    throw new KeyEnvelopeError(`key material ${name} does not decrypt with KEY_ENCRYPTION_KEY ${kekId(key)}: altered, or moved from another row`, { cause: err });
  }
}

/** How key material is written and read: sealed with a key-encryption key, or (none configured) as plain JSON. */
export interface KeyCodec {
  /** Whether values are sealed (a plain row found is then sealed at start). */
  readonly sealing: boolean;
  seal(name: string, value: unknown): unknown;
  /** The value of a stored row, sealed or plain. */
  open(name: string, stored: unknown): unknown;
  isSealed(stored: unknown): boolean;
}

export function sealingCodec(key: Buffer): KeyCodec {
  if (key.length !== KEK_BYTES) throw new KeyEnvelopeError(`a key-encryption key has ${KEK_BYTES} bytes, not ${key.length}`);
  return {
    sealing: true,
    seal: (name, value) => sealKey(key, name, value),
    open: (name, stored) => (isEnvelope(stored) ? openKey(key, name, stored) : stored),
    isSealed: isEnvelope,
  };
}

/** No key-encryption key: plain JSON, as before; a sealed row cannot be read and says why. */
export const plainCodec: KeyCodec = {
  sealing: false,
  seal: (_name, value) => value,
  open(name, stored) {
    if (isEnvelope(stored)) throw new KeyEnvelopeError(`the stored OpenID Provider key ${name} is encrypted, and KEY_ENCRYPTION_KEY is not set: set the one the other instances use`);
    return stored;
  },
  isSealed: isEnvelope,
};
