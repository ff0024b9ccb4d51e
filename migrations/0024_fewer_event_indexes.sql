-- Fewer index entries per webhook event (issue 23). Every status change a customer hears
-- about inserts a `webhook_messages` row, and each of its five b-tree indexes took an entry
-- in the same statement: about a third of PostgreSQL's time under load is that insert
-- (docs/benchmarks.md, "Inside the triggers"). Two of the five served only rare readers:
--
-- - `webhook_messages_account_created_idx` (account, created_at DESC, id DESC): an account's
--   messages newest first (`GET /v1/webhook-messages`). The event stream's index (account,
--   xact_id, seq) already orders an account's messages, by the transaction that wrote them
--   and then by insertion: the list now walks it backwards, newest first as before.
-- - `webhook_messages_created_idx` (created_at): the retention job's scan of messages older
--   than its window (`housekeeping::erase_personal_data`), once a day. Messages are appended
--   in time order, so a BRIN index (one summary per 128 pages, kept up as pages fill, not
--   one entry per row) finds the old ranges as well.
DROP INDEX webhook_messages_account_created_idx;
DROP INDEX webhook_messages_created_idx;
CREATE INDEX webhook_messages_created_brin ON webhook_messages USING brin (created_at);
