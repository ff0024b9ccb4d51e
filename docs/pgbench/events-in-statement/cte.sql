\set k :client_id * 100000 + :i * 8
\set i :i + 1
WITH completed AS (
  UPDATE verifications SET status = 'completed', code = '123456', sms_text = 'Your code is 123456',
         completed_at = now(), updated_at = now(), open_since = NULL
  FROM unnest(ARRAY(SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(g), 12, '0'))::uuid FROM generate_series(:k, :k + 7) g)) AS w(wanted_id)
  WHERE id = w.wanted_id AND status = ANY('{waiting_sms}')
  RETURNING verifications AS row
), locked AS (
  SELECT a.id, m.change FROM accounts a
  JOIN (SELECT (row).account_id, -count(*) AS change FROM completed GROUP BY 1) m ON m.account_id = a.id
  ORDER BY a.id FOR NO KEY UPDATE OF a
), counted AS (
  UPDATE accounts a SET open_verifications = a.open_verifications + l.change FROM locked l WHERE a.id = l.id
), messages AS (
  INSERT INTO webhook_messages (id, account_id, event_type, payload, trace_id)
  SELECT 'msg_' || replace(time_ordered_uuid()::text, '-', ''), (row).account_id,
         verification_event_type((row).status),
         jsonb_build_object('type', verification_event_type((row).status), 'timestamp', api_timestamp(now()),
                            'data', verification_json(row)),
         (row).trace_id
  FROM completed
  RETURNING id, account_id, event_type, trace_id
), deliveries AS (
  INSERT INTO webhook_deliveries (id, message_id, endpoint_id)
  SELECT time_ordered_uuid(), m.id, e.id
  FROM messages m JOIN webhook_endpoints e ON e.account_id = m.account_id
  WHERE e.enabled AND e.deleted_at IS NULL
    AND (cardinality(e.event_types) = 0 OR m.event_type = ANY (e.event_types))
  RETURNING id, message_id, endpoint_id
), outboxed AS (
  INSERT INTO outbox (queue, payload)
  SELECT 'webhooks', deliver_webhook_job(d.id, d.endpoint_id, m.trace_id)
  FROM deliveries d JOIN messages m ON m.id = d.message_id
)
SELECT (row).* FROM completed;
