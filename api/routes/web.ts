// Serves the portal (web/) and the few browser modules it uses, straight from
// node_modules: no build step, no CDN. Files are read once when the plugin is
// registered (never at import time) and answered from memory with an ETag; only the
// files listed here or found under web/ are served, so no path reaches the disk.
// The page asks for them under a version (a hash of all of them: /web/<version>/app.js),
// cached for good by the browser: a returning visitor's page loads no module again, and
// a new version is a new URL. Each is compressed once (gzip, brotli), not per request.
import { createHash } from 'node:crypto';
import { brotliCompress, constants as zlibConstants, gzip } from 'node:zlib';
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
  /** The body compressed, once ready (filled in the background after registration). */
  br?: Buffer;
  gzip?: Buffer;
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

/** Compressed once, off the event loop; until then (and on failure) the compress plugin does it per request. */
function precompress(a: Asset): void {
  if (a.body.length < 1024 || !/^(text\/|application\/json)/.test(a.type)) return;
  brotliCompress(a.body, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 5, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: a.body.length } }, (err, out) => {
    if (!err && out.length < a.body.length) a.br = out;
  });
  gzip(a.body, { level: 9 }, (err, out) => {
    if (!err && out.length < a.body.length) a.gzip = out;
  });
}

/** The encoding to answer with: brotli, else gzip, when the client takes it (q=0 refuses). */
function pickEncoding(accept: string | undefined, a: Asset): 'br' | 'gzip' | null {
  if (!accept || (!a.br && !a.gzip)) return null;
  const ok = new Set<string>();
  for (const part of accept.toLowerCase().split(',')) {
    const [name, ...params] = part.trim().split(';');
    if (params.some((p) => /^\s*q\s*=\s*0(\.0*)?\s*$/.test(p))) continue;
    if (name) ok.add(name.trim());
  }
  if (a.br && ok.has('br')) return 'br';
  if (a.gzip && (ok.has('gzip') || ok.has('*'))) return 'gzip';
  return null;
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
    // The type checker's settings (tsconfig.json, *.d.ts) are for the build, not the browser.
    if (type && rel !== 'index.html' && rel !== 'tsconfig.json') files.set(rel, asset(readFileSync(path.join(dir, rel)), type));
  }
  const vendor = new Map<string, Asset>();
  for (const [name, spec] of Object.entries(VENDOR)) {
    vendor.set(name, asset(readFileSync(fileURLToPath(import.meta.resolve(spec))), TYPES[path.extname(name)]!));
  }
  // One version for all files: modules import each other by relative URL, so they share a folder.
  const versionHash = createHash('sha256');
  for (const [name, a] of [...files, ...vendor].sort(([x], [y]) => (x < y ? -1 : 1))) versionHash.update(name).update('\0').update(a.etag);
  const version = versionHash.digest('hex').slice(0, 12);
  for (const a of [...files.values(), ...vendor.values()]) precompress(a);
  const configJson = JSON.stringify({ oidc: { issuer: opts.oidc?.issuer ?? null, clientId: opts.oidc?.clientId ?? 'cardata-portal', scope: opts.oidc?.scope ?? 'openid cardata' } });
  // The settings travel inside the page (a JSON data block, never executed): one round
  // trip less before the first render. `<` is escaped so the JSON cannot end the element.
  // early.js runs inline: the overview's API reads start while the page is parsed, before
  // the browser asks for any module (web/early.js says why).
  const early = files.get('early.js')?.body.toString('utf8');
  if (early !== undefined && /<\/script|<!--/i.test(early)) throw new Error('web/early.js cannot be put into the page: it contains "</script" or "<!--"');
  const html = readFileSync(path.join(dir, 'index.html'), 'utf8')
    .replace('<script type="application/json" id="portal-config">{}</script>', `<script type="application/json" id="portal-config">${configJson.replace(/</g, '\\u003c')}</script>`)
    .replace('<script src="/web/early.js"></script>', () => (early === undefined ? '<script src="/web/early.js"></script>' : `<script>${early}</script>`))
    // Every file the page names (links, scripts, the import map) under this version.
    .replace(/"\/(web|vendor)\/(?=[^"/]+")/g, `"/$1/${version}/`);
  // The inline import map and early.js are the page's only inline scripts: allowed by their hashes, nothing else.
  const inline = [...html.matchAll(/<script(?: type="importmap")?>([\s\S]*?)<\/script>/g)].map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`);
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
    if (a.br || a.gzip) void reply.header('vary', 'accept-encoding');
    if (req.headers['if-none-match'] === a.etag) return reply.status(304).send();
    const enc = pickEncoding(req.headers['accept-encoding'], a);
    if (enc) return reply.type(a.type).header('content-encoding', enc).send(enc === 'br' ? a.br : a.gzip);
    return reply.type(a.type).send(a.body);
  };
  /** For a versioned URL: the current version's files never change. */
  const IMMUTABLE = 'public, max-age=31536000, immutable';
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
  // The versioned URLs the page uses; another version (a page from before a restart with
  // changed files) is not found, so no stale file is ever cached under a new name.
  app.get<{ Params: { v: string; '*': string } }>(`/web/${version}/*`, route, async (req, reply) => {
    const a = files.get(req.params['*']);
    if (!a) return reply.callNotFound();
    return send(req, reply, a, IMMUTABLE);
  });
  app.get<{ Params: { name: string } }>(`/vendor/${version}/:name`, route, async (req, reply) => {
    const a = vendor.get(req.params.name);
    if (!a) return reply.callNotFound();
    return send(req, reply, a, IMMUTABLE);
  });
};
