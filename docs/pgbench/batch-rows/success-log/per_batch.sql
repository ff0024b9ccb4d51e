\set b random(0, 49999)
WITH batch AS (
    SELECT array_agg(delivery_id) AS ids FROM bench_ids WHERE n BETWEEN :b * 8 AND :b * 8 + 7
), logged AS (
    INSERT INTO bench_success_batches (delivery_ids, status_codes, latencies_ms, excerpts)
    SELECT ids, array_fill(200, ARRAY[8]), array_fill(3, ARRAY[8]), array_fill('{"ok":true}'::text, ARRAY[8])
    FROM batch
    RETURNING id
)
UPDATE webhook_deliveries SET status = 'succeeded', next_attempt_at = NULL, updated_at = now(),
    success_batch = (SELECT id FROM logged)
WHERE id = ANY ((SELECT ids FROM batch)::uuid[]);
