// Access policy: who may read which of a vehicle's data, decided in one place per kind of
// caller (the owner, a grant's recipient, the authority's OBFCM report). Pure: facts in,
// a decision out; the callers look the facts up and act on the answer. No I/O, no clock
// of its own (`now` is passed in), proto types only.
import { FIELD_COLUMNS, GROUPS, fieldName, type Group } from '../proto/fields.ts';
import type { AccessMode, RecipientRole } from '../proto/grants.ts';
import { DATA_CATEGORIES, type DataCategory } from '../proto/connectivity.ts';

export type { AccessMode, RecipientRole };
/** A grant's categories: the telemetry groups and `connectivity` (proto/connectivity.ts, the one list). */
export type Category = DataCategory;
export const CATEGORIES: readonly Category[] = DATA_CATEGORIES;
export const ACCESS_MODES: readonly AccessMode[] = ['history', 'stream'];
export const RECIPIENT_ROLES: readonly RecipientRole[] = ['workshop', 'third_party'];

/** Who is calling, as authentication established it. */
export interface Caller {
  role: string;
  subject: string;
}

/** [from, to) of one ownership period; `to` null while it lasts. */
export interface Period {
  ownerId: string;
  from: Date;
  to: Date | null;
}

/** A time window of data (by measurement time): [from, to), `to` null = open. */
export interface Window {
  from: Date;
  to: Date | null;
}

export interface GrantFacts {
  id: string;
  vin: string;
  /** The owner who made it. */
  ownerId: string;
  recipientId: string;
  recipientRole: RecipientRole;
  categories: readonly Category[];
  /** Only these fields of the categories (catalogue names); null: every field of them. */
  fields: readonly string[] | null;
  access: readonly AccessMode[];
  /** Data measured from then on. */
  dataFrom: Date;
  createdAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
  /** End of the ownership period the grant was made in (a transfer); null while it lasts. */
  periodEndedAt: Date | null;
}

export type GrantStatus = 'active' | 'revoked' | 'expired' | 'ended';

/**
 * A grant's status at `now`: whichever of revocation, end of the ownership period
 * (transfer) and expiry came first, else active.
 */
export function grantStatus(g: GrantFacts, now: Date): GrantStatus {
  const ends: [GrantStatus, Date | null][] = [
    ['revoked', g.revokedAt],
    ['ended', g.periodEndedAt],
    ['expired', g.expiresAt],
  ];
  let first: [GrantStatus, Date] | null = null;
  for (const [s, at] of ends) {
    if (at !== null && at.getTime() <= now.getTime() && (first === null || at.getTime() < first[1].getTime())) first = [s, at];
  }
  return first ? first[0] : 'active';
}

/** When the grant stops (or stopped) covering reads: the earliest of revocation, transfer, expiry. */
export function grantEnd(g: GrantFacts): Date {
  let end = g.expiresAt;
  for (const at of [g.revokedAt, g.periodEndedAt]) if (at !== null && at < end) end = at;
  return end;
}

export type Refusal =
  /** No such grant for this caller, or no longer active: the same answer, nothing to learn. */
  | 'NOT_FOUND'
  /** The owner restricted processing (GDPR Art. 18): every grant's reads are suspended. */
  | 'RESTRICTED'
  /** The grant exists and is the caller's, but does not allow this way of reading. */
  | 'MODE_NOT_GRANTED';

export interface ReadScope {
  grantId: string;
  /** The owner the read is disclosed to. */
  ownerId: string;
  /** The telemetry groups the read covers (the grant's ∩ asked for). */
  categories: Group[];
  /** The read covers `connectivity` too (the grant's ∩ asked for). */
  connectivity: boolean;
  /**
   * Only these fields of `categories` may be read (catalogue names, in the catalogue's
   * order): a field-level grant's, narrowed to the categories read. null: every field of them.
   */
  fields: string[] | null;
  /** Where the data may come from, oldest first; empty: nothing in range (still a read). */
  windows: Window[];
}

export type Decision = { ok: true; scope: ReadScope } | { ok: false; refusal: Refusal };

