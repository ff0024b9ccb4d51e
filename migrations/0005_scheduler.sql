-- The scheduler: a record of every job run, and what the periodic jobs need on other tables.

CREATE TABLE scheduler_runs (
    id           bigserial PRIMARY KEY,
    job          text NOT NULL,
    -- The cron tick the run belongs to; a tick runs at most once, whoever leads.
    tick         timestamptz NOT NULL,
    instance     text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    outcome      text NOT NULL DEFAULT 'running'
                 CHECK (outcome IN ('running', 'succeeded', 'failed', 'skipped', 'abandoned')),
    error        text,
    rows_touched bigint,
    CONSTRAINT scheduler_runs_once_per_tick UNIQUE (job, tick)
);

CREATE INDEX scheduler_runs_recent_idx ON scheduler_runs (started_at DESC);

-- When the sweeper last re-sent a message for this verification, so that running it again
-- soon after sends nothing more.
ALTER TABLE verifications ADD COLUMN last_nudged_at timestamptz;
-- When the retention purge erased this verification's SMS, code and number.
ALTER TABLE verifications ADD COLUMN personal_data_erased_at timestamptz;

-- Low-balance notices: one `account.low_balance` per crossing below the threshold.
ALTER TABLE accounts ADD COLUMN low_balance_threshold_cents bigint NOT NULL DEFAULT 100
    CHECK (low_balance_threshold_cents >= 0);
ALTER TABLE accounts ADD COLUMN low_balance_notified boolean NOT NULL DEFAULT false;

-- The sweeper's scan of sent outbox history for the retention purge.
CREATE INDEX outbox_sent_idx ON outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX webhook_messages_created_idx ON webhook_messages (created_at);
CREATE INDEX verifications_created_idx ON verifications (created_at) WHERE personal_data_erased_at IS NULL;
