-- A tamper-evident audit log. Each entry carries the SHA-256 of its content and of the entry
-- before it (`previous_hash`), so that editing, deleting or slipping in an entry breaks the
-- chain from that point on, even for someone who can switch the append-only trigger off;
-- `namaskah check` recomputes it (`store::audit::verify_chain`). The scheduler's
-- `audit_anchor` job copies the head of the chain into `audit_anchors` and into the log
-- stream, so that a chain rewritten end to end still disagrees with what was anchored.
--
-- What is hashed, field by field in this order, each as `<octet length>:<text>;` (`-:;` for
-- NULL): the format version `v1`, the id, the time as `YYYY-MM-DDTHH:MI:SS.USZ` in UTC, the
-- actor, the action, the target, the details as PostgreSQL renders the jsonb, the address.
-- The hash is over `previous_hash` (32 zero bytes for the first entry) followed by that text.

ALTER TABLE audit_log
    ADD COLUMN previous_hash bytea,
    ADD COLUMN entry_hash bytea;

CREATE FUNCTION audit_log_field(value text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN value IS NULL THEN '-:;'
                ELSE octet_length(value) || ':' || value || ';' END
$$;

CREATE FUNCTION audit_log_hash(
    previous bytea, id bigint, at timestamptz, actor text, action text, target text,
    details jsonb, ip text
) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(previous || convert_to(
        audit_log_field('v1')
        || audit_log_field(id::text)
        || audit_log_field(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
        || audit_log_field(actor)
        || audit_log_field(action)
        || audit_log_field(target)
        || audit_log_field(details::text)
        || audit_log_field(ip),
        'UTF8'))
$$;

-- Entries are chained one at a time: the lock is held until the inserting transaction ends,
-- and the id is drawn under it, so ids follow the chain's order however many insert at once.
CREATE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    previous bytea;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        -- A snapshot older than the lock would not see the entry this one must follow.
        RAISE EXCEPTION 'audit_log entries are appended in READ COMMITTED transactions only';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('audit_log_chain'));
    NEW.id := nextval(pg_get_serial_sequence('audit_log', 'id'));
    SELECT entry_hash INTO previous FROM audit_log ORDER BY id DESC LIMIT 1;
    NEW.previous_hash := coalesce(previous, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
    NEW.entry_hash := audit_log_hash(NEW.previous_hash, NEW.id, NEW.at, NEW.actor, NEW.action,
                                     NEW.target, NEW.details, NEW.ip);
    RETURN NEW;
END $$;

CREATE TRIGGER audit_log_chained
    BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_chain();

-- TRUNCATE fires no row trigger: refuse it too.
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The entries written before this migration join the chain in the order of their ids.
ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_or_delete;
DO $$
DECLARE
    entry record;
    previous bytea := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
BEGIN
    FOR entry IN SELECT * FROM audit_log ORDER BY id LOOP
        UPDATE audit_log
           SET previous_hash = previous,
               entry_hash = audit_log_hash(previous, entry.id, entry.at, entry.actor,
                                           entry.action, entry.target, entry.details, entry.ip)
         WHERE id = entry.id
        RETURNING entry_hash INTO previous;
    END LOOP;
END $$;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update_or_delete;

ALTER TABLE audit_log
    ALTER COLUMN previous_hash SET NOT NULL,
    ALTER COLUMN entry_hash SET NOT NULL;

-- The chain's head as the scheduler saw it, now and then.
CREATE TABLE audit_anchors (
    anchored_at timestamptz NOT NULL DEFAULT now(),
    entry_id    bigint NOT NULL,
    entry_hash  bytea NOT NULL,
    PRIMARY KEY (entry_id)
);
