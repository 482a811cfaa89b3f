// The embedded OpenID Provider under /oidc: its own endpoints (discovery, JWKS, authorize,
// token, revocation, end session) are handed to it untouched, and the sign-in pages it
// sends a browser to (the "interaction") are served here.
import type http from 'node:http';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError } from '../errors.ts';
import { escapeHtml as esc, signInLang, signInPageHtml, signInText, SIGN_IN_LANGS, SIGN_IN_TEXTS, type SignInLang } from '../../identity/sign-in-pages.ts';
import { SignInThrottled } from '../../identity/sign-in-throttle.ts';
import { PasswordChecksBusy } from '../../identity/secrets.ts';

/** What this plugin needs of the embedded provider (identity/provider.ts). */
export interface SignInProvider {
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
  interaction(req: http.IncomingMessage, res: http.ServerResponse, uid: string): Promise<{ uid: string; prompt: string; uiLocales?: string | null } | null>;
  /** `source`: the client's address (fastify's req.ip, which honours HTTP_TRUST_PROXY). Throws SignInThrottled or PasswordChecksBusy. */
  login(req: http.IncomingMessage, res: http.ServerResponse, username: string, password: string, source: string | undefined): Promise<string | null>;
  consent(req: http.IncomingMessage, res: http.ServerResponse): Promise<string>;
  abort(req: http.IncomingMessage, res: http.ServerResponse): Promise<string>;
}

export interface OidcRouteDeps {
  /** The provider, once started (it needs the listening address for its issuer); null before. */
  provider(): SignInProvider | null;
}

