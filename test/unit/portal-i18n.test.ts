// The portal's texts and formatting (web/i18n.js, a browser module without I/O): every
// text exists in both languages, and numbers, units and dates follow the language.
import { describe, expect, it } from 'vitest';

interface I18n {
  TEXTS: Record<'en' | 'nl', Record<string, string>>;
  FIELD_LABELS: Record<'en' | 'nl', Record<string, string>>;
  UNITS: Record<string, unknown>;
  PURPOSES_NL: Record<string, Record<string, string>>;
  messages(lang: 'en' | 'nl'): {
    t(key: string, vars?: Record<string, unknown>): string;
    unit(field: string, v: number | null): string;
    number(v: number, digits?: number): string;
    date(d: string): string;
    label(field: string): string;
  };
}
// A plain browser module: loaded by URL, typed by the interface above.
const load = async (): Promise<I18n> => (await import(new URL('../../web/i18n.js', import.meta.url).href)) as I18n;

describe('portal texts and formats', () => {
  it('has every text, field label and placeholder in both languages', async () => {
    const { TEXTS, FIELD_LABELS } = await load();
    expect(Object.keys(TEXTS.nl).sort()).toEqual(Object.keys(TEXTS.en).sort());
    expect(Object.keys(FIELD_LABELS.nl).sort()).toEqual(Object.keys(FIELD_LABELS.en).sort());
    for (const k of Object.keys(TEXTS.en)) {
      const vars = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      expect([k, vars(TEXTS.nl[k]!)]).toEqual([k, vars(TEXTS.en[k]!)]);
    }
  });

  it('labels and gives a unit to every field the catalogue lists', async () => {
    const { FIELD_LABELS, UNITS, PURPOSES_NL } = await load();
    const { CATALOGUE, PURPOSES } = await import('../../api/catalogue.ts');
    const fields = CATALOGUE.map((f) => f.name).filter((n) => n.includes('.'));
    expect(fields.length).toBeGreaterThan(20);
    for (const f of fields) {
      expect([f, typeof FIELD_LABELS.en[f], typeof FIELD_LABELS.nl[f], f in UNITS]).toEqual([f, 'string', 'string', true]);
    }
    expect(Object.keys(PURPOSES_NL).sort()).toEqual(Object.keys(PURPOSES).sort());
  });

  it('formats numbers, units and dates per language', async () => {
    const { messages } = await load();
    const en = messages('en');
    const nl = messages('nl');
    expect(en.unit('technical.odometerKm', 56792.4)).toBe('56,792 km');
    expect(nl.unit('technical.odometerKm', 56792.4)).toBe('56.792 km');
    expect(en.unit('technical.speedKmh', 88.5)).toBe('89 km/h');
    expect(nl.unit('technical.speedKmh', 88.5)).toBe('89 km/u');
    expect(en.unit('technical.outsideTempC', -3.25)).toBe('-3.3°C');
    expect(nl.unit('technical.outsideTempC', -3.25)).toBe('-3,3°C');
    expect(nl.unit('consumption.totalGridEnergyIntoBatteryKwh', 950.125)).toBe('950,1\u00a0kWh');
    expect(nl.unit('avgConsumption', 6.24)).toBe('6,2\u00a0l/100 km');
    expect(en.unit('location.latitude', 52.3443512)).toBe('52.34435°');
    expect(en.unit('technical.speedKmh', null)).toBe('–');
    expect(en.date('2026-03-05T12:00:00Z')).toBe('5 Mar 2026');
    expect(nl.date('2026-03-05T12:00:00Z')).toBe('5 mrt 2026');
    expect(nl.t('granted', { who: 'Garage De Vries' })).toBe('Toegang gegeven aan Garage De Vries.');
    expect(nl.label('technical.speedKmh')).toBe('Snelheid');
  });
});

describe('the embedded sign-in pages in Dutch and English (identity/sign-in-pages.ts)', () => {
  it('has every text in both languages, with the same placeholders', async () => {
    const { SIGN_IN_TEXTS } = await import('../../identity/sign-in-pages.ts');
    expect(Object.keys(SIGN_IN_TEXTS.nl).sort()).toEqual(Object.keys(SIGN_IN_TEXTS.en).sort());
    const vars = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
    for (const k of Object.keys(SIGN_IN_TEXTS.en) as (keyof typeof SIGN_IN_TEXTS.en)[]) {
      expect([k, vars(SIGN_IN_TEXTS.nl[k])]).toEqual([k, vars(SIGN_IN_TEXTS.en[k])]);
      expect([k, SIGN_IN_TEXTS.nl[k] === SIGN_IN_TEXTS.en[k]]).toEqual([k, false]);
    }
  });

  it('picks the language: the page switch, then ui_locales, then Accept-Language, then English', async () => {
    const { signInLang } = await import('../../identity/sign-in-pages.ts');
    expect(signInLang({ choice: 'en', uiLocales: 'nl', acceptLanguage: 'nl-NL' })).toBe('en');
    expect(signInLang({ choice: 'fr', uiLocales: 'nl', acceptLanguage: 'en' })).toBe('nl');
    expect(signInLang({ uiLocales: 'nl', acceptLanguage: 'en-GB,en;q=0.9' })).toBe('nl');
    expect(signInLang({ uiLocales: 'de-DE nl-BE en', acceptLanguage: 'en' })).toBe('nl');
    expect(signInLang({ uiLocales: 'de fr', acceptLanguage: 'de-DE,nl;q=0.8,en;q=0.5' })).toBe('nl');
    // Weights, not order, rank Accept-Language; q=0 means "not this one".
    expect(signInLang({ acceptLanguage: 'nl;q=0.4, en-US;q=0.9' })).toBe('en');
    expect(signInLang({ acceptLanguage: 'en;q=0, NL-nl' })).toBe('nl');
    expect(signInLang({ acceptLanguage: '*' })).toBe('en');
    expect(signInLang({ uiLocales: 42, acceptLanguage: undefined })).toBe('en');
    expect(signInLang({})).toBe('en');
  });

  it('renders a page in its language, escaped, with a switch to the other', async () => {
    const { signInPageHtml, signInText } = await import('../../identity/sign-in-pages.ts');
    const html = signInPageHtml('nl', 'Uitloggen <b>', '<p>x</p>', (l) => `/p?lang=${l}&a="1"`);
    expect(html).toMatch(/^<!doctype html><html lang="nl">/);
    expect(html).toContain('<title>Uitloggen &#60;b&#62;</title>');
    expect(html).toContain('<nav aria-label="Taal">');
    expect(html).toContain('href="/p?lang=en&#38;a=&#34;1&#34;" lang="en" hreflang="en">English</a>');
    expect(html).toContain('lang="nl" hreflang="nl" aria-current="true">Nederlands</a>');
    expect(html).not.toMatch(/https?:\/\//);
    expect(signInText('nl', 'logoutQuestion', { host: 'gw.example' })).toBe('Wilt u uitloggen bij CarData op gw.example?');
  });
});
