-- Time-ordered identifiers for webhook messages and deliveries (issue 23).
--
-- Their ids were random (version 4 UUIDs), so every new event wrote into a random leaf of the
-- messages' primary key, of the deliveries' primary key and unique (message, endpoint) key,
-- and of the attempts' (delivery, id) key. Once those indexes outgrow the buffer cache, each
-- insert reads a page from disk, and the first change to a page after a checkpoint logs the
-- whole page: in a database of a million events, 3.1 KB of WAL per event against 2.5 KB
-- with time-ordered ids, whose inserts all land in the right-hand leaves
-- (docs/benchmarks.md). Verifications and accounts have had time-ordered ids from the start
-- (`domain::ids`).
--
-- The text of the ids keeps its form (`msg_` and 32 hex digits, a UUID for a delivery); only
-- their first 48 bits are now the time in milliseconds, as in a version 7 UUID (RFC 9562).
-- Ids already issued stay as they are: nothing orders by id or reads a time from it.

-- A version 7 UUID: the Unix time in milliseconds, then random bits. PostgreSQL 18 has
-- `uuidv7()`; this is the same for the versions before it.
CREATE FUNCTION time_ordered_uuid() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

-- The two functions that write webhook events take their ids from it. In both, every
-- `gen_random_uuid()` makes a message or a delivery id (and nothing else), so they are
-- redefined as they are with that one call replaced, rather than copied out here in full
-- (`verifications_status_changed` is in migration 0020, `record_webhook_event` in 0004).
DO $$
DECLARE
    writer text;
    definition text;
BEGIN
    FOREACH writer IN ARRAY ARRAY['verifications_status_changed', 'record_webhook_event'] LOOP
        definition := pg_get_functiondef(writer::regproc);
        IF position('gen_random_uuid()' IN definition) = 0 THEN
            RAISE EXCEPTION 'function % no longer makes ids with gen_random_uuid()', writer;
        END IF;
        EXECUTE replace(definition, 'gen_random_uuid()', 'time_ordered_uuid()');
    END LOOP;
END $$;
