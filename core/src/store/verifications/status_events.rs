//! The webhook events of the batched status changes, written by the statement that changes
//! the status (migration 0023).
//!
//! Every other status change has its events written by the status trigger
//! (`verifications_status_changed`, migration 0020); these statements set
//! `namaskah.status_events` for their transaction so that the trigger skips them. The
//! trigger's statement and this one write the same rows: a test keeps them equal.

/// A condition for the `WHERE` of the status-changing `UPDATE`: always true, and it tells
/// the status trigger that this statement writes its own events. An initial plan, run once
/// per statement; a statement that matches no row does not run it, and changes nothing to
/// tell about.
pub(super) const WRITTEN_HERE: &str =
    "(SELECT set_config('namaskah.status_events', 'written', true)) IS NOT NULL";

/// Common table expressions (to follow others after a comma) that write, for every row of
/// `changed` — a CTE of the `UPDATE`, returning the new row as `changed_row` besides
/// `account_id`, `status` and `trace_id` — its event: the message, one delivery per
/// subscribed endpoint, and the outbox rows that start the deliveries.
pub(super) fn ctes(changed: &str) -> String {
    format!(
        "status_messages AS (
             INSERT INTO webhook_messages (id, account_id, event_type, payload, trace_id)
             SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), c.account_id,
                    verification_event_type(c.status),
                    jsonb_build_object('type', verification_event_type(c.status),
                                       'timestamp', api_timestamp(now()),
                                       'data', verification_json(c.changed_row)),
                    c.trace_id
             FROM {changed} c
             WHERE verification_event_type(c.status) IS NOT NULL
             RETURNING id, account_id, event_type, trace_id
         ), status_deliveries AS (
             INSERT INTO webhook_deliveries (id, message_id, endpoint_id)
             SELECT gen_random_uuid(), m.id, e.id
             FROM status_messages m JOIN webhook_endpoints e ON e.account_id = m.account_id
             WHERE e.enabled AND e.deleted_at IS NULL
               AND (cardinality(e.event_types) = 0 OR m.event_type = ANY (e.event_types))
             RETURNING id, message_id, endpoint_id
         ), status_delivery_starts AS (
             INSERT INTO outbox (queue, payload)
             SELECT 'webhooks', deliver_webhook_job(d.id, d.endpoint_id, m.trace_id)
             FROM status_deliveries d JOIN status_messages m ON m.id = d.message_id
         )"
    )
}