function page(reply: FastifyReply, status: number, html: string): FastifyReply {
  return reply
    .status(status)
    .type('text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('content-language', /<html lang="(\w+)"/.exec(html)?.[1] ?? 'en')
    .header('vary', 'accept-language')
    .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    .header('x-frame-options', 'DENY')
    .send(html);
}

/**
 * The policy of the provider's own answers under /oidc: no inline script but form_post's
 * auto-submit (the provider appends its hash to script-src), forms only to this origin
 * (the portal's redirect URIs are on it), no frames.
 */
export const PROVIDER_CSP = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const interactionPath = (uid: string) => `/oidc/interaction/${encodeURIComponent(uid)}`;

function loginPage(lang: SignInLang, uid: string, error?: string): string {
  const t = SIGN_IN_TEXTS[lang];
  const base = interactionPath(uid);
  const body =
    (error ? `<p class="err" role="alert">${esc(error)}</p>` : `<p>${esc(t.signInIntro)}</p>`) +
    // The language chosen travels with the form (a hidden field), so an error answer keeps it.
    `<form method="post" action="${base}/login"><input type="hidden" name="lang" value="${lang}">` +
    `<label for="username">${esc(t.username)}</label><input id="username" name="username" autocomplete="username" required autofocus>` +
    `<label for="password">${esc(t.password)}</label><input id="password" name="password" type="password" autocomplete="current-password" required>` +
    `<button type="submit" id="signin-submit">${esc(t.signIn)}</button></form>` +
    `<form method="post" action="${base}/abort"><input type="hidden" name="lang" value="${lang}"><button type="submit" id="signin-cancel">${esc(t.cancel)}</button></form>`;
  return signInPageHtml(lang, t.signInTitle, body, (l) => `${base}?lang=${l}`);
}

/** 429: why (this account from here, or anything from here) and until when, with a way back to the form. */
function throttledPage(lang: SignInLang, uid: string, err: SignInThrottled, now: number): string {
  const until = new Date(err.retryAt).toISOString();
  const vars = { until: `${until.slice(0, 10)} ${until.slice(11, 19)} UTC`, minutes: String(Math.max(1, Math.ceil((err.retryAt - now) / 60_000))) };
  const text = esc(signInText(lang, err.scope === 'account' ? 'throttledAccount' : 'throttledSource', vars)).replace(esc(vars.until), `<time datetime="${until}">${esc(vars.until)}</time>`);
  const back = `<p><a href="${esc(interactionPath(uid))}?lang=${lang}">${esc(SIGN_IN_TEXTS[lang].backToSignIn)}</a></p>`;
  return signInPageHtml(lang, SIGN_IN_TEXTS[lang].throttledTitle, `<p class="err" role="alert">${text}</p>${back}`);
}

const Uid = z.object({ uid: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'not a sign-in session id') }).strict();
/** The page's own language switch; anything else in the query is refused. */
const LangQuery = z.object({ lang: z.enum(SIGN_IN_LANGS).optional() }).strict();

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
      // The provider answers on the raw response (fastify's onSend never sees it): its pages
      // (sign-out, signed out, errors, form_post) get their policy here. It keeps the header
      // and adds the hash of its own inline script where it needs one (form_post).
      reply.raw.setHeader('content-security-policy', PROVIDER_CSP);
      reply.raw.setHeader('x-frame-options', 'DENY');
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
    const expired = (reply: FastifyReply, lang: SignInLang) => page(reply, 400, signInPageHtml(lang, SIGN_IN_TEXTS[lang].expiredTitle, `<p>${esc(SIGN_IN_TEXTS[lang].expiredText)}</p>`));
    const langOf = (choice: unknown, req: { headers: http.IncomingHttpHeaders }, view: { uiLocales?: string | null } | null) =>
      signInLang({ choice, uiLocales: view?.uiLocales, acceptLanguage: req.headers['accept-language'] });

    pages.get('/oidc/interaction/:uid', { schema: { hide: true, params: Uid, querystring: LangQuery } }, async (req, reply) => {
      const p = provider();
      const view = await p.interaction(req.raw, reply.raw, req.params.uid);
      const lang = langOf(req.query.lang, req, view);
      if (!view) return expired(reply, lang);
      if (view.prompt === 'login') return page(reply, 200, loginPage(lang, view.uid));
      // The only client is the gateway's own portal (first party): what it asks for is
      // what the person signed in for, so consent is recorded without a second page.
      return reply.redirect(await p.consent(req.raw, reply.raw), 303);
    });

    pages.post(
      '/oidc/interaction/:uid/login',
      {
        schema: {
          hide: true,
          params: Uid,
          body: z.object({ username: z.string().min(1).max(128), password: z.string().min(1).max(1024), lang: z.enum(SIGN_IN_LANGS).optional() }).strict(),
        },
      },
      async (req, reply) => {
        const p = provider();
        const view = await p.interaction(req.raw, reply.raw, req.params.uid);
        const lang = langOf(req.body.lang, req, view);
        if (!view || view.prompt !== 'login') return expired(reply, lang);
        let next: string | null;
        try {
          next = await p.login(req.raw, reply.raw, req.body.username, req.body.password, req.ip);
        } catch (err) {
          if (err instanceof SignInThrottled) {
            const now = Date.now();
            req.log.warn({ event: 'sign_in_throttled', scope: err.scope, until: new Date(err.retryAt).toISOString() }, 'sign-in refused unchecked: too many failed sign-ins');
            void reply.header('retry-after', String(Math.max(1, Math.ceil((err.retryAt - now) / 1000))));
            return page(reply, 429, throttledPage(lang, view.uid, err, now));
          }
          if (err instanceof PasswordChecksBusy) {
            req.log.warn({ event: 'sign_in_busy', waiting: err.waiting }, 'sign-in refused unchecked: the password checks queue is full');
            const t = SIGN_IN_TEXTS[lang];
            void reply.header('retry-after', '2');
            return page(reply, 503, signInPageHtml(lang, t.busyTitle, `<p class="err" role="alert">${esc(t.busyText)}</p><p><a href="${esc(interactionPath(view.uid))}?lang=${lang}">${esc(t.backToSignIn)}</a></p>`));
          }
          throw err;
        }
        if (next === null) {
          req.log.info({ event: 'sign_in_failed' }, 'sign-in refused: unknown username or wrong password');
          return page(reply, 401, loginPage(lang, view.uid, SIGN_IN_TEXTS[lang].wrongPassword));
        }
        req.log.info({ event: 'sign_in' }, 'signed in');
        return reply.redirect(next, 303);
      },
    );

    pages.post('/oidc/interaction/:uid/abort', { schema: { hide: true, params: Uid } }, async (req, reply) => {
      const p = provider();
      const view = await p.interaction(req.raw, reply.raw, req.params.uid);
      if (!view) return expired(reply, langOf((req.body as { lang?: unknown } | undefined)?.lang, req, view));
      return reply.redirect(await p.abort(req.raw, reply.raw), 303);
    });
  });
};
