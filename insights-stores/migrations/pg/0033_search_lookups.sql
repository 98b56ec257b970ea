-- Text search that reaches its indexes under row-level security (issue 18).
--
-- Inside a tenant session every table has the `tenant_isolation` policy,
-- and PostgreSQL evaluates a query's own conditions only after the
-- policy's unless their operators are LEAKPROOF. The full-text match
-- (`tsvector @@ tsquery`) and `LIKE` are not, so under RLS the GIN indexes
-- on `participants.search`, `participants.phone_digits` (trigram) and
-- `transcript_segments.search` were never used: every text search scanned
-- the tenant's rows (0.3-1.3 s at p95 over a million recordings).
-- Transcript words keep their correlated EXISTS: a lookup that returns
-- every matching id first measured slower for broad words.
--
-- These two lookups (participant words, phone digits) run as their owner (the schema owner, to whom the
-- policies do not apply, SECURITY DEFINER) and so use the indexes. Each
-- takes the tenant ONLY from the transaction's own `app.tenant_id`
-- setting, the same value the policies compare with, never from an
-- argument: with no tenant set they return nothing, like the policies.
-- They return recording ids only, and the store then reads those
-- recordings through the policies as before. They are never inlined
-- (SECURITY DEFINER), their search_path is pinned, and only the
-- application role may call them.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE FUNCTION search_participant_words(q tsquery) RETURNS SETOF uuid
    LANGUAGE sql STABLE STRICT SECURITY DEFINER PARALLEL SAFE
    SET search_path FROM CURRENT
AS $$
    SELECT DISTINCT p.recording_id FROM participants p
    WHERE p.tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
      AND p.search @@ q
$$;

CREATE FUNCTION search_participant_digits(pattern text) RETURNS SETOF uuid
    LANGUAGE sql STABLE STRICT SECURITY DEFINER PARALLEL SAFE
    SET search_path FROM CURRENT
AS $$
    SELECT DISTINCT p.recording_id FROM participants p
    WHERE p.tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
      AND p.phone_digits LIKE pattern
$$;

REVOKE ALL ON FUNCTION search_participant_words(tsquery) FROM PUBLIC;
REVOKE ALL ON FUNCTION search_participant_digits(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION search_participant_words(tsquery) TO insights_app;
GRANT EXECUTE ON FUNCTION search_participant_digits(text) TO insights_app;
