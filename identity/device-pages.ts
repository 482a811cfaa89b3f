// The pages of the Device Authorization Grant (RFC 8628 §3.3) at the embedded provider: the
// user code entry, its confirmation, and the success page, in the portal's languages like
// the sign-in pages (identity/sign-in-pages.ts). Our own forms, not the library's: no inline
// script (the provider's policy forbids it), labels for every field, a language switch.
import type { KoaContextWithOIDC } from 'oidc-provider';
import { escapeHtml as esc, signInLang, signInPageHtml, signInText, type SignInLang, type SignInTexts } from './sign-in-pages.ts';

/** The page's language: ?lang= on the page's address, then the browser's Accept-Language. */
function langOf(ctx: KoaContextWithOIDC): SignInLang {
  return signInLang({ choice: ctx.query.lang, acceptLanguage: ctx.get('accept-language') || undefined });
}

function send(ctx: KoaContextWithOIDC, lang: SignInLang, html: string): void {
  ctx.type = 'html';
  ctx.set('content-language', lang);
  ctx.set('cache-control', 'no-store');
  ctx.body = html;
}

/** The form's address and its anti-forgery value (oidc-provider keeps it in the browser's session). */
function formTarget(ctx: KoaContextWithOIDC, lang: SignInLang): { action: string; xsrf: string } {
  const secret = ctx.oidc.session?.state?.secret;
  return { action: `${ctx.oidc.urlFor('code_verification')}?lang=${lang}`, xsrf: typeof secret === 'string' ? secret : '' };
}

/** Which message an error of the code entry shows (oidc-provider's re-render errors by name). */
function errorText(err: Error | undefined): keyof SignInTexts | null {
  if (!err) return null;
  switch (err.name) {
    case 'NoCodeError':
    case 'NotFoundError':
      return 'deviceWrongCode';
    case 'ExpiredError':
      return 'deviceExpired';
    case 'AlreadyUsedError':
      return 'deviceUsed';
    case 'AbortedError':
      return 'deviceAborted';
    default:
      return 'deviceError';
  }
}

export async function userCodeInputSource(ctx: KoaContextWithOIDC, _form: string, _out?: unknown, err?: Error): Promise<void> {
  const lang = langOf(ctx);
  const { action, xsrf } = formTarget(ctx, lang);
  const problem = errorText(err);
  const body =
    (problem ? `<p class="err" role="alert">${esc(signInText(lang, problem))}</p>` : '') +
    `<p>${esc(signInText(lang, 'deviceIntro'))}</p>` +
    `<form method="post" action="${esc(action)}"><input type="hidden" name="xsrf" value="${esc(xsrf)}">` +
    `<label for="user_code">${esc(signInText(lang, 'deviceCode'))}</label>` +
    `<input id="user_code" name="user_code" autocomplete="off" autocapitalize="characters" spellcheck="false" required autofocus>` +
    `<button type="submit" id="device-continue">${esc(signInText(lang, 'deviceContinue'))}</button></form>`;
  send(ctx, lang, signInPageHtml(lang, signInText(lang, 'deviceTitle'), body, (l) => `${action.replace(/\?lang=\w+$/, '')}?lang=${l}`));
}

export async function userCodeConfirmSource(
  ctx: KoaContextWithOIDC,
  _form: string,
  client: { clientName?: string | undefined; clientId: string },
  deviceInfo: { ip?: string } | undefined,
  userCode: string,
): Promise<void> {
  const lang = langOf(ctx);
  const { action, xsrf } = formTarget(ctx, lang);
  const name = `<strong>${esc(client.clientName ?? client.clientId)}</strong>`;
  const text = esc(signInText(lang, 'deviceConfirmText', { client: '\u0000' })).replace('\u0000', name);
  const body =
    `<p>${text}</p><p><code id="device-user-code" style="font-size:2em">${esc(userCode)}</code></p>` +
    (deviceInfo?.ip ? `<p>${esc(signInText(lang, 'deviceConfirmFrom', { ip: deviceInfo.ip }))}</p>` : '') +
    `<p>${esc(signInText(lang, 'deviceConfirmWarning'))}</p>` +
    `<form method="post" action="${esc(action)}"><input type="hidden" name="xsrf" value="${esc(xsrf)}">` +
    `<input type="hidden" name="user_code" value="${esc(userCode)}"><input type="hidden" name="confirm" value="yes">` +
    `<button type="submit" id="device-connect">${esc(signInText(lang, 'deviceConnect'))}</button> ` +
    `<button type="submit" id="device-cancel" name="abort" value="yes">${esc(signInText(lang, 'cancel'))}</button></form>`;
  send(ctx, lang, signInPageHtml(lang, signInText(lang, 'deviceConfirmTitle'), body));
}

export async function successSource(ctx: KoaContextWithOIDC): Promise<void> {
  const lang = langOf(ctx);
  send(ctx, lang, signInPageHtml(lang, signInText(lang, 'deviceSuccessTitle'), `<p role="status">${esc(signInText(lang, 'deviceSuccessText'))}</p>`));
}
