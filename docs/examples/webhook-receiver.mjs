// A complete receiver of cardata-gateway webhooks (README "For recipients"): verifies each
// delivery's signature with the Standard Webhooks library, answers 2xx quickly, and
// handles each webhook-id once (a redelivery after a lost answer carries the same id).
//
//   npm install standardwebhooks
//   WEBHOOK_SECRET=whsec_... PORT=8443 node webhook-receiver.mjs
//
// Each new delivery is printed as one JSON line ({"id", "body"}) on stdout, or appended to
// the file OUT names; put your own handling in handle(). Behind TLS termination in production: the gateway only sends to
// https:// endpoints.
import { appendFileSync } from 'node:fs';
import http from 'node:http';
import { Webhook } from 'standardwebhooks';

const secret = process.env.WEBHOOK_SECRET;
if (!secret) throw new Error('set WEBHOOK_SECRET to the secret POST /v1/webhooks answered (whsec_...)');
const wh = new Webhook(secret);
const port = Number(process.env.PORT ?? 8443);
const host = process.env.HOST ?? '127.0.0.1';

// Ids already handled. In production keep them where your data goes, in the same
// transaction (e.g. a unique column), and forget them after a few days.
const seen = new Set();

/** Your handling of one delivery: records of a grant, or a grant's event. */
function handle(id, body) {
  const line = JSON.stringify({ id, body }) + '\n';
  if (process.env.OUT) appendFileSync(process.env.OUT, line);
  else process.stdout.write(line);
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST') {
    res.writeHead(405).end();
    return;
  }
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > 5 * 1024 * 1024) req.destroy(); // a delivery holds at most 100 records
    else chunks.push(c);
  });
  req.on('end', () => {
    const raw = Buffer.concat(chunks).toString('utf8');
    let body;
    try {
      // Throws unless the signature is valid for this raw body and the timestamp is recent (5 minutes).
      body = wh.verify(raw, {
        'webhook-id': req.headers['webhook-id'],
        'webhook-timestamp': req.headers['webhook-timestamp'],
        'webhook-signature': req.headers['webhook-signature'],
      });
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('bad signature');
      return;
    }
    const id = req.headers['webhook-id'];
    if (!seen.has(id)) {
      seen.add(id);
      handle(id, body);
    }
    // 2xx also for a duplicate: it was handled, the gateway may move on.
    res.writeHead(204).end();
  });
});
server.listen(port, host, () => process.stderr.write(`receiver listening on http://${host}:${port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
