// Live-stream consumers for the benchmark (its own process): one SSE connection per
// vehicle to GET /v1/vehicles/{vin}/stream, each event's arrival time kept by (vehicle,
// seq). Driven by the benchmark over IPC:
//   open        open the streams (one token per vehicle) and wait for their 200
//   latencies   given the load generator's ack log, PUBACK → event per message
//   counts      events received so far, streams still open
//   close       end every stream
//
// Each stream is a plain TCP socket that sends the request and scans the bytes that come
// back, as the MQTT load generator does (bench/mqtt-wire.ts): the consumers share the
// machine's 2 cores with the gateway and the database, and node's HTTP client (parser,
// chunk decoding, stream events) cost 3-4 µs per event, which the gateway's ingest then
// lacked. The scan looks only for `"seq":N` (bench/lib.ts seqScanner); the chunked
// encoding's size lines never fall inside an event (the gateway writes whole events), and
// an event missed would show as a message missing in the latency figures.
import net from 'node:net';
import { seqScanner, serveRpc } from './lib.ts';

interface Stream {
  sock: net.Socket;
  events: number;
  ended: boolean;
}

let streams: Stream[] = [];
/** Per vehicle index: seq → arrival wall-clock ms (performance.timeOrigin based, as the load generator's). */
let arrivals: Map<number, number>[] = [];
let keep = false;

function open(a: { port: number; vins: string[]; tokens: string[]; parallel?: number }): Promise<{ opened: number; failed: number; errors: string[]; ms: number }> {
  const t0 = performance.now();
  const errors: string[] = [];
  let opened = 0;
  let failed = 0;
  let next = 0;
  return new Promise((resolve) => {
    const one = (): void => {
      if (next >= a.vins.length) {
        if (opened + failed === a.vins.length) resolve({ opened, failed, errors: errors.slice(0, 5), ms: Math.round(performance.now() - t0) });
        return;
      }
      const i = next++;
      const sock = net.connect({ host: '127.0.0.1', port: a.port });
      const s: Stream = { sock, events: 0, ended: false };
      let head: Buffer | null = Buffer.alloc(0);
      const scan = seqScanner((seq, at) => {
        s.events++;
        if (keep) {
          const m = (arrivals[i] ??= new Map());
          if (!m.has(seq)) m.set(seq, at);
        }
      });
      const fail = (why: string) => {
        if (streams[i] === s || s.ended) return;
        s.ended = true;
        failed++;
        errors.push(why);
        sock.destroy();
        one();
      };
      sock.setNoDelay(true);
      sock.on('connect', () => {
        sock.write(`GET /v1/vehicles/${a.vins[i]}/stream HTTP/1.1\r\nhost: 127.0.0.1:${a.port}\r\nauthorization: Bearer ${a.tokens[i]}\r\naccept: text/event-stream\r\n\r\n`);
      });
      sock.on('data', (b: Buffer) => {
        if (head === null) return scan(b);
        head = Buffer.concat([head, b]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const status = head.toString('latin1', 0, head.indexOf('\r\n'));
        const rest = head.subarray(end + 4);
        head = null;
        if (!/^HTTP\/1\.1 200 /.test(status)) return fail(status);
        streams[i] = s;
        opened++;
        if (rest.length) scan(rest);
        one();
      });
      sock.on('error', (e) => fail(e.message));
      sock.on('close', () => {
        if (streams[i] !== s) fail('closed before the response');
        s.ended = true;
      });
    };
    for (let k = 0; k < (a.parallel ?? 50); k++) one();
  });
}

serveRpc({
  open: (a) => open(a),
  record: (a: { on: boolean }) => {
    keep = a.on;
    arrivals = [];
    return { on: keep };
  },
  latencies(a: { ackLog: number[]; recordsPerMsg: number; waitMs?: number }) {
    const lat: number[] = [];
    let missing = 0;
    for (let j = 0; j + 2 < a.ackLog.length; j += 3) {
      const i = a.ackLog[j]!;
      const seq0 = a.ackLog[j + 1]!;
      const ack = a.ackLog[j + 2]!;
      // The message's last record: the event that completes it.
      const at = arrivals[i]?.get(seq0 + a.recordsPerMsg - 1);
      if (at === undefined) missing++;
      else lat.push(at - ack);
    }
    lat.sort((x, y) => x - y);
    const pct = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.max(0, Math.ceil((p / 100) * lat.length) - 1))]! : NaN);
    return { samples: lat.length, missing, p50: pct(50), p90: pct(90), p99: pct(99), max: lat.length ? lat[lat.length - 1]! : NaN, min: lat.length ? lat[0]! : NaN };
  },
  counts() {
    let events = 0;
    let open = 0;
    for (const s of streams) {
      if (!s) continue;
      events += s.events;
      if (!s.ended) open++;
    }
    return { events, open };
  },
  close() {
    for (const s of streams) s?.sock.destroy();
    streams = [];
    return { closed: true };
  },
});
process.send?.({ type: 'ready' });
