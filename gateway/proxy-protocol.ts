// The PROXY protocol (HAProxy's "proxy-protocol.txt", versions 1 and 2): a load balancer
// in TCP mode sends one header with the client's address before the first byte of the
// client's own stream. Behind a balancer every connection comes from the balancer's
// address, so without it the failed-authentication limiter (keyed by source address)
// would count every vehicle as one client. With TLS passed through, the header comes
// before the TLS handshake, so the TLS stream itself is untouched.
import type net from 'node:net';

/** The 12-byte signature that starts a version 2 header (proxy-protocol.txt 2.2). */
const V2_SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** A version 1 header is at most 107 bytes, CRLF included (proxy-protocol.txt 2.1). */
const V1_MAX = 107;
/** Our own bound on a version 2 header (addresses + TLVs); HAProxy sends far less. */
const V2_MAX = 16 + 536;

export interface ProxySource {
  address: string;
  port: number;
}

export type ProxyParse =
  | { state: 'more' }
  | { state: 'done'; length: number; /** null: LOCAL / UNKNOWN (the balancer's own connection, e.g. a health check). */ source: ProxySource | null }
  | { state: 'invalid'; reason: string };

/** Parses a PROXY header at the start of `buf` (v1 or v2). Pure: no I/O. */
export function parseProxyHeader(buf: Buffer): ProxyParse {
  if (buf.length === 0) return { state: 'more' };
  // Version 2: binary, told apart by its first byte (0x0D) from v1 ("P").
  if (buf[0] === 0x0d) {
    const n = Math.min(buf.length, V2_SIG.length);
    if (!buf.subarray(0, n).equals(V2_SIG.subarray(0, n))) return { state: 'invalid', reason: 'bad v2 signature' };
    if (buf.length < 16) return { state: 'more' };
    const verCmd = buf[12]!;
    if (verCmd >> 4 !== 2) return { state: 'invalid', reason: 'unsupported v2 version' };
    const cmd = verCmd & 0x0f;
    if (cmd > 1) return { state: 'invalid', reason: 'unknown v2 command' };
    const famProto = buf[13]!;
    const len = buf.readUInt16BE(14);
    if (16 + len > V2_MAX) return { state: 'invalid', reason: 'v2 header too long' };
    if (buf.length < 16 + len) return { state: 'more' };
    const total = 16 + len;
    if (cmd === 0) return { state: 'done', length: total, source: null }; // LOCAL
    const fam = famProto >> 4;
    const proto = famProto & 0x0f;
    if (proto !== 1) return { state: 'done', length: total, source: null }; // not TCP over IP: address unknown
    if (fam === 1) {
      if (len < 12) return { state: 'invalid', reason: 'v2 IPv4 block too short' };
      return { state: 'done', length: total, source: { address: [...buf.subarray(16, 20)].join('.'), port: buf.readUInt16BE(24) } };
    }
    if (fam === 2) {
      if (len < 36) return { state: 'invalid', reason: 'v2 IPv6 block too short' };
      const groups: string[] = [];
      for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(16 + 2 * i).toString(16));
      return { state: 'done', length: total, source: { address: compressIpv6(groups), port: buf.readUInt16BE(48) } };
    }
    return { state: 'done', length: total, source: null }; // UNSPEC / UNIX
  }
  // Version 1: "PROXY TCP4 <src> <dst> <sport> <dport>\r\n" or "PROXY UNKNOWN…\r\n".
  const prefix = 'PROXY ';
  const n = Math.min(buf.length, prefix.length);
  if (buf.toString('latin1', 0, n) !== prefix.slice(0, n)) return { state: 'invalid', reason: 'no PROXY header' };
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end === -1) return buf.length >= V1_MAX ? { state: 'invalid', reason: 'v1 header too long' } : { state: 'more' };
  if (end + 2 > V1_MAX) return { state: 'invalid', reason: 'v1 header too long' };
  const parts = buf.toString('latin1', prefix.length, end).split(' ');
  if (parts[0] === 'UNKNOWN') return { state: 'done', length: end + 2, source: null };
  if ((parts[0] !== 'TCP4' && parts[0] !== 'TCP6') || parts.length !== 5) return { state: 'invalid', reason: 'malformed v1 header' };
  const [, src, , sport] = parts as [string, string, string, string, string];
  const port = Number(sport);
  const ok = parts[0] === 'TCP4' ? /^\d{1,3}(\.\d{1,3}){3}$/.test(src) : /^[0-9a-fA-F:.]+$/.test(src) && src.includes(':');
  if (!ok || !/^\d{1,5}$/.test(sport) || port > 65535) return { state: 'invalid', reason: 'malformed v1 address' };
  return { state: 'done', length: end + 2, source: { address: src, port } };
}