/** [a.from, a.to) ∩ [b.from, b.to), or null when empty. */
export function intersect(a: Window, b: Window): Window | null {
  const from = a.from > b.from ? a.from : b.from;
  let to = a.to;
  if (b.to !== null && (to === null || b.to < to)) to = b.to;
  if (to !== null && to <= from) return null;
  return { from, to };
}

/**
 * A grant recipient (workshop or third party) reading through grant `g`. The grant must be
 * the caller's (subject and role), active, cover `need` when given, and allow `mode`; the
 * owner must not have restricted processing. What may be read: the grant's categories
 * (∩ `want`), from the granting owner's periods ∩ [dataFrom, end of the grant) ∩ `requested`.
 */
export function recipientRead(
  caller: Caller,
  g: GrantFacts | null,
  ctx: {
    ownerPeriods: readonly Period[];
    restricted: boolean;
    now: Date;
    mode: AccessMode;
    requested?: { from: Date | null; to: Date | null };
    /** A category the read needs (the workshop's consumption route). */
    need?: Category;
    /** Categories asked for; default all the grant covers. */
    want?: readonly Category[];
  },
): Decision {
  if (g === null || g.recipientId !== caller.subject || g.recipientRole !== caller.role) return { ok: false, refusal: 'NOT_FOUND' };
  if (grantStatus(g, ctx.now) !== 'active') return { ok: false, refusal: 'NOT_FOUND' };
  if (ctx.need !== undefined && !g.categories.includes(ctx.need)) return { ok: false, refusal: 'NOT_FOUND' };
  if (!g.access.includes(ctx.mode)) return { ok: false, refusal: 'MODE_NOT_GRANTED' };
  if (ctx.restricted) return { ok: false, refusal: 'RESTRICTED' };
  const want = ctx.want ?? CATEGORIES;
  const covered = CATEGORIES.filter((c) => g.categories.includes(c) && want.includes(c) && (ctx.need === undefined || c === ctx.need));
  const categories = GROUPS.filter((c) => covered.includes(c));
  const grantWindow: Window = { from: g.dataFrom, to: grantEnd(g) };
  const req: Window = { from: ctx.requested?.from ?? new Date(0), to: ctx.requested?.to ?? null };
  const windows: Window[] = [];
  for (const p of ctx.ownerPeriods) {
    if (p.ownerId !== g.ownerId) continue;
    const w1 = intersect({ from: p.from, to: p.to }, grantWindow);
    const w = w1 && intersect(w1, req);
    if (w) windows.push(w);
  }
  windows.sort((a, b) => a.from.getTime() - b.from.getTime());
  return { ok: true, scope: { grantId: g.id, ownerId: g.ownerId, categories, connectivity: covered.includes('connectivity'), fields: grantedFields(g.fields, categories), windows } };
}

/**
 * The fields a read of `categories` through a grant naming `fields` carries: those of the
 * categories read, in the catalogue's order (null: the grant names none, every field).
 * The one projection the export, the stream and the workshop's read take (GDPR Art. 5(1)(c)).
 */
export function grantedFields(fields: readonly string[] | null, categories: readonly Category[]): string[] | null {
  if (fields === null) return null;
  return fields.filter((f) => categories.includes(f.slice(0, f.indexOf('.')) as Category));
}

/**
 * Of the caller's grants on one vehicle, the one a read needing `need` by `mode` goes
 * through: an active one covering it; of several, the one reaching furthest back.
 */
export function chooseGrant(caller: Caller, grants: readonly GrantFacts[], now: Date, need: Category, mode: AccessMode): GrantFacts | null {
  let best: GrantFacts | null = null;
  for (const g of grants) {
    if (g.recipientId !== caller.subject || g.recipientRole !== caller.role) continue;
    if (grantStatus(g, now) !== 'active' || !g.categories.includes(need) || !g.access.includes(mode)) continue;
    if (best === null || g.dataFrom < best.dataFrom) best = g;
  }
  return best;
}

