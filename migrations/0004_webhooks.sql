-- Webhooks to customers: endpoints, the events (messages) sent to them, one delivery per
-- message and endpoint, and every attempt.

CREATE TABLE webhook_endpoints (
    id                         uuid PRIMARY KEY,
    account_id                 uuid NOT NULL REFERENCES accounts (id),
    url                        text NOT NULL CHECK (length(url) BETWEEN 8 AND 2048),
    description                text NOT NULL DEFAULT '',
    -- Empty: every event type.
    event_types                text[] NOT NULL DEFAULT '{}',
    enabled                    boolean NOT NULL DEFAULT true,
    -- `whsec_` + base64 of 32 random bytes. Kept to sign; shown to the owner only when made.
    secret                     text NOT NULL,
    -- After a rotation the old secret keeps signing (a second signature) until it expires.
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    -- Start of the current run of failed attempts; cleared by any success.
    failing_since              timestamptz,
    disabled_at                timestamptz,
    disabled_reason            text,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    deleted_at                 timestamptz
);

CREATE INDEX webhook_endpoints_account_idx ON webhook_endpoints (account_id) WHERE deleted_at IS NULL;

CREATE TABLE webhook_messages (
    -- `msg_…`: the `webhook-id` header, the same on every attempt so receivers can deduplicate.
    id          text PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id),
    event_type  text NOT NULL,
    -- The exact body sent: {"type", "timestamp", "data"}.
    payload     jsonb NOT NULL,
    trace_id    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_messages_account_created_idx ON webhook_messages (account_id, created_at DESC, id DESC);

CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,
    message_id      text NOT NULL REFERENCES webhook_messages (id),
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    -- Attempts made in the current series; a replay starts a new series at 0.
    attempts        integer NOT NULL DEFAULT 0,
    last_attempt_at timestamptz,
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- One delivery per message and endpoint: a duplicate event cannot deliver twice.
    CONSTRAINT webhook_deliveries_one_per_endpoint UNIQUE (message_id, endpoint_id)
);

CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, status, updated_at);

CREATE TABLE webhook_attempts (
    id               bigserial PRIMARY KEY,
    delivery_id      uuid NOT NULL REFERENCES webhook_deliveries (id),
    attempt          integer NOT NULL,
    attempted_at     timestamptz NOT NULL DEFAULT now(),
    succeeded        boolean NOT NULL,
    status_code      integer,
    latency_ms       integer NOT NULL,
    -- The first 1 KiB of the response body.
    response_excerpt text,
    error            text
);

CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

-- Timestamps as the API writes them: UTC, microseconds, `Z`.
CREATE FUNCTION api_timestamp(ts timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- A verification as the API returns it (api `VerificationView`; a test keeps the two equal).
CREATE FUNCTION verification_json(v verifications) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', v.id,
        'status', v.status,
        'service', v.service,
        'country', v.country,
        'price_cents', v.price_cents,
        'phone_number', v.phone_number,
        'code', v.code,
        'sms_text', v.sms_text,
        'expires_at', api_timestamp(v.deadline),
        'cancel_requested', v.cancel_requested_at IS NOT NULL,
        'failure_reason', v.failure_reason,
        'created_at', api_timestamp(v.created_at),
        'updated_at', api_timestamp(v.updated_at),
        'completed_at', api_timestamp(v.completed_at),
        'refunded_at', api_timestamp(v.refunded_at))
$$;

-- The queue message that starts (or restarts) a delivery; `Job::DeliverWebhook` in Rust.
CREATE FUNCTION deliver_webhook_job(p_delivery uuid, p_endpoint uuid, p_trace text)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('type', 'deliver_webhook', 'delivery_id', p_delivery,
                              'endpoint_id', p_endpoint, 'attempt', 1, 'trace_id', p_trace)
$$;

-- Records an event for an account: the message, one delivery per subscribed endpoint, and the
-- outbox rows that start the deliveries. Called in the transaction of the change it reports.
CREATE FUNCTION record_webhook_event(p_account uuid, p_type text, p_data jsonb, p_trace text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    message_id text := 'msg_' || replace(gen_random_uuid()::text, '-', '');
BEGIN
    INSERT INTO webhook_messages (id, account_id, event_type, payload, trace_id)
    VALUES (message_id, p_account, p_type,
            jsonb_build_object('type', p_type, 'timestamp', api_timestamp(now()), 'data', p_data),
            p_trace);
    WITH deliveries AS (
        INSERT INTO webhook_deliveries (id, message_id, endpoint_id)
        SELECT gen_random_uuid(), message_id, e.id
        FROM webhook_endpoints e
        WHERE e.account_id = p_account AND e.enabled AND e.deleted_at IS NULL
          AND (cardinality(e.event_types) = 0 OR p_type = ANY (e.event_types))
        RETURNING id, endpoint_id
    )
    INSERT INTO outbox (queue, payload)
    SELECT 'webhooks', deliver_webhook_job(id, endpoint_id, p_trace) FROM deliveries;
    RETURN message_id;
END $$;

-- Every change of a verification's status that a customer hears about writes its event in
-- the same transaction, whichever code path made the change.
CREATE FUNCTION verifications_status_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    event_type text := CASE NEW.status
        WHEN 'waiting_sms' THEN 'verification.number_assigned'
        WHEN 'completed' THEN 'verification.completed'
        WHEN 'timed_out' THEN 'verification.timed_out'
        WHEN 'cancelled' THEN 'verification.cancelled'
        WHEN 'failed' THEN 'verification.failed'
        WHEN 'refunded' THEN 'verification.refunded'
    END;
BEGIN
    IF event_type IS NOT NULL THEN
        PERFORM record_webhook_event(NEW.account_id, event_type, verification_json(NEW), NEW.trace_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER verifications_status_event
    AFTER UPDATE OF status ON verifications
    FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status)
    EXECUTE FUNCTION verifications_status_event();
