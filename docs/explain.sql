-- EXPLAIN of every hot query, against a database with realistic volume.
-- Regenerate docs/queries.md with:
--   DATABASE_URL=postgres://postgres@127.0.0.1:5432/namaskah_explain ./target/debug/namaskah migrate
--   psql postgres://postgres@127.0.0.1:5432/namaskah_explain -f docs/explain.sql > /tmp/explain.txt
\set QUIET on
\pset pager off

-- Volume: 20,000 accounts, 200,000 verifications (mostly settled), their ledger rows and
-- 100 unsent outbox rows (the relay deletes what it has published).
TRUNCATE idempotency_keys, outbox, ledger_entries, verifications, api_keys, accounts CASCADE;
INSERT INTO accounts (id, tenant_id, email, balance_cents)
SELECT ('00000000-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid,
       '00000000-0000-0000-0000-000000000001', 'user' || n || '@example.com', 1000000
FROM generate_series(1, 20000) n;
INSERT INTO api_keys (id, account_id, prefix, key_hash, scopes)
SELECT gen_random_uuid(), id, 'nmk_' || substr(md5(id::text), 1, 8), sha256(id::text::bytea), ARRAY['read', 'write']
FROM accounts;
INSERT INTO verifications (id, account_id, service, country, price_cents, status, provider,
                           provider_order_id, phone_number, deadline, trace_id, created_at, updated_at)
SELECT gen_random_uuid(),
       ('00000000-0000-0000-0000-' || lpad((1 + n % 200)::text, 12, '0'))::uuid,
       'telegram', 'us', 90,
       (ARRAY['completed', 'completed', 'completed', 'refunded', 'waiting_sms'])[1 + n % 5],
       'simulator', n::text, '+1555' || n, now() - make_interval(secs => n), md5(n::text),
       now() - make_interval(secs => n), now() - make_interval(secs => n)
FROM generate_series(1, 200000) n;
INSERT INTO ledger_entries (account_id, verification_id, kind, amount_cents)
SELECT account_id, id, 'charge', -price_cents FROM verifications;
INSERT INTO outbox (queue, payload)
SELECT 'polling', '{}'::jsonb FROM generate_series(1, 100) n;
ANALYZE;

\echo '### API key lookup (every authenticated request)'
EXPLAIN SELECT k.id, k.account_id, a.tenant_id, k.scopes, k.revoked_at
FROM api_keys k JOIN accounts a ON a.id = k.account_id
WHERE k.key_hash = sha256('00000000-0000-0000-0000-000000000007'::bytea);

\echo '### Catalogue offers for one service and country (every submission)'
EXPLAIN SELECT service, country, provider, provider_product, provider_country, price_cents, sms_timeout_secs
FROM services
WHERE enabled AND provider = ANY(ARRAY['simulator']) AND service = 'telegram' AND country = 'us';

\echo '### Accept: debit, insert, charge and outbox in one statement (every submission)'
EXPLAIN WITH debit AS (
    UPDATE accounts SET balance_cents = balance_cents - 90, open_verifications = open_verifications + 1
    WHERE id = '00000000-0000-0000-0000-000000000007' AND balance_cents >= 90
      AND open_verifications < 10000 RETURNING id
), inserted AS (
    INSERT INTO verifications (id, account_id, service, country, price_cents, trace_id)
    SELECT gen_random_uuid(), debit.id, 'telegram', 'us', 90, 't' FROM debit RETURNING *
), charge AS (
    INSERT INTO ledger_entries (account_id, verification_id, kind, amount_cents)
    SELECT account_id, id, 'charge', -price_cents FROM inserted
), message AS (
    INSERT INTO outbox (queue, payload) SELECT 'ordering', '{}'::jsonb FROM inserted
)
SELECT * FROM inserted;

\echo '### GET /v1/verifications/{id}'
EXPLAIN SELECT * FROM verifications
WHERE id = '0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a00' AND account_id = '00000000-0000-0000-0000-000000000007';

\echo '### GET /v1/verifications (newest first)'
EXPLAIN SELECT * FROM verifications
WHERE account_id = '00000000-0000-0000-0000-000000000007'
ORDER BY created_at DESC, id DESC LIMIT 21 OFFSET 0;

\echo '### GET /v1/verifications?status=waiting_sms'
EXPLAIN SELECT * FROM verifications
WHERE account_id = '00000000-0000-0000-0000-000000000007' AND status = 'waiting_sms'
ORDER BY created_at DESC, id DESC LIMIT 21 OFFSET 0;

\echo '### Ordering claim (every verification)'
EXPLAIN UPDATE verifications SET status = 'ordering', order_attempts = 1, ordering_claim = gen_random_uuid(),
                                 ordering_claimed_at = now(), updated_at = now()
WHERE id = '00000000-0000-0000-0000-000000000001' AND status = ANY(ARRAY['pending', 'ordering'])
  AND (order_attempts < 1 OR ordering_claimed_at IS NULL OR ordering_claimed_at < now() - interval '60 s');

\echo '### Outbox relay: take the oldest unsent rows out (deleted once published)'
EXPLAIN DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT 256 FOR UPDATE SKIP LOCKED)
RETURNING id, queue, payload, delay_ms;

\echo '### Refund: status, ledger row and credit in one statement'
EXPLAIN WITH settled AS (
    UPDATE verifications SET status = 'refunded', refunded_at = now(), updated_at = now()
    WHERE id = '00000000-0000-0000-0000-000000000001' AND status = ANY(ARRAY['timed_out', 'cancelled', 'failed'])
    RETURNING id, account_id, price_cents
), entry AS (
    INSERT INTO ledger_entries (account_id, verification_id, kind, amount_cents)
    SELECT account_id, id, 'refund', price_cents FROM settled
), credit AS (
    UPDATE accounts SET balance_cents = accounts.balance_cents + settled.price_cents,
                        open_verifications = accounts.open_verifications - 1
    FROM settled WHERE accounts.id = settled.account_id
)
SELECT id FROM settled;

\echo '### Open work (sweeper, invariant check)'
EXPLAIN SELECT id FROM verifications
WHERE status NOT IN ('completed', 'refunded') AND updated_at < now() - interval '5 minutes';