/** The vehicle's owner reading their own data: every category, their own periods. */
export function ownerRead(caller: Caller, currentOwner: string | null, periods: readonly Period[]): { ok: true; windows: Window[] } | { ok: false; refusal: 'NOT_FOUND' } {
  if (caller.role !== 'customer' || currentOwner === null || currentOwner !== caller.subject) return { ok: false, refusal: 'NOT_FOUND' };
  return { ok: true, windows: periods.filter((p) => p.ownerId === caller.subject).map((p) => ({ from: p.from, to: p.to })) };
}

/**
 * The authority's OBFCM report, per reading: shared when the privacy state in force for
 * the ownership period the reading belongs to (that period's owner's last choice; the
 * defaults when they made none) neither refuses CO2 sharing nor restricts processing.
 * The disclosure is filed with that period's owner. storage/repos/reads.ts obfcmReport runs
 * this rule in SQL; test/unit/access.test.ts and the property test hold both to it.
 */
export function obfcmShareable(periodState: { co2Sharing: boolean; restricted: boolean } | null): boolean {
  return periodState === null || (periodState.co2Sharing && !periodState.restricted);
}

export interface NewGrant {
  categories: readonly string[];
  /** Catalogue names of the fields to share; absent: whole categories. */
  fields?: readonly string[] | undefined;
  expiresAt?: Date | undefined;
  dataFrom?: Date | undefined;
  access?: readonly string[] | undefined;
}

/** A field of the catalogue a grant may name: its name (`technical.speedKmh`) and category. */
export interface KnownField {
  name: string;
  category: string;
}

/** The stored fields, as the catalogue names them: what a grant may name when no other list is given. */
export const STORED_FIELDS: readonly KnownField[] = FIELD_COLUMNS.map((c) => ({ name: fieldName(c), category: c.group }));

/** Why a grant's `fields` was refused (the API's problem codes follow them). */
export type FieldProblem =
  /** Not a field of the catalogue (a typo): the problem names it and the closest name. */
  | 'UNKNOWN_FIELD'
  /** A field of a category the grant does not cover. */
  | 'FIELD_OUTSIDE_CATEGORIES'
  /** A catalogue field of a category shared whole only (not a telemetry column: connectivity's). */
  | 'FIELD_NOT_SELECTABLE'
  /** A category of the grant none of whose fields is named (it would share nothing). */
  | 'CATEGORY_WITHOUT_FIELDS';

/**
 * A grant's `fields`: each a catalogue field within the grant's categories, every category
 * with at least one; answered in the catalogue's order without repeats. Absent: null
 * (whole categories). The record keys (vin, seq, recordedAt) come with every record and
 * are not named.
 */
export function checkFields(
  fields: readonly string[] | undefined,
  categories: readonly Category[],
  known: readonly KnownField[] = STORED_FIELDS,
): { ok: true; fields: string[] | null } | { ok: false; code: FieldProblem; problem: string } {
  if (fields === undefined) return { ok: true, fields: null };
  if (fields.length === 0) return { ok: false, code: 'CATEGORY_WITHOUT_FIELDS', problem: 'fields: at least one field, or leave `fields` out to share whole categories' };
  // Selectable one by one: the stored telemetry columns, which every read path projects
  // (proto/fields.ts projectColumns). Other catalogue fields (connectivity's) go whole.
  const selectable = (k: KnownField) => STORED_FIELDS.some((s) => s.name === k.name);
  for (const f of fields) {
    const k = known.find((x) => x.name === f);
    if (!k) {
      const near = closest(f, known.filter(selectable).map((x) => x.name));
      return {
        ok: false,
        code: 'UNKNOWN_FIELD',
        problem: `fields: unknown field ${JSON.stringify(f)}${near ? `: did you mean ${JSON.stringify(near)}?` : ''} (GET /v1/catalogue lists the fields by name, e.g. "technical.speedKmh")`,
      };
    }
    if (!selectable(k)) {
      return { ok: false, code: 'FIELD_NOT_SELECTABLE', problem: `fields: ${JSON.stringify(f)}: the fields of category ${JSON.stringify(k.category)} are shared whole; name the category and none of its fields` };
    }
    if (!categories.includes(k.category as Category)) {
      return { ok: false, code: 'FIELD_OUTSIDE_CATEGORIES', problem: `fields: ${JSON.stringify(f)} is a field of category ${JSON.stringify(k.category)}, which the grant does not cover (categories: ${categories.join(', ')})` };
    }
  }
  const out = known.filter((k) => fields.includes(k.name)).map((k) => k.name);
  for (const c of categories) {
    // A category shared whole (no selectable field) needs none named.
    if (!known.some((k) => k.category === c && selectable(k))) continue;
    if (!known.some((k) => k.category === c && out.includes(k.name))) {
      return { ok: false, code: 'CATEGORY_WITHOUT_FIELDS', problem: `fields: none of category ${JSON.stringify(c)}'s fields is named: name the ones to share, or leave the category out` };
    }
  }
  return { ok: true, fields: out };
}

