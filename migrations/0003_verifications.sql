-- Verifications, the money that moves for them, and the messages their changes cause.

CREATE TABLE verifications (
    id                  uuid PRIMARY KEY,
    account_id          uuid NOT NULL REFERENCES accounts (id),
    service             text NOT NULL,
    country             text NOT NULL,
    price_cents         bigint NOT NULL CHECK (price_cents > 0),
    status              text NOT NULL DEFAULT 'pending' CHECK (status IN (
                            'pending', 'ordering', 'waiting_sms', 'completed',
                            'timed_out', 'cancelled', 'failed', 'refunded')),
    -- The ordering attempt that holds the row, and its claim: only the holder of the claim
    -- may record the number, and a claim older than the ordering lease may be taken over
    -- (its worker died mid-purchase).
    order_attempts      integer NOT NULL DEFAULT 0,
    ordering_claim      uuid,
    ordering_claimed_at timestamptz,
    provider            text,
    provider_order_id   text,
    phone_number        text,
    code                text,
    sms_text            text,
    failure_reason      text,
    -- When the SMS must have arrived; set when the number is assigned.
    deadline            timestamptz,
    cancel_requested_at timestamptz,
    trace_id            text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    number_assigned_at  timestamptz,
    completed_at        timestamptz,
    refunded_at         timestamptz,
    CHECK (status NOT IN ('waiting_sms', 'completed') OR
           (provider IS NOT NULL AND provider_order_id IS NOT NULL AND deadline IS NOT NULL))
);

-- GET /v1/verifications: an account's verifications, newest first, optionally by status.
CREATE INDEX verifications_account_created_idx ON verifications (account_id, created_at DESC, id DESC);
CREATE INDEX verifications_account_status_created_idx
    ON verifications (account_id, status, created_at DESC, id DESC);
-- The sweeper's scan of unfinished work; terminal rows (the vast majority) are not indexed.
CREATE INDEX verifications_open_idx ON verifications (status, updated_at)
    WHERE status NOT IN ('completed', 'refunded');

CREATE TABLE ledger_entries (
    id              bigserial PRIMARY KEY,
    account_id      uuid NOT NULL REFERENCES accounts (id),
    verification_id uuid REFERENCES verifications (id),
    kind            text NOT NULL CHECK (kind IN ('charge', 'refund', 'top_up', 'adjustment')),
    -- Signed: a charge is negative, a refund or top-up positive.
    amount_cents    bigint NOT NULL CHECK (amount_cents <> 0),
    reference       text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Charged once, refunded at most once: a database fact, not a hope.
    CONSTRAINT ledger_entries_one_per_kind_and_verification UNIQUE (kind, verification_id),
    CHECK ((kind IN ('charge', 'refund')) = (verification_id IS NOT NULL)),
    CHECK (kind <> 'charge' OR amount_cents < 0),
    CHECK (kind NOT IN ('refund', 'top_up') OR amount_cents > 0)
);

CREATE INDEX ledger_entries_account_idx ON ledger_entries (account_id, id);

-- Append-only: history is corrected by new entries, never by editing old ones.
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only';
END $$;

CREATE TRIGGER ledger_entries_no_update_or_delete
    BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();

CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    -- The logical queue (ordering, polling, refund, webhooks) the message is routed to.
    queue      text NOT NULL,
    payload    jsonb NOT NULL,
    -- Published into the delay tier closest to this many milliseconds; 0 = at once.
    delay_ms   integer NOT NULL DEFAULT 0 CHECK (delay_ms >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);

-- The relay's scan: unsent rows in order. Sent rows drop out of the index.
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;

CREATE TABLE idempotency_keys (
    account_id      uuid NOT NULL REFERENCES accounts (id),
    key             text NOT NULL,
    -- SHA-256 of method, path and canonical body: the same key with another body is refused.
    request_hash    bytea NOT NULL,
    state           text NOT NULL CHECK (state IN ('in_progress', 'completed')),
    response_status smallint,
    response_body   bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    PRIMARY KEY (account_id, key)
);

CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