/** RFC 5952 text of eight hex groups (longest run of zero groups as "::"). */
function compressIpv6(groups: string[]): string {
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best === -1) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export class ProxyHeaderError extends Error {
  readonly code = 'GW_ERR_PROXY_HEADER';
}

/**
 * Reads the PROXY header off a fresh socket, then puts back whatever followed it, so the
 * next reader (the MQTT parser or the TLS layer) sees the client's stream from its first
 * byte. Rejects (and the caller closes the socket) on a missing or malformed header or
 * when none arrives within `timeoutMs`.
 */
export function readProxyHeader(socket: net.Socket, timeoutMs: number): Promise<ProxySource | null> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => finish(new ProxyHeaderError(`no PROXY header within ${timeoutMs} ms`)), timeoutMs);
    const finish = (err: Error | null, source?: ProxySource | null, rest?: Buffer) => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('close', onClose);
      socket.off('error', onClose);
      if (err) return reject(err);
      if (rest && rest.length) socket.unshift(rest);
      resolve(source ?? null);
    };
    const onClose = () => finish(new ProxyHeaderError('connection closed before the PROXY header'));
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        const r = parseProxyHeader(buf);
        if (r.state === 'more') continue;
        if (r.state === 'invalid') return finish(new ProxyHeaderError(r.reason));
        return finish(null, r.source, buf.subarray(r.length));
      }
    };
    socket.on('readable', onReadable);
    socket.once('close', onClose);
    socket.once('error', onClose);
  });
}

export interface ProxyListenerOptions {
  /** A connection must deliver its header within this time, ms. */
  timeoutMs: number;
  onError(err: ProxyHeaderError, socket: net.Socket): void;
}

/**
 * A `net.Server` connection listener that first reads the PROXY header, then calls
 * `handler` with the socket and the client's address (null when the header names none,
 * e.g. a LOCAL health check: then the socket's own peer is the one to use).
 */
export function proxyProtocolListener(handler: (socket: net.Socket, source: ProxySource | null) => void, opts: ProxyListenerOptions): (socket: net.Socket) => void {
  return (socket) => {
    readProxyHeader(socket, opts.timeoutMs).then(
      (source) => handler(socket, source),
      (err: ProxyHeaderError) => {
        opts.onError(err, socket);
        socket.destroy();
      },
    );
  };
}

/**
 * For TLS passed through the balancer: a plain TCP listener reads the PROXY header, then
 * hands the socket (TLS bytes untouched) to `tlsServer` as if it had accepted it. The
 * TLS socket's peer is still the balancer's connection: `sourceOf` maps it back to the
 * client's address named in the header.
 */
export function proxiedTlsEntry(tlsServer: net.Server, opts: ProxyListenerOptions): { listener: (socket: net.Socket) => void; sourceOf: (tlsSocket: net.Socket) => ProxySource | null } {
  // "address:port" of the balancer's side of each live connection → the client's address.
  const sources = new Map<string, ProxySource>();
  const key = (s: net.Socket) => `${s.remoteAddress}:${s.remotePort}`;
  return {
    listener: proxyProtocolListener((socket, source) => {
      if (source) {
        const k = key(socket);
        sources.set(k, source);
        socket.once('close', () => sources.delete(k));
      }
      tlsServer.emit('connection', socket);
    }, opts),
    sourceOf: (tlsSocket) => sources.get(key(tlsSocket)) ?? null,
  };
}
