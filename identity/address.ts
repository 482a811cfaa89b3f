// The key a client address is counted under, by the MQTT admission and failed-login limits
// and by the sign-in throttle alike. Pure.
import net from 'node:net';

/**
 * The key an address is counted under: IPv4 as is (IPv4-mapped IPv6 as IPv4), IPv6 by
 * its /64, the smallest prefix a provider assigns to one subscriber (RFC 6177): one
 * host can take any address inside its /64.
 */
export function addressGroup(addr: string | undefined): string {
  if (!addr) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  if (mapped) return mapped[1]!;
  if (!net.isIPv6(addr)) return addr;
  const noZone = addr.split('%')[0]!;
  const [head, tail] = noZone.includes('::') ? noZone.split('::') : [noZone, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  // An embedded IPv4 tail (…:1.2.3.4) counts as two groups; it is past the /64 anyway.
  const tailGroups = t.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0);
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - tailGroups)).fill('0'), ...t];
  return `${groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(':')}::/64`;
}
