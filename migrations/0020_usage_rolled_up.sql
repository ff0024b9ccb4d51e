-- Usage off the hot path (issue 23). Until now every order upserted its account's usage row
-- for the day and every completion or refund updated it again (migrations 0013, 0019): one
-- shared row per account, service and day that every verification of that account locked,
-- and a histogram rebuilt by a SQL function that PostgreSQL plans anew on each call (a tenth
-- of the status trigger's time under load).
--
-- Now the verifications are the record, and a day's usage is counted once, when it can no
-- longer change:
-- - `usage_daily` holds the days up to `usage_rollup.closed_through`, rolled up by the
--   scheduler's `usage_rollup` job (`roll_up_usage()`), which closes a day once it is over
--   and no verification created on or before it is still open (a day's figures change only
--   while one of its verifications can still settle);
-- - the days after it are counted from `verifications` when they are read;
-- - `usage_by_day` is the union of the two, what every reader reads: exact at the moment it
--   is read, however late the job runs.
-- Verifications are never deleted (retention erases personal data and keeps the rows), so the
-- open days can always be counted from them.

CREATE TABLE usage_rollup (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- The last day (UTC) whose usage is in `usage_daily`.
    closed_through date NOT NULL
);

-- The last day that can be closed now: over for an hour (an order's transaction that began
-- before midnight has committed by then), and before the creation day of the oldest open
-- verification (found through `verifications_open_since_idx`).
CREATE FUNCTION usage_closable_through() RETURNS date
LANGUAGE sql STABLE AS $$
    SELECT least(((now() - interval '1 hour') AT TIME ZONE 'UTC')::date - 1,
                 (SELECT (min(created_at) AT TIME ZONE 'UTC')::date - 1
                  FROM verifications WHERE open_since IS NOT NULL))
$$;

-- The histogram of times to SMS from a group's buckets (1-based, as `usage_bucket`) and
-- their counts: one count per bound of `usage_bucket_bounds()`.
CREATE FUNCTION usage_histogram(buckets integer[], counts bigint[]) RETURNS integer[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT array_agg(coalesce((SELECT sum(c) FROM unnest(buckets, counts) AS x(b, c)
                               WHERE x.b = i), 0)::integer ORDER BY i)
    FROM generate_subscripts(usage_bucket_bounds(), 1) AS i
$$;

-- What every reader of usage reads: the closed days as rolled up, the others counted from
-- the verifications created since (a reader's `account_id = …` reaches that scan and its
-- index; the mark is read by a sub-select so that it bounds the index scan too). `width_bucket` finds a completion's bucket without a function call per row (it
-- counts from 0 where `usage_bucket` counts from 1; both put a time below the first bound in
-- the first bucket).
CREATE VIEW usage_by_day AS
SELECT u.account_id, u.service, u.day, u.verifications, u.completed, u.refunded,
       u.spend_cents, u.refunded_cents, u.sms_seconds_histogram
FROM usage_daily u
WHERE u.day <= (SELECT closed_through FROM usage_rollup)
UNION ALL
SELECT g.account_id, g.service, g.day, sum(g.n)::integer, sum(g.completed)::integer,
       sum(g.refunded)::integer, sum(g.spend_cents)::bigint, sum(g.refunded_cents)::bigint,
       usage_histogram(coalesce(array_agg(g.bucket) FILTER (WHERE g.bucket IS NOT NULL), '{}'),
                       coalesce(array_agg(g.completed) FILTER (WHERE g.bucket IS NOT NULL), '{}'))
FROM (
    SELECT v.account_id, v.service, (v.created_at AT TIME ZONE 'UTC')::date AS day,
           count(*) AS n,
           count(*) FILTER (WHERE v.status = 'completed') AS completed,
           count(*) FILTER (WHERE v.status = 'refunded') AS refunded,
           sum(v.price_cents) AS spend_cents,
           coalesce(sum(v.price_cents) FILTER (WHERE v.status = 'refunded'), 0) AS refunded_cents,
           CASE WHEN v.status = 'completed' AND v.completed_at IS NOT NULL THEN
               least(width_bucket(extract(epoch FROM v.completed_at - v.created_at)::float8,
                                  usage_bucket_bounds()::float8[]) + 1,
                     cardinality(usage_bucket_bounds()))
           END AS bucket
    FROM verifications v
    WHERE v.created_at >= (SELECT (closed_through + 1)::timestamp AT TIME ZONE 'UTC' FROM usage_rollup)
    GROUP BY 1, 2, 3, bucket
) g
GROUP BY 1, 2, 3;

-- Closes every day that can be closed: its usage into `usage_daily`, the mark moved on, in
-- one transaction under the mark's row lock, so two schedulers never count a day twice.
-- Returns the number of days closed. Idempotent: a day already closed is not counted again.
CREATE FUNCTION roll_up_usage() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    was date;
    now_through date;
BEGIN
    SELECT closed_through INTO was FROM usage_rollup FOR UPDATE;
    now_through := usage_closable_through();
    IF now_through <= was THEN
        RETURN 0;
    END IF;
    INSERT INTO usage_daily (account_id, service, day, verifications, completed, refunded,
                             spend_cents, refunded_cents, sms_seconds_histogram)
    SELECT c.account_id, c.service, c.day, c.verifications, c.completed, c.refunded,
           c.spend_cents, c.refunded_cents, c.sms_seconds_histogram
    FROM usage_by_day c
    WHERE c.day > was AND c.day <= now_through
    ON CONFLICT (account_id, day, service) DO UPDATE
    SET verifications = EXCLUDED.verifications, completed = EXCLUDED.completed,
        refunded = EXCLUDED.refunded, spend_cents = EXCLUDED.spend_cents,
        refunded_cents = EXCLUDED.refunded_cents,
        sms_seconds_histogram = EXCLUDED.sms_seconds_histogram;
    UPDATE usage_rollup SET closed_through = now_through;
    RETURN now_through - was;
END $$;

-- The existing counts were exact (kept by the triggers until now): the days that can be
-- closed keep theirs; the others are counted from the verifications from now on.
INSERT INTO usage_rollup (closed_through)
SELECT usage_closable_through();
DELETE FROM usage_daily WHERE day > (SELECT closed_through FROM usage_rollup);


-- The status trigger without the usage statement (the rest as in migration 0019).
CREATE OR REPLACE FUNCTION verifications_status_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    -- A completion among the changes: the open counter moves.
    settles boolean;
    -- A change a customer hears about: events are written.
    tells boolean;
BEGIN
    -- Most statements need only some of what follows (a claim for ordering changes no
    -- counter and tells nobody; a sweeper's nudge changes no status): one look at the
    -- changes decides which statements run.
    SELECT coalesce(bool_or(n.status = 'completed'), false),
           coalesce(bool_or(verification_event_type(n.status) IS NOT NULL), false)
    INTO settles, tells
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.status <> o.status;
    IF NOT (settles OR tells) THEN
        RETURN NULL;
    END IF;

    -- Accounts are locked in key order, as the order's insert does: two batches, or a batch
    -- and an order, never wait for each other in a circle. NO KEY UPDATE, the lock an UPDATE
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

DROP FUNCTION usage_histogram_add(integer[], integer[]);
