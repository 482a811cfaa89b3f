// Where a webhook may point (docs/webhooks.md "Safety"): https only (http where configured
// for development), no credentials in the URL, and no address in the loopback, private,
// shared, link-local (the cloud metadata services), multicast or reserved ranges unless
// WEBHOOK_ALLOW_PRIVATE names it. A name is resolved once per check and the delivery
// connects to the address checked (a pinned `lookup`), so a name that resolves elsewhere
// the second time (DNS rebinding) cannot reach an address that was never checked.
import { BlockList, isIP } from 'node:net';
import { lookup as dnsLookup } from 'node:dns/promises';

/** Ranges refused (IANA special-purpose registries, RFC 6890 and successors). */
const REFUSED_V4: [string, number][] = [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private (RFC 1918)
  ['100.64.0.0', 10], // shared / carrier NAT (RFC 6598); 100.100.100.200 is a metadata service
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local; 169.254.169.254 is the cloud metadata service
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];
const REFUSED_V6: [string, number][] = [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  // IPv4-mapped (::ffff:0:0/96) and NAT64 (64:ff9b::/96) addresses are checked as the IPv4
  // address they carry (embeddedV4): a /96 rule here would match every IPv4 address too
  // (node's BlockList compares IPv4 addresses with IPv4-mapped rules).
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local (fd00:ec2::254 is a metadata service)
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
];

export interface UrlPolicy {
  /** http:// allowed too (development only). */
  allowHttp: boolean;
  /** CIDRs allowed although in a refused range (tests: 127.0.0.0/8); "all" in the list allows every address. */
  allowPrivate: readonly string[];
}

export interface CheckedTarget {
  url: URL;
  /** The address to connect to, checked. */
  address: string;
  family: 4 | 6;
}

export type Resolve = (host: string) => Promise<{ address: string; family: number }[]>;

const systemResolve: Resolve = (host) => dnsLookup(host, { all: true, verbatim: true });

/** The address of an IPv4-mapped or NAT64 IPv6 address, else null. */
function embeddedV4(a: string): string | null {
  const m = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (m) return m[1]!;
  const h = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(a);
  if (!h) return null;
  const hi = parseInt(h[1]!, 16);
  const lo = parseInt(h[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

export function createUrlChecker(policy: UrlPolicy, resolve: Resolve = systemResolve) {
  const refused = new BlockList();
  for (const [a, p] of REFUSED_V4) refused.addSubnet(a, p, 'ipv4');
  for (const [a, p] of REFUSED_V6) refused.addSubnet(a, p, 'ipv6');
  const allowed = new BlockList();
  const allowAll = policy.allowPrivate.includes('all');
  for (const cidr of policy.allowPrivate) {
    if (cidr === 'all') continue;
    const [a, p] = cidr.split('/');
    const fam = isIP(a ?? '');
    if (!fam) throw new Error(`WEBHOOK_ALLOW_PRIVATE: ${cidr} is not a CIDR (e.g. 127.0.0.0/8) or "all"`);
    allowed.addSubnet(a!, p === undefined ? (fam === 4 ? 32 : 128) : Number(p), fam === 4 ? 'ipv4' : 'ipv6');
  }

  /** Why `address` may not be connected to, or null. */
  function addressProblem(address: string): string | null {
    const fam = isIP(address);
    if (fam === 0) return `${address} is not an IP address`;
    const v4 = fam === 6 ? embeddedV4(address) : null;
    const [a, t] = v4 ? [v4, 'ipv4' as const] : [address, fam === 4 ? ('ipv4' as const) : ('ipv6' as const)];
    if (!refused.check(a, t)) return null;
    if (allowAll || allowed.check(a, t)) return null;
    return `${address} is in a loopback, private, link-local, metadata or reserved range`;
  }

  /** The URL parsed and its host resolved once and checked: the target to connect to, or why not. */
  async function check(text: string): Promise<{ ok: true; target: CheckedTarget } | { ok: false; problem: string }> {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return { ok: false, problem: 'not an absolute URL' };
    }
    if (url.protocol !== 'https:' && !(policy.allowHttp && url.protocol === 'http:')) {
      return { ok: false, problem: policy.allowHttp ? 'must be an https:// or http:// URL' : 'must be an https:// URL (http:// only with WEBHOOK_ALLOW_HTTP, for development)' };
    }
    if (url.username || url.password) return { ok: false, problem: 'must not carry credentials (user:password@)' };
    if (url.hash) return { ok: false, problem: 'must not have a #fragment' };
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    let addrs: { address: string; family: number }[];
    if (isIP(host)) addrs = [{ address: host, family: isIP(host) }];
    else {
      try {
        addrs = await resolve(host);
      } catch (err) {
        return { ok: false, problem: `its host ${host} does not resolve (${(err as { code?: string }).code ?? 'error'})` };
      }
      if (addrs.length === 0) return { ok: false, problem: `its host ${host} does not resolve` };
    }
    // Every address the name has must be allowed: which one a client would pick is not ours to know.
    for (const a of addrs) {
      const p = addressProblem(a.address);
      if (p) return { ok: false, problem: `its host ${host} resolves to ${p}` };
    }
    const first = addrs[0]!;
    return { ok: true, target: { url, address: first.address, family: first.family === 6 ? 6 : 4 } };
  }

  return { check, addressProblem };
}

export type UrlChecker = ReturnType<typeof createUrlChecker>;
