-- One b-tree fewer per webhook attempt (issue 23). Every delivered event writes an attempt
-- row, and the row took an entry in three b-trees: its primary key (`id`), the index that
-- finds a delivery's attempts in order (`delivery_id, id`) and the time index that the
-- dashboard and the history retention scan. The first two hold the same `id`; nothing looks
-- an attempt up by `id` alone (readers reach attempts through their delivery and order them
-- by `id` within it). So the delivery's index becomes the primary key, and the key on `id`
-- alone goes: `id` still comes from its sequence, so it stays unique.
--
-- The unique index is built before the old key is dropped, inside the migration's
-- transaction: the table is locked while it builds (the history retention keeps it to
-- `RETENTION_HISTORY`, seven days by default, of attempts).
CREATE UNIQUE INDEX webhook_attempts_delivery_key ON webhook_attempts (delivery_id, id);
ALTER TABLE webhook_attempts
    DROP CONSTRAINT webhook_attempts_pkey,
    ADD CONSTRAINT webhook_attempts_pkey PRIMARY KEY USING INDEX webhook_attempts_delivery_key;
DROP INDEX webhook_attempts_delivery_idx;
