// The portal's Server-Sent Events parser (web/sse.js parseEvents, a browser module
// without I/O): the stream's own framing, split anywhere across network chunks.
import { describe, expect, it } from 'vitest';

type Ev = { id: string | null; event: string; data: string };
interface Sse {
  parseEvents(buf: string, onEvent: (ev: Ev) => void): string;
}
const load = async (): Promise<Sse> => (await import(new URL('../../web/sse.js', import.meta.url).href)) as Sse;

const STREAM =
  ': keep-alive\n\n' +
  'id: c1\nevent: record\ndata: {"vin":"A","seq":1}\n\n' +
  ': keep-alive\n\n' +
  'id: c2\r\nevent: record\r\ndata: {"vin":"A",\r\ndata: "seq":2}\r\n\r\n' +
  'id: c3\nevent: end\ndata: {"reason":"slow_consumer"}\n\n' +
  'data:no space\n\n' +
  'id: c4\n\n';

const WANT: Ev[] = [
  { id: 'c1', event: 'record', data: '{"vin":"A","seq":1}' },
  { id: 'c2', event: 'record', data: '{"vin":"A",\n"seq":2}' },
  { id: 'c3', event: 'end', data: '{"reason":"slow_consumer"}' },
  { id: null, event: 'message', data: 'no space' },
  // An id alone moves the cursor (WHATWG HTML §9.2.6) and is reported.
  { id: 'c4', event: 'message', data: '' },
];

describe('portal SSE parser', () => {
  it('reads records, end events, comments, CRLF and multi-line data', async () => {
    const { parseEvents } = await load();
    const got: Ev[] = [];
    expect(parseEvents(STREAM, (e) => got.push(e))).toBe('');
    expect(got).toEqual(WANT);
  });

  it('gives the same events however the bytes are split into chunks', async () => {
    const { parseEvents } = await load();
    for (const size of [1, 2, 3, 7, 16, 64]) {
      const got: Ev[] = [];
      let buf = '';
      for (let i = 0; i < STREAM.length; i += size) buf = parseEvents(buf + STREAM.slice(i, i + size), (e) => got.push(e));
      expect([size, buf, got]).toEqual([size, '', WANT]);
    }
  });

  it('keeps an unfinished event for the next chunk', async () => {
    const { parseEvents } = await load();
    const got: Ev[] = [];
    expect(parseEvents('id: c9\nevent: record\ndata: {"seq"', (e) => got.push(e))).toBe('id: c9\nevent: record\ndata: {"seq"');
    expect(got).toEqual([]);
  });
});
