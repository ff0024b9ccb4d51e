WITH events AS (
    SELECT g, jsonb_build_object('type', 'verification.completed', 'timestamp', api_timestamp(now()),
        'data', jsonb_build_object('id', 'ver_' || md5(random()::text), 'status', 'completed', 'service', 'telegram',
            'country', 'us', 'price_cents', 50, 'phone_number', '+15550000000', 'code', '123456',
            'sms_text', 'Your code is 123456', 'expires_at', api_timestamp(now()), 'cancel_requested', false,
            'failure_reason', null, 'created_at', api_timestamp(now()), 'updated_at', api_timestamp(now()),
            'completed_at', api_timestamp(now()), 'refunded_at', null)) AS payload
    FROM generate_series(1, 8) g
), messages AS (
    INSERT INTO webhook_messages (id, account_id, event_type, payload, trace_id)
    SELECT 'msg_' || replace(time_ordered_uuid()::text, '-', ''), '00000000-0000-0000-0000-000000000001',
           'verification.completed', payload, 'trace'
    FROM events
    RETURNING id, account_id, event_type, trace_id
), deliveries AS (
    INSERT INTO webhook_deliveries (id, message_id, endpoint_id)
    SELECT time_ordered_uuid(), m.id, e.id
    FROM messages m JOIN webhook_endpoints e ON e.account_id = m.account_id
    WHERE e.enabled AND e.deleted_at IS NULL
      AND (cardinality(e.event_types) = 0 OR m.event_type = ANY (e.event_types))
    RETURNING id, message_id, endpoint_id
)
INSERT INTO outbox (queue, payload, sent_at)
SELECT 'webhooks', deliver_webhook_job(d.id, d.endpoint_id, m.trace_id), now()
FROM deliveries d JOIN messages m ON m.id = d.message_id;
