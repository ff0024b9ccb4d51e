INSERT INTO accounts (id, tenant_id, email) SELECT '00000000-0000-0000-0000-000000000001', (SELECT id FROM tenants LIMIT 1), 'bench@example.com';
INSERT INTO webhook_endpoints (id, account_id, url, secret) VALUES ('00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-000000000001', 'http://127.0.0.1:1/', 'whsec_x');
CREATE TABLE event_batches (
    id bigserial PRIMARY KEY,
    account_ids uuid[] NOT NULL,
    event_types text[] NOT NULL,
    payloads jsonb NOT NULL,
    trace_ids text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    xact_id xid8 NOT NULL DEFAULT pg_current_xact_id());
CREATE INDEX ON event_batches USING brin (created_at);
CREATE TABLE delivery_batches (
    id bigserial PRIMARY KEY,
    event_batch bigint NOT NULL REFERENCES event_batches (id),
    endpoint_ids uuid[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now());
