// The embedded OpenID Provider under /oidc: its own endpoints (discovery, JWKS, authorize,
// token, revocation, end session) are handed to it untouched, and the sign-in pages it
// sends a browser to (the "interaction") are served here.
import type http from 'node:http';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError } from '../errors.ts';

/** What this plugin needs of the embedded provider (identity/provider.ts). */
export interface SignInProvider {
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
  interaction(req: http.IncomingMessage, res: http.ServerResponse, uid: string): Promise<{ uid: string; prompt: string } | null>;
  login(req: http.IncomingMessage, res: http.ServerResponse, username: string, password: string): Promise<string | null>;
  consent(req: http.IncomingMessage, res: http.ServerResponse): Promise<string>;
  abort(req: http.IncomingMessage, res: http.ServerResponse): Promise<string>;
}

export interface OidcRouteDeps {
  /** The provider, once started (it needs the listening address for its issuer); null before. */
  provider(): SignInProvider | null;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(reply: FastifyReply, status: number, title: string, body: string): FastifyReply {
  return reply
    .status(status)
    .type('text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
    .header('x-frame-options', 'DENY')
    .send(
      `<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${esc(title)}</title>` +
        `<style>body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}label{display:block;margin:.75rem 0 .25rem}input{width:100%;padding:.5rem;box-sizing:border-box}button{margin-top:1rem;padding:.5rem 1rem}.err{color:#a00}</style>` +
        `<main><h1>${esc(title)}</h1>${body}</main></html>`,
    );
}

function loginForm(uid: string, error?: string): string {
  const u = encodeURIComponent(uid);
  return (
    (error ? `<p class="err" role="alert">${esc(error)}</p>` : '') +
    `<form method="post" action="/oidc/interaction/${u}/login">` +
    `<label for="username">Username</label><input id="username" name="username" autocomplete="username" required autofocus>` +
    `<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>` +
    `<button type="submit">Sign in</button></form>` +
    `<form method="post" action="/oidc/interaction/${u}/abort"><button type="submit">Cancel</button></form>`
  );
}

const Uid = z.object({ uid: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'not a sign-in session id') }).strict();

export const oidcRoutes: FastifyPluginAsync<OidcRouteDeps> = async (app0, deps) => {
  const app = app0.withTypeProvider<ZodTypeProvider>();
  const provider = (): SignInProvider => {
    const p = deps.provider();
    if (!p) throw new ApiError(503, 'API_ERR_NOT_READY', 'the sign-in service is starting');
    return p;
  };

  // The provider's own endpoints read their bodies themselves: fastify must leave them unread.
  await app.register(async (raw) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));
    const handler = async (req: { raw: http.IncomingMessage }, reply: FastifyReply) => {
      const p = provider();
      reply.hijack();
      p.handle(req.raw, reply.raw);
    };
    raw.all('/oidc', { schema: { hide: true } }, handler);
    raw.all('/oidc/*', { schema: { hide: true } }, handler);
  });

  // The sign-in pages: an HTML form posts username and password.
  await app.register(async (pages0) => {
    const pages = pages0.withTypeProvider<ZodTypeProvider>();
    pages.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 8192 }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    const expired = (reply: FastifyReply) => page(reply, 400, 'Sign-in expired', '<p>This sign-in has expired or belongs to another browser. Go back to the application and start again.</p>');

    pages.get('/oidc/interaction/:uid', { schema: { hide: true, params: Uid } }, async (req, reply) => {
      const p = provider();
      const view = await p.interaction(req.raw, reply.raw, req.params.uid);
      if (!view) return expired(reply);
      if (view.prompt === 'login') return page(reply, 200, 'Sign in to cardata', loginForm(view.uid));
      // The only client is the gateway's own portal (first party): what it asks for is
      // what the person signed in for, so consent is recorded without a second page.
      return reply.redirect(await p.consent(req.raw, reply.raw), 303);
    });

    pages.post(
      '/oidc/interaction/:uid/login',
      { schema: { hide: true, params: Uid, body: z.object({ username: z.string().min(1).max(128), password: z.string().min(1).max(1024) }).strict() } },
      async (req, reply) => {
        const p = provider();
        const view = await p.interaction(req.raw, reply.raw, req.params.uid);
        if (!view || view.prompt !== 'login') return expired(reply);
        const next = await p.login(req.raw, reply.raw, req.body.username, req.body.password);
        if (next === null) {
          req.log.info({ event: 'sign_in_failed' }, 'sign-in refused: unknown username or wrong password');
          return page(reply, 401, 'Sign in to cardata', loginForm(view.uid, 'Unknown username or wrong password.'));
        }
        req.log.info({ event: 'sign_in' }, 'signed in');
        return reply.redirect(next, 303);
      },
    );

    pages.post('/oidc/interaction/:uid/abort', { schema: { hide: true, params: Uid } }, async (req, reply) => {
      const p = provider();
      const view = await p.interaction(req.raw, reply.raw, req.params.uid);
      if (!view) return expired(reply);
      return reply.redirect(await p.abort(req.raw, reply.raw), 303);
    });
  });
};
