// gateway/proxy-protocol.ts: the PROXY header parser (v1 text, v2 binary), byte by byte.
import { describe, expect, it } from 'vitest';
import { parseProxyHeader } from '../../gateway/proxy-protocol.ts';

const SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
function v2(cmd: number, famProto: number, addr: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h[0] = 0x20 | cmd;
  h[1] = famProto;
  h.writeUInt16BE(addr.length, 2);
  return Buffer.concat([SIG, h, addr]);
}
const ipv4Block = Buffer.from([192, 0, 2, 7, 10, 0, 0, 1, 0xc3, 0x50, 0x07, 0x5b]); // 192.0.2.7:50000 → 10.0.0.1:1883
const ipv6Block = Buffer.concat([
  Buffer.from('20010db8000000000000000000000042', 'hex'),
  Buffer.from('20010db8000000000000000000000001', 'hex'),
  Buffer.from([0x12, 0x34, 0x07, 0x5b]),
]);

describe('parseProxyHeader', () => {
  it.each([
    ['v1 TCP4', Buffer.from('PROXY TCP4 192.0.2.7 10.0.0.1 50000 1883\r\n'), { address: '192.0.2.7', port: 50000 }],
    ['v1 TCP6', Buffer.from('PROXY TCP6 2001:db8::42 2001:db8::1 4660 1883\r\n'), { address: '2001:db8::42', port: 4660 }],
    ['v1 UNKNOWN', Buffer.from('PROXY UNKNOWN\r\n'), null],
    ['v2 PROXY TCP over IPv4', v2(1, 0x11, ipv4Block), { address: '192.0.2.7', port: 50000 }],
    ['v2 PROXY TCP over IPv6', v2(1, 0x21, ipv6Block), { address: '2001:db8::42', port: 4660 }],
    ['v2 LOCAL (health check)', v2(0, 0x00, Buffer.alloc(0)), null],
    ['v2 with TLVs after the addresses', v2(1, 0x11, Buffer.concat([ipv4Block, Buffer.from([0x04, 0x00, 0x02, 0xab, 0xcd])])), { address: '192.0.2.7', port: 50000 }],
  ])('%s: done, with the client address, the header length exact', (_name, header, source) => {
    const after = Buffer.from([0x10, 0x0c]); // first bytes of an MQTT CONNECT
    const r = parseProxyHeader(Buffer.concat([header, after]));
    expect(r).toEqual({ state: 'done', length: header.length, source });
  });

  it('asks for more at every cut of a header, v1 and v2', () => {
    for (const h of [Buffer.from('PROXY TCP4 192.0.2.7 10.0.0.1 50000 1883\r\n'), v2(1, 0x11, ipv4Block)]) {
      for (let n = 0; n < h.length; n++) expect(parseProxyHeader(h.subarray(0, n)).state, `${n} bytes`).toBe('more');
    }
  });

  it.each([
    ['an MQTT CONNECT without header', Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54])],
    ['a TLS ClientHello without header', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5])],
    ['v1 with a bad family', Buffer.from('PROXY UDP4 192.0.2.7 10.0.0.1 50000 1883\r\n')],
    ['v1 with a bad address', Buffer.from('PROXY TCP4 192.0.2 10.0.0.1 50000 1883\r\n')],
    ['v1 with a bad port', Buffer.from('PROXY TCP4 192.0.2.7 10.0.0.1 70000 1883\r\n')],
    ['v1 without CRLF past 107 bytes', Buffer.from('PROXY TCP4 ' + '1'.repeat(120))],
    ['v2 with a bad signature', Buffer.concat([Buffer.from([0x0d, 0x0a, 0x0d, 0x0b]), Buffer.alloc(20)])],
    ['v2 version 3', Buffer.concat([SIG, Buffer.from([0x31, 0x11, 0x00, 0x0c]), ipv4Block])],
    ['v2 IPv4 block too short', v2(1, 0x11, Buffer.alloc(8))],
    ['v2 longer than the bound', Buffer.concat([SIG, Buffer.from([0x21, 0x11, 0xff, 0xff])])],
  ])('refuses %s', (_name, bytes) => {
    expect(parseProxyHeader(bytes).state).toBe('invalid');
  });
});
