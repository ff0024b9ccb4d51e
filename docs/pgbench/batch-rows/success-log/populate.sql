INSERT INTO accounts (id, tenant_id, email) SELECT '00000000-0000-0000-0000-000000000001', (SELECT id FROM tenants LIMIT 1), 'bench@example.com';
INSERT INTO webhook_endpoints (id, account_id, url, secret) VALUES ('00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-000000000001', 'http://127.0.0.1:1/', 'whsec_x');
INSERT INTO webhook_messages (id, account_id, event_type, payload, trace_id)
SELECT 'msg_' || lpad(g::text, 32, '0'), '00000000-0000-0000-0000-000000000001', 'verification.completed', '{"type":"verification.completed","data":{"id":"x"}}', 't' FROM generate_series(1, 400000) g;
INSERT INTO webhook_deliveries (id, message_id, endpoint_id, attempts, last_attempt_at)
SELECT time_ordered_uuid(), 'msg_' || lpad(g::text, 32, '0'), '00000000-0000-0000-0000-0000000000e1', 1, now() FROM generate_series(1, 400000) g;
INSERT INTO bench_ids SELECT row_number() OVER (ORDER BY id) - 1, id FROM webhook_deliveries;
CREATE TABLE bench_success_batches (
    id bigserial PRIMARY KEY,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    delivery_ids uuid[] NOT NULL,
    status_codes int[] NOT NULL,
    latencies_ms int[] NOT NULL,
    excerpts text[] NOT NULL);
CREATE INDEX ON bench_success_batches USING brin (attempted_at);
ALTER TABLE webhook_deliveries ADD COLUMN success_batch bigint;
