-- What operators need: failures grouped for error tracking, provider call statistics,
-- dashboard administrators and their sessions, and the append-only audit log.

CREATE TABLE error_groups (
    -- SHA-256 of role, queue, kind and the message with ids and numbers masked.
    fingerprint     text PRIMARY KEY,
    role            text NOT NULL,
    queue           text,
    kind            text NOT NULL,
    -- The latest occurrence, as it happened.
    message         text NOT NULL,
    verification_id uuid,
    trace_id        text,
    occurrences     bigint NOT NULL DEFAULT 1,
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    -- A new occurrence after this reopens the group.
    resolved_at     timestamptz
);

CREATE INDEX error_groups_open_idx ON error_groups (last_seen DESC) WHERE resolved_at IS NULL;

-- Provider calls, counted per process and flushed every few seconds into minute buckets.
CREATE TABLE provider_calls (
    provider        text NOT NULL,
    operation       text NOT NULL,
    minute          timestamptz NOT NULL,
    successes       bigint NOT NULL DEFAULT 0,
    failures        bigint NOT NULL DEFAULT 0,
    last_success_at timestamptz,
    last_failure    text,
    PRIMARY KEY (provider, operation, minute)
);

CREATE TABLE admins (
    id              uuid PRIMARY KEY,
    username        text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,31}$'),
    -- argon2id, PHC string format.
    password_hash   text NOT NULL,
    -- Base32 TOTP secret (RFC 6238).
    totp_secret     text NOT NULL,
    -- The time step of the last accepted code: a code is accepted once.
    totp_last_step  bigint NOT NULL DEFAULT 0,
    failed_logins   integer NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE admin_sessions (
    -- SHA-256 of the cookie's token.
    token_hash   bytea PRIMARY KEY,
    admin_id     uuid NOT NULL REFERENCES admins (id),
    csrf_token   text NOT NULL,
    ip           text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    -- The administrator's username, or the name tried at a failed login.
    actor    text NOT NULL,
    action   text NOT NULL,
    target   text,
    details  jsonb NOT NULL DEFAULT '{}',
    ip       text
);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;

CREATE TRIGGER audit_log_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- The dashboard's verification search.
CREATE INDEX verifications_phone_idx ON verifications (phone_number) WHERE phone_number IS NOT NULL;
CREATE INDEX verifications_updated_idx ON verifications (updated_at DESC);
CREATE INDEX webhook_messages_verification_idx ON webhook_messages ((payload #>> '{data,id}'));
CREATE INDEX webhook_attempts_time_idx ON webhook_attempts (attempted_at);
