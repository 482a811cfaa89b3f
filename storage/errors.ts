// Error codes of the storage layer. Driver errors (pg, PGlite) are translated here into
// these codes; callers test them with the guards below, never by matching strings or
// reading `code` off an unknown value.

/** The codes a storage error carries; stable: operators and tests match on them. */
export const STO_ERR = {
  /** The row exists already (a unique key). */
  CONFLICT: 'STO_ERR_CONFLICT',
  /** The row the operation needs does not exist (e.g. an unprovisioned VIN). */
  NOT_FOUND: 'STO_ERR_NOT_FOUND',
  /** The database refuses this data (not an outage): retrying does not help. */
  REJECTED: 'STO_ERR_REJECTED',
  /** The writer is closed: nothing more is written. */
  CLOSED: 'STO_ERR_CLOSED',
  /** A migration changed after it was applied, or failed. */
  MIGRATION: 'STO_ERR_MIGRATION',
  /** The database is not answering right now: retry later. */
  UNAVAILABLE: 'STO_ERR_UNAVAILABLE',
  /** SHARD_URLS does not match the shard map in the control database (a shard removed or reordered). */
  SHARD_MAP: 'STO_ERR_SHARD_MAP',
} as const;

export type StorageErrorCode = (typeof STO_ERR)[keyof typeof STO_ERR];

export class StorageError extends Error {
  readonly code: StorageErrorCode;
  constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'StorageError';
  }
}

/** True when `err` is a storage error (with this code, when given). */
export function isStorageError(err: unknown, code?: StorageErrorCode): err is StorageError {
  return err instanceof StorageError && (code === undefined || err.code === code);
}

/** The SQLSTATE or socket error code of a driver error ('' when there is none). */
function driverCode(err: unknown): string {
  if (typeof err !== 'object' || err === null || !('code' in err)) return '';
  return typeof err.code === 'string' ? err.code : '';
}

function driverMessage(err: unknown): string {
  if (typeof err !== 'object' || err === null || !('message' in err)) return '';
  return typeof err.message === 'string' ? err.message : '';
}

/** True when the driver says a unique constraint refused the row (SQLSTATE 23505). */
export function isUniqueViolation(err: unknown): boolean {
  return driverCode(err) === '23505';
}

const RETRYABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available
  '57014', // query_canceled (statement timeout)
]);

/**
 * True when an error says "the database is not answering right now" rather than
 * "the database refuses this data": the first is retried, the second is not.
 * A StorageError counts by its code (STO_ERR_UNAVAILABLE); a driver error by its
 * SQLSTATE, socket code or message.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof StorageError) return err.code === STO_ERR.UNAVAILABLE;
  const code = driverCode(err);
  if (RETRYABLE_CODES.has(code)) return true;
  if (code.startsWith('08') || code.startsWith('53')) return true; // connection exception, insufficient resources
  // A database that refuses new sessions for now (ALLOW_CONNECTIONS false, e.g. during
  // maintenance of one shard) says so with the generic SQLSTATE 55000: by its message.
  return /Connection terminated|connection timeout|Client has encountered a connection error|timeout exceeded when trying to connect|not queryable|is not currently accepting connections/i.test(driverMessage(err));
}

/** The guards the API's StoreFailures port asks for, over this layer's errors. */
export const storeFailures = {
  isConflict: (err: unknown): boolean => isStorageError(err, STO_ERR.CONFLICT),
  isNotFound: (err: unknown): boolean => isStorageError(err, STO_ERR.NOT_FOUND),
  isUnavailable: isTransient,
} as const;
