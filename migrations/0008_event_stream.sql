-- The event stream (`GET /v2/events`) reads webhook_messages in commit-safe order.
--
-- A stream position must never let a client skip an event that commits late: sequence
-- numbers are handed out at insert, not at commit, so a transaction that started earlier
-- can commit a smaller number after a larger one was already streamed. Each event
-- therefore records its transaction id; the stream only hands out events of transactions
-- older than the oldest one still running (pg_snapshot_xmin), in (transaction, seq) order.
-- Everything before a position is then final, and "after this event" is exact.

ALTER TABLE webhook_messages
    ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN xact_id xid8 NOT NULL DEFAULT pg_current_xact_id();

CREATE INDEX webhook_messages_stream_idx ON webhook_messages (account_id, xact_id, seq);

-- `expand=events` finds a verification's events through webhook_messages_verification_idx
-- (migration 0006), on `payload #>> '{data,id}'`.
