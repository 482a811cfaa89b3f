// Identity from a client certificate: the VIN a verified TLS client certificate names.
import type tls from 'node:tls';
import { isValidVin } from './vin.ts';

/**
 * The VIN a verified client certificate names: its subject CN, or a DNS/URI subject
 * alternative name that is a VIN. undefined when no verified certificate; null when
 * verified but naming no VIN.
 */
export function certVinOf(socket: tls.TLSSocket): string | null | undefined {
  if (!socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  const cn = cert.subject?.CN;
  const cns = Array.isArray(cn) ? cn : cn ? [cn] : [];
  const sans = (cert.subjectaltname ?? '').split(',').map((x) => x.trim().replace(/^(DNS|URI):/, ''));
  return [...cns, ...sans].find((n) => isValidVin(n)) ?? null;
}
