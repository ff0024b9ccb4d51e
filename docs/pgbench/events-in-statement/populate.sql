INSERT INTO tenants (id, slug, name) VALUES ('00000000-0000-0000-0000-00000000a000', 'bench', 'Bench') ON CONFLICT DO NOTHING;
INSERT INTO accounts (id, tenant_id, email, balance_cents)
SELECT ('00000000-0000-0000-0000-0000000001' || lpad(to_hex(a), 2, '0'))::uuid, '00000000-0000-0000-0000-00000000a000', 'b' || a || '@example.com', 0
FROM generate_series(0, 19) a;
INSERT INTO webhook_endpoints (id, account_id, url, secret)
SELECT ('00000000-0000-0000-0000-0000000002' || lpad(to_hex(a), 2, '0'))::uuid, ('00000000-0000-0000-0000-0000000001' || lpad(to_hex(a), 2, '0'))::uuid, 'http://127.0.0.1:1/', 'whsec_x'
FROM generate_series(0, 19) a;
INSERT INTO verifications (id, account_id, service, country, price_cents, status, provider, provider_order_id, phone_number, deadline, trace_id, number_assigned_at, open_since)
SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(n), 12, '0'))::uuid,
       ('00000000-0000-0000-0000-0000000001' || lpad(to_hex(n % 20), 2, '0'))::uuid,
       'telegram', 'us', 50, 'waiting_sms', 'sim', 'o' || n, '+1555' || lpad(n::text, 7, '0'), now() + interval '1 day', 'trace' || n, now(), now()
FROM generate_series(0, 499999) n;
UPDATE accounts a SET open_verifications = (SELECT count(*) FROM verifications v WHERE v.account_id = a.id);
