-- Every writer that locks an account row before it updates it locks it FOR UPDATE, and every
-- writer of many accounts' foreign keys takes its key shares in key order.
--
-- The order statement already locks its accounts FOR UPDATE (3fb47f5). The status trigger
-- still locked them FOR NO KEY UPDATE and then updated them, and so deadlocked the same way.
-- A KEY SHARE from another transaction does not conflict with NO KEY UPDATE, so it gets in
-- between the two locks. After it, the UPDATE's lock of its own row queues behind the
-- transactions waiting for the first lock, which wait for it. PostgreSQL breaks that circle
-- after `deadlock_timeout` (1 s) by aborting one of them. The key shares come from
-- foreign-key checks on the account: an idempotent order's claim (`idempotency_keys`), a
-- payment's or a referral's ledger entry. pgbench, completions of one account beside
-- idempotency claims on it: 7 to 9 deadlocks in 10 s before, none after
-- (docs/benchmarks.md, "Completions of one account deadlocked too").
--
-- The trigger's comment said FOR UPDATE would deadlock two batches on the key shares of the
-- webhook messages' foreign key. Migration 0026 dropped that key; no statement that fires
-- this trigger takes a key share on an account any more.
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

    -- The open counter: completions close a verification (a refund's own statement
    -- uncounts it with the credit, migration 0018). No status goes back to open.
    -- Accounts are locked in key order, as the order statement does: two batches, or a batch
    -- and an order, never wait for each other in a circle. FOR UPDATE, not the NO KEY UPDATE
    -- an UPDATE takes: the UPDATE locks each row a second time, and a key share let in
    -- between would queue that second lock behind the batches waiting for the first
    -- (migration 0029).
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
            ORDER BY a.id FOR UPDATE OF a
        )
        UPDATE accounts a SET open_verifications = a.open_verifications + l.change
        FROM locked l WHERE a.id = l.id;
    END IF;

    -- The webhook event, one delivery per subscribed endpoint, and the outbox rows that
    -- start the deliveries (what `record_webhook_event` does for one event).
    IF tells THEN
        WITH messages AS (
            INSERT INTO webhook_messages (id, account_id, event_type, payload, trace_id)
            SELECT 'msg_' || replace(time_ordered_uuid()::text, '-', ''), n.account_id,
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
            SELECT time_ordered_uuid(), m.id, e.id
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

-- The daily roll-up inserts `usage_daily` rows for many accounts in one statement, and each
-- row's foreign-key check takes a key share on its account, in the order the rows were
-- inserted. With the order statement and the trigger locking FOR UPDATE, those key shares
-- now conflict with them: taken in any order, the roll-up could hold B's and wait for A
-- while a batch held A and waited for B. Inserted in key order, it only ever waits for a
-- lower key than any it holds, as the batches do.
CREATE OR REPLACE FUNCTION roll_up_usage() RETURNS integer
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
    ORDER BY c.account_id
    ON CONFLICT (account_id, day, service) DO UPDATE
    SET verifications = EXCLUDED.verifications, completed = EXCLUDED.completed,
        refunded = EXCLUDED.refunded, spend_cents = EXCLUDED.spend_cents,
        refunded_cents = EXCLUDED.refunded_cents,
        sms_seconds_histogram = EXCLUDED.sms_seconds_histogram;
    UPDATE usage_rollup SET closed_through = now_through;
    RETURN now_through - was;
END $$;