/** The name of `names` closest to `s` (case-insensitive edit distance, at most a third of its length), or null. */
export function closest(s: string, names: readonly string[]): string | null {
  const a = s.toLowerCase();
  let best: string | null = null;
  let bestD = Math.max(1, Math.floor(a.length / 3)) + 1;
  for (const n of names) {
    const d = editDistance(a, n.toLowerCase(), bestD);
    if (d < bestD) {
      best = n;
      bestD = d;
    }
  }
  return best;
}

/** Levenshtein distance of a and b, or `cap` once it is certain to reach it (names are short: at most ~60 characters). */
function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) >= cap) return cap;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      cur.push(v);
      if (v < rowMin) rowMin = v;
    }
    if (rowMin >= cap) return cap;
    prev = cur;
  }
  return Math.min(prev[b.length]!, cap);
}

/**
 * Checks a grant the owner asks for; fills the defaults (dataFrom: the creation; access: both;
 * expiresAt: now + maxDays; fields: null, whole categories). Returns the problem as text when
 * refused, with a `code` when it is one of the fields' (`known`: the catalogue's fields).
 */
export function checkNewGrant(
  req: NewGrant,
  recipient: { role: string } | null,
  now: Date,
  maxDays: number,
  known: readonly KnownField[] = STORED_FIELDS,
):
  | { ok: true; categories: Category[]; fields: string[] | null; access: AccessMode[]; dataFrom: Date | null; expiresAt: Date }
  | { ok: false; problem: string; code?: FieldProblem } {
  if (recipient === null || !RECIPIENT_ROLES.includes(recipient.role as RecipientRole)) return { ok: false, problem: 'recipientId: not a registered workshop or third party (GET /v1/recipients lists them)' };
  const unknown = req.categories.filter((c) => !CATEGORIES.includes(c as Category));
  if (unknown.length) return { ok: false, problem: `categories: unknown category ${JSON.stringify(unknown[0])}: use ${CATEGORIES.join(", ")}` };
  if (req.categories.length === 0) return { ok: false, problem: 'categories: at least one category' };
  const access = req.access ?? ACCESS_MODES;
  const badMode = access.filter((a) => !ACCESS_MODES.includes(a as AccessMode));
  if (badMode.length) return { ok: false, problem: `access: unknown access ${JSON.stringify(badMode[0])}: use history, stream` };
  if (access.length === 0) return { ok: false, problem: 'access: at least one of history, stream' };
  const max = new Date(now.getTime() + maxDays * 86_400_000);
  const expiresAt = req.expiresAt ?? max;
  if (expiresAt.getTime() <= now.getTime()) return { ok: false, problem: 'expiresAt: must be in the future' };
  if (expiresAt.getTime() > max.getTime()) return { ok: false, problem: `expiresAt: at most ${maxDays} days ahead (GRANT_MAX_DAYS)` };
  // null: the grant's creation, an instant the store decides.
  const dataFrom = req.dataFrom ?? null;
  const categories = CATEGORIES.filter((c) => req.categories.includes(c));
  const f = checkFields(req.fields, categories, known);
  if (!f.ok) return { ok: false, problem: f.problem, code: f.code };
  return {
    ok: true,
    categories,
    fields: f.fields,
    access: ACCESS_MODES.filter((a) => access.includes(a)),
    dataFrom,
    expiresAt,
  };
}
