// Serves the portal (web/) and the few browser modules it uses, straight from
// node_modules: no build step, no CDN. Files are read once when the plugin is
// registered (never at import time) and answered from memory with an ETag; only the
// files listed here or found under web/ are served, so no path reaches the disk.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';

export interface WebOptions {
  /** The portal's folder. Default: web/ of this repository. */
  dir?: string;
  /**
   * What the portal signs in against: the OpenID Provider's issuer URL (null: the
   * gateway's embedded provider under /oidc of the page's own origin) and the public
   * client id registered there.
   */
  oidc?: { issuer: string | null; clientId: string; scope?: string };
}

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** Browser modules the portal imports by bare name (index.html's import map points here). */
const VENDOR: Record<string, string> = {
  'preact.mjs': 'preact',
  'preact-hooks.mjs': 'preact/hooks',
  'htm.mjs': 'htm',
  'htm-preact.mjs': 'htm/preact',
  'uPlot.esm.js': 'uplot/dist/uPlot.esm.js',
  'uPlot.min.css': 'uplot/dist/uPlot.min.css',
};

function asset(body: Buffer, type: string): Asset {
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

function walk(dir: string, base = dir, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name.startsWith('.')) continue;
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) walk(p, base, out);
    else out.push(path.relative(base, p).split(path.sep).join('/'));
  }
  return out;
}

export const webRoutes: FastifyPluginAsync<WebOptions> = async (app, opts) => {
  const dir = opts.dir ?? fileURLToPath(new URL('../../web/', import.meta.url));
  const files = new Map<string, Asset>();
  for (const rel of walk(dir)) {
    const type = TYPES[path.extname(rel)];
    if (type && rel !== 'index.html') files.set(rel, asset(readFileSync(path.join(dir, rel)), type));
  }
  const vendor = new Map<string, Asset>();
  for (const [name, spec] of Object.entries(VENDOR)) {
    vendor.set(name, asset(readFileSync(fileURLToPath(import.meta.resolve(spec))), TYPES[path.extname(name)]!));
  }
  const configJson = JSON.stringify({ oidc: { issuer: opts.oidc?.issuer ?? null, clientId: opts.oidc?.clientId ?? 'cardata-portal', scope: opts.oidc?.scope ?? 'openid cardata' } });
  // The settings travel inside the page (a JSON data block, never executed): one round
  // trip less before the first render. `<` is escaped so the JSON cannot end the element.
  const html = readFileSync(path.join(dir, 'index.html'), 'utf8').replace(
    '<script type="application/json" id="portal-config">{}</script>',
    `<script type="application/json" id="portal-config">${configJson.replace(/</g, '\\u003c')}</script>`,
  );
  // The inline import map is the page's only inline script: allowed by its hash, nothing else.
  const inline = [...html.matchAll(/<script type="importmap">([\s\S]*?)<\/script>/g)].map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`);
  const index = asset(Buffer.from(html), TYPES['.html']!);
  const csp = [
    "default-src 'self'",
    `script-src 'self' ${inline.join(' ')}`,
    // uPlot sizes its canvas and legend with style attributes.
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    // Sign-in may go to a configured external issuer: its token endpoint is fetched.
    `connect-src 'self'${opts.oidc?.issuer ? ' ' + new URL(opts.oidc.issuer).origin : ''}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
  ].join('; ');
  const config = asset(Buffer.from(configJson), TYPES['.json']!);

  const send = (req: FastifyRequest, reply: FastifyReply, a: Asset, cache: string) => {
    void reply.header('etag', a.etag).header('cache-control', cache).header('x-content-type-options', 'nosniff');
    if (req.headers['if-none-match'] === a.etag) return reply.status(304).send();
    return reply.type(a.type).send(a.body);
  };
  // Static files are not API calls: the per-caller rate limit does not count them.
  const route = { schema: { hide: true }, config: { rateLimit: false as const }, logLevel: 'warn' as const };

  const page = async (req: FastifyRequest, reply: FastifyReply) => {
    void reply.header('content-security-policy', csp).header('referrer-policy', 'no-referrer');
    return send(req, reply, index, 'no-cache');
  };
  app.get('/', route, page);
  // Where the OpenID Provider sends the browser back with the code: the same page.
  app.get('/portal/callback', route, page);
  app.get('/portal/config.json', route, async (req, reply) => send(req, reply, config, 'no-cache'));
  app.get<{ Params: { '*': string } }>('/web/*', route, async (req, reply) => {
    const a = files.get(req.params['*']);
    if (!a) return reply.callNotFound();
    return send(req, reply, a, 'no-cache');
  });
  app.get<{ Params: { name: string } }>('/vendor/:name', route, async (req, reply) => {
    const a = vendor.get(req.params.name);
    if (!a) return reply.callNotFound();
    return send(req, reply, a, 'public, max-age=86400');
  });
};
