// The embedded OpenID Provider's own pages (sign-in, sign-out, errors) in Dutch and
// English, like the portal that sends people there. The language follows, in order: the
// page's own language switch (?lang=), the client's `ui_locales` (OpenID Connect Core 1.0
// §3.1.2.1; RP-Initiated Logout 1.0 §2), the browser's Accept-Language (RFC 9110
// §12.5.4); English when none of them names a language we speak.

export const SIGN_IN_LANGS = ['nl', 'en'] as const;
export type SignInLang = (typeof SIGN_IN_LANGS)[number];

const en = {
  signInTitle: 'Sign in to CarData',
  signInIntro: 'Sign in with the account your gateway operator gave you.',
  username: 'Username',
  password: 'Password',
  signIn: 'Sign in',
  cancel: 'Cancel',
  wrongPassword: 'Unknown username or wrong password.',
  throttledTitle: 'Too many failed sign-ins',
  throttledAccount: 'There were too many failed sign-ins to this account from your network. To protect the account, signing in to it from here is paused until {until} (in about {minutes} min). Signing in from another network still works.',
  throttledSource: 'There were too many failed sign-ins from your network. To protect the accounts, signing in from here is paused until {until} (in about {minutes} min).',
  busyTitle: 'Sign-in busy',
  busyText: 'Too many sign-ins are being checked right now. Please try again in a few seconds.',
  backToSignIn: 'Back to sign-in',
  expiredTitle: 'Sign-in expired',
  expiredText: 'This sign-in has expired or belongs to another browser. Go back to the application and start again.',
  logoutTitle: 'Sign out',
  logoutQuestion: 'Do you want to sign out of CarData at {host}?',
  logoutYes: 'Yes, sign me out',
  logoutNo: 'No, stay signed in',
  loggedOutTitle: 'Signed out',
  loggedOutText: 'You are signed out. You can close this window.',
  errorTitle: 'Sign-in error',
  language: 'Language',
  deviceTitle: 'Connect a device',
  deviceIntro: 'Enter the code your device shows (the CarData command line, a script, a home-automation add-on).',
  deviceCode: 'Code',
  deviceContinue: 'Continue',
  deviceWrongCode: 'This code is unknown. Check it and try again.',
  deviceExpired: 'This code has expired. Start again on your device.',
  deviceUsed: 'This code has already been used. Start again on your device.',
  deviceAborted: 'The connection was cancelled: the device gets no access.',
  deviceError: 'Something went wrong. Start again on your device.',
  deviceConfirmTitle: 'Confirm the device',
  deviceConfirmText: '{client} asks to use CarData with your account. Connect it only if your device shows exactly this code:',
  deviceConfirmFrom: 'Asked from the address {ip}.',
  deviceConfirmWarning: 'If you did not start this, or the code differs, cancel.',
  deviceConnect: 'Connect',
  deviceSuccessTitle: 'Device connected',
  deviceSuccessText: 'Your device is connected to your account. You can close this page and go back to the device.',
} as const;

export type SignInTexts = { readonly [K in keyof typeof en]: string };

const nl: SignInTexts = {
  signInTitle: 'Inloggen bij CarData',
  signInIntro: 'Log in met het account dat u van de beheerder van uw gateway kreeg.',
  username: 'Gebruikersnaam',
  password: 'Wachtwoord',
  signIn: 'Inloggen',
  cancel: 'Annuleren',
  wrongPassword: 'Onbekende gebruikersnaam of verkeerd wachtwoord.',
  throttledTitle: 'Te veel mislukte inlogpogingen',
  throttledAccount: 'Er waren te veel mislukte inlogpogingen voor dit account vanaf uw netwerk. Om het account te beschermen is inloggen erop vanaf hier gepauzeerd tot {until} (over ongeveer {minutes} min). Inloggen vanaf een ander netwerk werkt nog wel.',
  throttledSource: 'Er waren te veel mislukte inlogpogingen vanaf uw netwerk. Om de accounts te beschermen is inloggen vanaf hier gepauzeerd tot {until} (over ongeveer {minutes} min).',
  busyTitle: 'Inloggen druk',
  busyText: 'Er worden nu te veel inlogpogingen gecontroleerd. Probeer het over een paar seconden opnieuw.',
  backToSignIn: 'Terug naar inloggen',
  expiredTitle: 'Inloggen verlopen',
  expiredText: 'Deze inlogpoging is verlopen of hoort bij een andere browser. Ga terug naar de toepassing en begin opnieuw.',
  logoutTitle: 'Uitloggen',
  logoutQuestion: 'Wilt u uitloggen bij CarData op {host}?',
  logoutYes: 'Ja, log mij uit',
  logoutNo: 'Nee, blijf ingelogd',
  loggedOutTitle: 'Uitgelogd',
  loggedOutText: 'U bent uitgelogd. U kunt dit venster sluiten.',
  errorTitle: 'Fout bij inloggen',
  language: 'Taal',
  deviceTitle: 'Apparaat koppelen',
  deviceIntro: 'Voer de code in die uw apparaat toont (de CarData-opdrachtregel, een script, een domotica-add-on).',
  deviceCode: 'Koppelcode',
  deviceContinue: 'Verder',
  deviceWrongCode: 'Deze code is onbekend. Controleer hem en probeer het opnieuw.',
  deviceExpired: 'Deze code is verlopen. Begin opnieuw op uw apparaat.',
  deviceUsed: 'Deze code is al gebruikt. Begin opnieuw op uw apparaat.',
  deviceAborted: 'Het koppelen is geannuleerd: het apparaat krijgt geen toegang.',
  deviceError: 'Er ging iets mis. Begin opnieuw op uw apparaat.',
  deviceConfirmTitle: 'Apparaat bevestigen',
  deviceConfirmText: '{client} vraagt CarData te gebruiken met uw account. Koppel het alleen als uw apparaat precies deze code toont:',
  deviceConfirmFrom: 'Gevraagd vanaf het adres {ip}.',
  deviceConfirmWarning: 'Als u dit niet zelf startte, of de code verschilt, annuleer dan.',
  deviceConnect: 'Koppelen',
  deviceSuccessTitle: 'Apparaat gekoppeld',
  deviceSuccessText: 'Uw apparaat is aan uw account gekoppeld. U kunt deze pagina sluiten en teruggaan naar het apparaat.',
};

