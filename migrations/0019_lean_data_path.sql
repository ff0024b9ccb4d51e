-- A lean data path (issue 23). Under load PostgreSQL spent a quarter of its CPU in the row
-- triggers of `verifications` (PL/pgSQL called once per changed row, each call running three
-- or four statements through SPI) and much of the rest writing index entries: the hot row had
-- three indexes on `status` or `updated_at`, so no status change was a HOT update and each
-- one wrote an entry into every index of the table.

-- 1. The indexes that changed on every transition go. What they served:
--    - `verifications_open_idx` (status, updated_at), the sweeper's scan of unfinished work:
--      now `verifications_open_since_idx` below, whose column changes twice in a row's life
--      (set when it is inserted, cleared when it is completed or refunded) instead of on
--      every transition;
--    - `verifications_account_status_created_idx`, an account's list filtered by status: the
--      list walks `verifications_account_created_idx` and filters (the status filter is rare,
--      and an account's recent rows are where its open ones are);
--    - `verifications_updated_idx`, the dashboard's "recently changed" list: it lists the
--      most recently created instead, through `verifications_created_idx`, now on every row
--      (the retention job's partial index only covered unerased rows).
DROP INDEX verifications_open_idx;
DROP INDEX verifications_account_status_created_idx;
DROP INDEX verifications_updated_idx;
DROP INDEX verifications_created_idx;
CREATE INDEX verifications_created_idx ON verifications (created_at);

-- When the verification became open; NULL once it is completed or refunded (the two final
-- statuses, `verification_is_open`). Written by the statements that insert, complete and
-- refund (`store::verifications`, `store::ledger`); the sweeper clears any it finds on a final
-- row (a release before this one, still running during a rolling deploy, does not clear it),
-- and `namaskah check` holds it to the status (invariant open_since_matches_status).
ALTER TABLE verifications ADD COLUMN open_since timestamptz;
UPDATE verifications SET open_since = created_at WHERE verification_is_open(status);
ALTER TABLE verifications ALTER COLUMN open_since SET DEFAULT now();
CREATE INDEX verifications_open_since_idx ON verifications (open_since)
    WHERE open_since IS NOT NULL;

-- The same for a webhook delivery, updated when an attempt is claimed and when it ends:
-- its endpoint index held `status` and `updated_at`. Sending again what failed for an
-- endpoint since a time (`webhook_messages::recover`) and the dashboard's per-endpoint
-- figures find an endpoint's deliveries by creation time instead.
DROP INDEX webhook_deliveries_endpoint_idx;
CREATE INDEX webhook_deliveries_endpoint_created_idx ON webhook_deliveries (endpoint_id, created_at);

-- Room on each page for the new versions of its rows, so that an update that changes no
-- indexed column stays on its page (HOT) and writes no index entry. Applies to pages
-- written from now on; `VACUUM FULL verifications` rewrites the old ones, at a quiet hour.
ALTER TABLE verifications SET (fillfactor = 80);
ALTER TABLE webhook_deliveries SET (fillfactor = 80);

-- 2. What a status change causes — the webhook event with its deliveries and their outbox
-- rows, the usage aggregate, the open counter — is written once per statement from its
-- transition tables, in set-based statements, instead of once per row: a batch of 50
-- completions is now one trigger call and four statements, not 50 calls and 200 statements.
-- It stays a trigger so that every path that changes a status (workers, sweeper, API,
-- operators' scripts) writes the event in the same transaction.
DROP TRIGGER verifications_status_event ON verifications;
DROP TRIGGER verifications_usage_status ON verifications;
DROP TRIGGER verifications_open_count_status ON verifications;
-- The usage of a new verification is counted by the statement that inserts it
-- (`verifications::insert_charged`, the one statement that inserts verifications), like its
-- open count (migration 0018), under the account's row lock that it holds anyway.
DROP TRIGGER verifications_usage_rows ON verifications;
-- Their functions, which nothing else calls (`record_webhook_event` stays: other events use it).
DROP FUNCTION verifications_status_event();
DROP FUNCTION count_usage();

CREATE FUNCTION verification_event_type(status text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE status
        WHEN 'waiting_sms' THEN 'verification.number_assigned'
        WHEN 'completed' THEN 'verification.completed'
        WHEN 'timed_out' THEN 'verification.timed_out'
        WHEN 'cancelled' THEN 'verification.cancelled'
        WHEN 'failed' THEN 'verification.failed'
        WHEN 'refunded' THEN 'verification.refunded'
    END
$$;

-- `histogram` with one more count in each bucket that `buckets` names.
CREATE FUNCTION usage_histogram_add(histogram integer[], buckets integer[]) RETURNS integer[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT array_agg(h.n + coalesce((SELECT count(*) FROM unnest(buckets) AS b WHERE b = h.i), 0)::integer
                     ORDER BY h.i)
    FROM unnest(histogram) WITH ORDINALITY AS h(n, i)
$$;

CREATE FUNCTION verifications_status_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    -- A completion or a refund among the changes: counters and usage move.
    settles boolean;
    -- A change a customer hears about: events are written.
    tells boolean;
BEGIN
    -- Most statements need only some of what follows (a claim for ordering changes no
    -- counter and tells nobody; a sweeper's nudge changes no status): one look at the
    -- changes decides which statements run.
    SELECT coalesce(bool_or(n.status IN ('completed', 'refunded')), false),
           coalesce(bool_or(verification_event_type(n.status) IS NOT NULL), false)
    INTO settles, tells
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.status <> o.status;
    IF NOT (settles OR tells) THEN
        RETURN NULL;
    END IF;

    -- Every statement of this function locks accounts before usage rows, each in key order,
    -- as the order's insert does (account, then its usage row): two batches, or a batch and
    -- an order, never wait for each other in a circle. NO KEY UPDATE, the lock an UPDATE
    -- takes: a plain FOR UPDATE would also conflict with the KEY SHARE locks of foreign-key
    -- checks (every webhook message checks its account), and two batches would deadlock.

    -- The open counter: completions close a verification (a refund's own statement
    -- uncounts it with the credit, migration 0018). No status goes back to open.
    IF settles THEN
        WITH moved AS (
            SELECT n.account_id,
                   sum(verification_is_open(n.status)::integer - verification_is_open(o.status)::integer) AS change
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.status <> o.status AND n.status <> 'refunded'
            GROUP BY n.account_id
            HAVING sum(verification_is_open(n.status)::integer - verification_is_open(o.status)::integer) <> 0
        ), locked AS (
            SELECT a.id, m.change FROM accounts a JOIN moved m ON m.account_id = a.id
            ORDER BY a.id FOR NO KEY UPDATE OF a
        )
        UPDATE accounts a SET open_verifications = a.open_verifications + l.change
        FROM locked l WHERE a.id = l.id;

        -- The usage aggregate: completions with their time to SMS, refunds with their amount.
        WITH settled AS (
            SELECT n.account_id, n.service, (n.created_at AT TIME ZONE 'UTC')::date AS day,
                   count(*) FILTER (WHERE n.status = 'completed') AS completed,
                   count(*) FILTER (WHERE n.status = 'refunded') AS refunded,
                   coalesce(sum(n.price_cents) FILTER (WHERE n.status = 'refunded'), 0) AS refunded_cents,
                   array_agg(usage_bucket(extract(epoch FROM coalesce(n.completed_at, now()) - n.created_at)))
                       FILTER (WHERE n.status = 'completed') AS buckets
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.status <> o.status AND n.status IN ('completed', 'refunded')
            GROUP BY 1, 2, 3
        ), locked AS (
            SELECT u.account_id, u.day, u.service, s.completed, s.refunded, s.refunded_cents, s.buckets
            FROM usage_daily u
            JOIN settled s ON (s.account_id, s.day, s.service) = (u.account_id, u.day, u.service)
            ORDER BY u.account_id, u.day, u.service FOR NO KEY UPDATE OF u
        )
        UPDATE usage_daily u
        SET completed = u.completed + l.completed,
            refunded = u.refunded + l.refunded,
            refunded_cents = u.refunded_cents + l.refunded_cents,
            sms_seconds_histogram = usage_histogram_add(u.sms_seconds_histogram, l.buckets)
        FROM locked l
        WHERE (u.account_id, u.day, u.service) = (l.account_id, l.day, l.service);
    END IF;

    -- The webhook event, one delivery per subscribed endpoint, and the outbox rows that
    -- start the deliveries (what `record_webhook_event` does for one event).
    IF tells THEN
        WITH messages AS (
            INSERT INTO webhook_messages (id, account_id, event_type, payload, trace_id)
            SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), n.account_id,
                   verification_event_type(n.status),
                   jsonb_build_object('type', verification_event_type(n.status),
                                      'timestamp', api_timestamp(now()),
                                      'data', verification_json(n)),
                   n.trace_id
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.status <> o.status AND verification_event_type(n.status) IS NOT NULL
            RETURNING id, account_id, event_type, trace_id
        ), deliveries AS (
            INSERT INTO webhook_deliveries (id, message_id, endpoint_id)
            SELECT gen_random_uuid(), m.id, e.id
            FROM messages m JOIN webhook_endpoints e ON e.account_id = m.account_id
            WHERE e.enabled AND e.deleted_at IS NULL
              AND (cardinality(e.event_types) = 0 OR m.event_type = ANY (e.event_types))
            RETURNING id, message_id, endpoint_id
        )
        INSERT INTO outbox (queue, payload)
        SELECT 'webhooks', deliver_webhook_job(d.id, d.endpoint_id, m.trace_id)
        FROM deliveries d JOIN messages m ON m.id = d.message_id;
    END IF;

    RETURN NULL;
END $$;

CREATE TRIGGER verifications_status_changed
    AFTER UPDATE ON verifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION verifications_status_changed();
