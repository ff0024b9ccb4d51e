\set b random(0, 49999)
WITH batch AS (
    SELECT array_agg(delivery_id) AS ids FROM bench_ids WHERE n BETWEEN :b * 8 AND :b * 8 + 7
), attempt AS (
    INSERT INTO webhook_attempts (delivery_id, attempt, succeeded, status_code, latency_ms, response_excerpt)
    SELECT d, 1, true, 200, 3, '{"ok":true}' FROM batch, unnest(batch.ids) AS d
)
UPDATE webhook_deliveries SET status = 'succeeded', next_attempt_at = NULL, updated_at = now()
WHERE id = ANY ((SELECT ids FROM batch)::uuid[]);
