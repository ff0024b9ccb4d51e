WITH events AS (
    SELECT g, jsonb_build_object('type', 'verification.completed', 'timestamp', api_timestamp(now()),
        'data', jsonb_build_object('id', 'ver_' || md5(random()::text), 'status', 'completed', 'service', 'telegram',
            'country', 'us', 'price_cents', 50, 'phone_number', '+15550000000', 'code', '123456',
            'sms_text', 'Your code is 123456', 'expires_at', api_timestamp(now()), 'cancel_requested', false,
            'failure_reason', null, 'created_at', api_timestamp(now()), 'updated_at', api_timestamp(now()),
            'completed_at', api_timestamp(now()), 'refunded_at', null)) AS payload
    FROM generate_series(1, 8) g
), batch AS (
    INSERT INTO event_batches (account_ids, event_types, payloads, trace_ids)
    SELECT array_agg('00000000-0000-0000-0000-000000000001'::uuid), array_agg('verification.completed'::text),
           jsonb_agg(payload), array_agg('trace'::text)
    FROM events
    RETURNING id
), deliveries AS (
    INSERT INTO delivery_batches (event_batch, endpoint_ids)
    SELECT b.id, ARRAY(SELECT e.id FROM webhook_endpoints e WHERE e.account_id = '00000000-0000-0000-0000-000000000001' AND e.enabled)
    FROM batch b
    RETURNING id
)
INSERT INTO outbox (queue, payload, sent_at)
SELECT 'webhooks', jsonb_build_object('type', 'deliver_webhook_batch', 'batch', d.id), now() FROM deliveries d;
