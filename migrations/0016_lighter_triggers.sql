-- Lighter status changes (issue 12). Under load PostgreSQL spent much of its CPU in the
-- triggers of `verifications`; three things made them dearer than they need to be.

-- 1. A SQL function is inlined into the statement that calls it only when its body is no
-- more volatile than it claims. These two were declared IMMUTABLE around STABLE functions
-- (`to_char`, `jsonb_build_object`), so every call went through the SQL-function executor,
-- which parses and plans the body again: six times per webhook event. Declared truthfully
-- they are inlined.
ALTER FUNCTION api_timestamp(timestamptz) STABLE;
ALTER FUNCTION deliver_webhook_job(uuid, uuid, text) STABLE;

-- 2. The bucket of the usage histogram with `width_bucket` (one inlinable expression)
-- instead of a set-returning scan of the bounds. Past the last bound it now answers the last
-- bucket; before, it answered NULL and the histogram update wrote past the array's end.
CREATE OR REPLACE FUNCTION usage_bucket(seconds double precision) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT least(width_bucket(seconds, usage_bucket_bounds()::double precision[]) + 1,
                 cardinality(usage_bucket_bounds()))
$$;

-- 3. Most status changes (claimed for ordering, number assigned, timed out, failed) change
-- neither the open count nor the usage aggregate, yet each called both PL/pgSQL triggers.
-- A WHEN condition is checked before any call, so the triggers now run only when they have
-- something to count. The functions are unchanged.
DROP TRIGGER verifications_open_count ON verifications;
CREATE TRIGGER verifications_open_count_rows
    AFTER INSERT OR DELETE ON verifications
    FOR EACH ROW EXECUTE FUNCTION count_open_verifications();
CREATE TRIGGER verifications_open_count_status
    AFTER UPDATE OF status ON verifications
    FOR EACH ROW WHEN (verification_is_open(OLD.status) <> verification_is_open(NEW.status))
    EXECUTE FUNCTION count_open_verifications();

DROP TRIGGER verifications_usage ON verifications;
CREATE TRIGGER verifications_usage_rows
    AFTER INSERT ON verifications
    FOR EACH ROW EXECUTE FUNCTION count_usage();
CREATE TRIGGER verifications_usage_status
    AFTER UPDATE OF status ON verifications
    FOR EACH ROW WHEN (NEW.status IN ('completed', 'refunded') AND NEW.status <> OLD.status)
    EXECUTE FUNCTION count_usage();

-- 4. Counting an account's open verifications reads the counter (migration 0009) since then;
-- this index only made every insert and every open-to-open status change write one more
-- index entry. `namaskah check` counts open verifications through `verifications_open_idx`.
DROP INDEX verifications_open_by_account_idx;
