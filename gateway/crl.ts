// Certificate revocation list of vehicle client certificates, re-read when its file
// changes: a revoked certificate stops authenticating without a restart.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';

/**
 * Checks `file` every intervalMs; when its content changed, hands the new list to apply
 * (which installs it for new TLS handshakes). A file that cannot be read or is refused
 * leaves the previous list in force. Returns the stop function.
 */
export function watchCrl(
  file: string,
  intervalMs: number,
  deps: { apply: (crl: Buffer) => void; log: { info(o: object, m: string): void; warn(o: object, m: string): void } },
): () => void {
  let lastHash = '';
  const check = (initial: boolean) => {
    try {
      // Read and compared whole (a CRL is small): an mtime alone misses a rewrite within its granularity.
      const crl = readFileSync(file);
      const h = createHash('sha256').update(crl).digest('hex');
      if (h === lastHash) return;
      if (!initial) deps.apply(crl);
      lastHash = h;
      if (!initial) deps.log.info({ event: 'crl_reloaded', file }, 'client certificate revocation list reloaded');
    } catch (err) {
      deps.log.warn({ event: 'crl_reload_failed', file, err: (err as Error).message }, 'revocation list not reloaded; the previous one stays in force');
    }
  };
  check(true);
  const t = setInterval(() => check(false), intervalMs);
  t.unref();
  return () => clearInterval(t);
}