export const SIGN_IN_TEXTS: Readonly<Record<SignInLang, SignInTexts>> = { en, nl };
/** The name of each language in itself, for the switch. */
export const SIGN_IN_LANG_NAMES: Readonly<Record<SignInLang, string>> = { nl: 'Nederlands', en: 'English' };

const supported = (tag: string): SignInLang | null => {
  const primary = tag.trim().toLowerCase().split('-')[0];
  return (SIGN_IN_LANGS as readonly string[]).includes(primary ?? '') ? (primary as SignInLang) : null;
};

/** The first language of a space-separated `ui_locales` list we speak, or null. */
export function fromUiLocales(uiLocales: unknown): SignInLang | null {
  if (typeof uiLocales !== 'string') return null;
  for (const tag of uiLocales.split(' ')) {
    const l = supported(tag);
    if (l) return l;
  }
  return null;
}

/** The most preferred language of an Accept-Language header we speak (q=0 excluded), or null. */
export function fromAcceptLanguage(header: string | undefined): SignInLang | null {
  if (!header) return null;
  const ranked = header
    .split(',')
    .map((part, i) => {
      const [tag = '', ...params] = part.split(';');
      const q = params.map((p) => /^\s*q\s*=\s*([0-9.]+)\s*$/.exec(p)?.[1]).find((x) => x !== undefined);
      return { lang: supported(tag), q: q === undefined ? 1 : Number(q), i };
    })
    .filter((x): x is { lang: SignInLang; q: number; i: number } => x.lang !== null && x.q > 0)
    .sort((a, b) => b.q - a.q || a.i - b.i);
  return ranked[0]?.lang ?? null;
}

/** The language of a sign-in page: the explicit choice, then ui_locales, then Accept-Language, then English. */
export function signInLang(o: { choice?: unknown; uiLocales?: unknown; acceptLanguage?: string | undefined }): SignInLang {
  const choice = typeof o.choice === 'string' ? supported(o.choice) : null;
  return choice ?? fromUiLocales(o.uiLocales) ?? fromAcceptLanguage(o.acceptLanguage) ?? 'en';
}

/** A text with its {placeholders} filled in. */
export function signInText(lang: SignInLang, key: keyof SignInTexts, vars: Record<string, string> = {}): string {
  return SIGN_IN_TEXTS[lang][key].replace(/\{(\w+)\}/g, (_, k: string) => vars[k] ?? `{${k}}`);
}

export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** System fonts and inline styles only: nothing is fetched (the pages work offline). */
const STYLE =
  'body{font-family:system-ui,sans-serif;color:#1b1b1b;max-width:24rem;margin:3rem auto;padding:0 1rem;line-height:1.45}' +
  'label{display:block;margin:.75rem 0 .25rem}input{width:100%;padding:.5rem;box-sizing:border-box;font:inherit}' +
  'button{margin-top:1rem;padding:.5rem 1rem;font:inherit}.err{color:#a1150c;font-weight:600}a{color:#0b57d0}' +
  ':focus-visible{outline:3px solid #f2a900;outline-offset:2px}nav ul{list-style:none;display:flex;gap:1rem;margin:0;padding:0;justify-content:flex-end}' +
  '[aria-current]{font-weight:700}';

/**
 * A whole sign-in page in `lang`. With `switchTo`, a language switch whose links go to
 * `switchTo(lang)` (the same page in the other language).
 */
export function signInPageHtml(lang: SignInLang, title: string, body: string, switchTo?: (l: SignInLang) => string): string {
  const t = SIGN_IN_TEXTS[lang];
  const nav = switchTo
    ? `<nav aria-label="${escapeHtml(t.language)}"><ul>${SIGN_IN_LANGS.map(
        (l) => `<li><a href="${escapeHtml(switchTo(l))}" lang="${l}" hreflang="${l}"${l === lang ? ' aria-current="true"' : ''}>${SIGN_IN_LANG_NAMES[l]}</a></li>`,
      ).join('')}</ul></nav>`
    : '';
  return (
    `<!doctype html><html lang="${lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>${nav}<main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`
  );
}
