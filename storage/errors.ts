// Error codes of the storage layer. Callers switch on `code`, never on messages.
export type StorageErrorCode =
  | 'STO_ERR_CONFLICT'
  | 'STO_ERR_NOT_FOUND'
  | 'STO_ERR_REJECTED'
  | 'STO_ERR_CLOSED'
  | 'STO_ERR_MIGRATION';

export class StorageError extends Error {
  readonly code: StorageErrorCode;
  constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'StorageError';
  }
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
 */
export function isTransient(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  if (RETRYABLE_CODES.has(code)) return true;
  if (code.startsWith('08') || code.startsWith('53')) return true; // connection exception, insufficient resources
  const msg = typeof e.message === 'string' ? e.message : '';
  return /Connection terminated|connection timeout|Client has encountered a connection error|timeout exceeded when trying to connect|not queryable/i.test(msg);
}
