-- The relay deletes an outbox row once the broker has confirmed its message (issue 12),
-- instead of marking it sent and leaving it for the retention job. Marking wrote a second
-- version of every row and two index entries for it (the primary key and the sent-rows
-- index), and the retention job then deleted it anyway; nothing ever read the sent rows.
-- A row in the outbox is now an unsent message, so the partial indexes have nothing left to
-- tell apart: the relay walks the primary key.
--
-- `sent_at` stays for one release: relays of the previous release, still running during a
-- rolling deploy, mark rows sent, and the retention job deletes what they marked. Drop the
-- column once no such relay can run.
DELETE FROM outbox WHERE sent_at IS NOT NULL;
DROP INDEX outbox_sent_idx;
DROP INDEX outbox_unsent_idx;
