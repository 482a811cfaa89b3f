// A digest of every row of every table in the public schema, to say "no row changed"
// exactly: md5 over each table's rows as text, in a fixed order, with the row count.
// TimescaleDB hypertables are read through their parent table, so their chunks (in
// _timescaledb_internal) are included.
type Query = <R = Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<R[]>;

export interface DigestOptions {
  /** Per table, a SQL condition on its rows (alias t) choosing the rows digested (the others are left out). */
  where?: Record<string, string>;
}

/** Table name → "<rows> rows, md5 <hex>" (md5 of the rows as text, ordered by that text). */
export async function tableDigests(query: Query, opts: DigestOptions = {}): Promise<Record<string, string>> {
  const tables = await query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname`,
  );
  const out: Record<string, string> = {};
  for (const { name } of tables) {
    const cond = opts.where?.[name];
    const ident = `"${name.replace(/"/g, '""')}"`;
    const r = await query<{ n: number; md5: string | null }>(
      `SELECT count(*)::int AS n, md5(string_agg(t::text, '|' ORDER BY t::text)) AS md5 FROM ${ident} t${cond ? ` WHERE ${cond}` : ''}`,
    );
    out[name] = `${r[0]!.n} rows, md5 ${r[0]!.md5 ?? '-'}`;
  }
  if (opts.where) for (const t of Object.keys(opts.where)) if (!(t in out)) throw new Error(`tableDigests: no table ${t} in the public schema`);
  return out;
}
