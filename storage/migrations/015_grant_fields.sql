-- Field-level grants (issue 26): a grant may name the fields of its categories it shares
-- (catalogue names such as 'technical.speedKmh'); NULL: every field of its categories, as
-- before. Data minimisation (GDPR Art. 5(1)(c)) for the Data Act's sharing with a third
-- party of the user's choice (Art. 5). The API checks each name against the catalogue and
-- the grant's categories (access/grants.ts checkNewGrant); the CHECK below keeps the column
-- from holding what no reader can honour: no empty list, and each name within a category
-- the grant covers.
CREATE FUNCTION grant_fields_within(fields text[], categories text[]) RETURNS boolean
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT cardinality(fields) > 0 AND NOT EXISTS (SELECT 1 FROM unnest(fields) f WHERE split_part(f, '.', 1) <> ALL (categories) OR f !~ '^[a-z]+\.[A-Za-z][A-Za-z0-9]*$') $$;

ALTER TABLE grants ADD COLUMN fields text[] CHECK (fields IS NULL OR grant_fields_within(fields, categories));

-- The owner's access log says which fields a read through such a grant carried.
ALTER TABLE disclosures ADD COLUMN fields text[];
