-- The customer web app: a tenant's customers sign in with an e-mail address and a password
-- (and a TOTP code if they turned it on), keep a session, and reset a forgotten password.
--
-- Credentials live beside the account, not on it: the account row changes with every charge
-- and refund, and should stay narrow; most accounts (API integrators) never have a password.

-- Whether the tenant's customers may sign up from the web app themselves (otherwise only
-- the tenant's administrators create accounts, `POST /v1/tenant/accounts`).
ALTER TABLE tenants ADD COLUMN customer_sign_up boolean NOT NULL DEFAULT true;

CREATE TABLE customer_credentials (
    account_id      uuid PRIMARY KEY REFERENCES accounts (id),
    -- argon2id, PHC string format.
    password_hash   text NOT NULL,
    -- Base32 TOTP secret (RFC 6238) once the customer turned two-factor sign-in on.
    totp_secret     text,
    -- The time step of the last accepted code: a code is accepted once.
    totp_last_step  bigint NOT NULL DEFAULT 0,
    failed_sign_ins integer NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customer_sessions (
    -- SHA-256 of the cookie's token; the token itself is never stored.
    token_hash bytea PRIMARY KEY,
    -- Also the session's rate-limit bucket: each session is limited like one API key.
    id         uuid NOT NULL UNIQUE,
    account_id uuid NOT NULL REFERENCES accounts (id),
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
-- Ending every session of an account (password changed or reset, erasure).
CREATE INDEX customer_sessions_account_idx ON customer_sessions (account_id);

CREATE TABLE password_resets (
    -- SHA-256 of the link's token.
    token_hash bytea PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
-- How many links an account was sent lately (at most a few an hour).
CREATE INDEX password_resets_account_idx ON password_resets (account_id, created_at);

-- Signing in finds the account by its e-mail address whatever its case. (The account row is
-- updated with every charge; e-mail addresses do not change then, so updates stay HOT.)
CREATE INDEX accounts_tenant_email_idx ON accounts (tenant_id, lower(email));
