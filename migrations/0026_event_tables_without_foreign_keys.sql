-- The webhook event tables without foreign keys (issue 23).
--
-- Every verification writes about two webhook events, and each event row checked a foreign
-- key: the message its account, the delivery its message and its endpoint, the attempt its
-- delivery. A check is a query of its own, run once per row after the statement, and it
-- locks the parent row FOR KEY SHARE, which writes WAL. The message's check locks the
-- account row that the order batches hold while they debit it, so both transactions share
-- the lock through a MultiXact. In the pipeline that was 120,000 checks for 15,000
-- verifications: 73 % of all foreign-key checks, and about 9 % of all WAL records
-- (docs/benchmarks.md, "The event tables without foreign keys").
--
-- The checks guarded against nothing that can happen:
-- - nothing deletes an account, a message, a delivery or an endpoint (an account is erased
--   in place, an endpoint is soft-deleted; only attempts are deleted, and they are the
--   children);
-- - each event row is written by a statement that reads its parent: a message from the
--   changed verification (whose own key to its account stays), a delivery from the message
--   just inserted and the endpoints it joins, an attempt from the delivery its claim
--   returned.
-- `namaskah check` (`store::invariants`, "webhook_rows_have_their_parents") now looks for
-- orphans instead, as the scheduler's invariant job does every run.
--
-- The keys that protect money and the verification itself stay: ledger entries, the
-- verification's account, and the rest.
ALTER TABLE webhook_messages DROP CONSTRAINT webhook_messages_account_id_fkey;
ALTER TABLE webhook_deliveries
    DROP CONSTRAINT webhook_deliveries_message_id_fkey,
    DROP CONSTRAINT webhook_deliveries_endpoint_id_fkey;
ALTER TABLE webhook_attempts DROP CONSTRAINT webhook_attempts_delivery_id_fkey;
