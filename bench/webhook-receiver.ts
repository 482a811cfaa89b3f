// Webhook receiver for the benchmark (its own process, bench/parts/webhooks.ts): one HTTP
// server taking every endpoint's deliveries (path /hook/<vehicle index>), verifying every
// signature with the standardwebhooks library, deduplicating by webhook-id, and keeping per
// vehicle the arrival time of each record (by seq) and whether the records of one grant
// arrive in order. Driven over IPC:
//   listen     start answering on a port with a secret
//   down       stop answering: close the server and every open connection
//   record     keep arrival times from now on (or stop)
//   latencies  given the load generator's ack log, PUBACK → receipt per message
//   stats      deliveries, records, signature failures, duplicates, order breaks (a delivery
//              whose cursor is not after the grant's previous one), per vehicle counts
import http from 'node:http';
import type { Socket } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { serveRpc } from './lib.ts';

let server: http.Server | null = null;
const sockets = new Set<Socket>();
let verifier: Webhook | null = null;
const seen = new Set<string>();
/** Per vehicle index: records received (unique deliveries), the last delivery's position (its cursor), seq → arrival ms. */
const perVin = new Map<number, { records: number; lastTx: number; lastOrd: number; at: Map<number, number> | null }>();
let keep = false;
const stats = { deliveries: 0, duplicates: 0, badSignatures: 0, records: 0, outOfOrder: 0, events: 0 };

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const now = performance.timeOrigin + performance.now();
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: { type: string; records?: { seq: number }[]; cursor?: string };
    try {
      body = verifier!.verify(raw, req.headers as Record<string, string>) as typeof body;
    } catch {
      stats.badSignatures++;
      res.writeHead(400).end();
      return;
    }
    const id = String(req.headers['webhook-id']);
    if (seen.has(id)) {
      stats.duplicates++;
      res.writeHead(204).end();
      return;
    }
    seen.add(id);
    stats.deliveries++;
    if (body.type !== 'records' || !body.records) {
      stats.events++;
      res.writeHead(204).end();
      return;
    }
    const i = Number((req.url ?? '').split('/').pop());
    let v = perVin.get(i);
    if (!v) perVin.set(i, (v = { records: 0, lastTx: -1, lastOrd: -1, at: null }));
    // One grant per vehicle: each new delivery's last record lies after the previous one's in
    // commit order (the cursor: 1.<tx>.<ord>.<tag>, base 36). Seqs need not rise: a vehicle's
    // messages in flight together may commit in another order.
    const [, txs, ords] = (body.cursor ?? '').split('.');
    const tx = parseInt(txs ?? '', 36);
    const ord = parseInt(ords ?? '', 36);
    if (!(tx > v.lastTx || (tx === v.lastTx && ord > v.lastOrd))) stats.outOfOrder++;
    v.lastTx = tx;
    v.lastOrd = ord;
    for (const r of body.records) {
      v.records++;
      stats.records++;
      if (keep) (v.at ??= new Map()).set(r.seq, now);
    }
    res.writeHead(204).end();
  });
}

serveRpc({
  async listen(a: { port: number; secret: string }) {
    verifier = new Webhook(a.secret);
    const s = http.createServer({ keepAlive: true }, handle);
    s.on('connection', (c: Socket) => {
      sockets.add(c);
      c.once('close', () => sockets.delete(c));
    });
    await new Promise<void>((r) => s.listen(a.port, '127.0.0.1', r));
    server = s;
    return { listening: a.port };
  },
  async down() {
    const s = server;
    server = null;
    if (!s) return { down: true };
    const closed = new Promise<void>((r) => s.close(() => r()));
    for (const c of sockets) c.destroy();
    await closed;
    return { down: true };
  },
  record(a: { on: boolean }) {
    keep = a.on;
    for (const v of perVin.values()) v.at = null;
    return { on: keep };
  },
  latencies(a: { ackLog: number[]; recordsPerMsg: number }) {
    const lat: number[] = [];
    let missing = 0;
    for (let j = 0; j + 2 < a.ackLog.length; j += 3) {
      const i = a.ackLog[j]!;
      const seq0 = a.ackLog[j + 1]!;
      const ack = a.ackLog[j + 2]!;
      // The message's last record: its receipt completes the message.
      const at = perVin.get(i)?.at?.get(seq0 + a.recordsPerMsg - 1);
      if (at === undefined) missing++;
      else lat.push(at - ack);
    }
    lat.sort((x, y) => x - y);
    const pct = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.max(0, Math.ceil((p / 100) * lat.length) - 1))]! : NaN);
    return { samples: lat.length, missing, p50: pct(50), p90: pct(90), p99: pct(99), max: lat.length ? lat[lat.length - 1]! : NaN };
  },
  stats() {
    const counts: Record<number, number> = {};
    for (const [i, v] of perVin) counts[i] = v.records;
    return { ...stats, counts };
  },
  close() {
    server?.close();
    for (const c of sockets) c.destroy();
    return { closed: true };
  },
});
process.send?.({ type: 'ready' });
