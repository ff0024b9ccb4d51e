\set k :client_id * 100000 + :i * 8
\set i :i + 1
UPDATE verifications SET status = 'completed', code = '123456', sms_text = 'Your code is 123456',
       completed_at = now(), updated_at = now(), open_since = NULL
FROM unnest(ARRAY(SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(g), 12, '0'))::uuid FROM generate_series(:k, :k + 7) g)) AS w(wanted_id)
WHERE id = w.wanted_id AND status = ANY('{waiting_sms}')
RETURNING verifications.*;
