// Which key-encryption key seals the embedded OpenID Provider's keys at rest (README "Keys
// at rest and rotation"): KEY_ENCRYPTION_KEY when set; else, with the embedded database, one
// generated once and kept in a file beside its data (DATA_DIR, mode 0600); else (DATABASE_URL
// without the key, outside production) none: the keys stay plain JSON, as before, with a
// warning: a key made per process would differ between the instances of a cluster.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/index.ts';
import { KEK_BYTES, KeyEnvelopeError, parseKeyEncryptionKey, plainCodec, sealingCodec, type KeyCodec } from '../identity/key-envelope.ts';

/** The file of the generated key, in DATA_DIR. */
export const KEK_FILE = 'key-encryption-key';

export interface KeyEncryption {
  readonly codec: KeyCodec;
  /** Where the key came from; `none`: plain JSON. */
  readonly source: 'config' | 'file' | 'none';
  /** The key file (source `file`), and whether this call made it. */
  readonly file?: string;
  readonly created?: boolean;
}

/** Reads (or, the embedded database's first start, makes) the key; throws KeyEnvelopeError for an unusable one. */
export function keyEncryption(config: Pick<Config, 'keyEncryptionKey' | 'databaseUrl' | 'dataDir'>): KeyEncryption {
  if (config.keyEncryptionKey) return { codec: sealingCodec(parseKeyEncryptionKey(config.keyEncryptionKey)), source: 'config' };
  if (config.databaseUrl) return { codec: plainCodec, source: 'none' };
  const dir = path.resolve(config.dataDir);
  const file = path.join(dir, KEK_FILE);
  let created = false;
  mkdirSync(dir, { recursive: true });
  try {
    // wx: of two processes making it at once, one writes, the other reads what it wrote.
    writeFileSync(file, `${randomBytes(KEK_BYTES).toString('base64')}\n`, { flag: 'wx', mode: 0o600 });
    created = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new KeyEnvelopeError(`cannot make the key-encryption key file ${file}: ${(err as Error).message}`, { cause: err });
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new KeyEnvelopeError(`cannot read the key-encryption key file ${file}: ${(err as Error).message}`, { cause: err });
  }
  return { codec: sealingCodec(parseKeyEncryptionKey(text, `the key-encryption key file ${file}`)), source: 'file', file, created };
}
