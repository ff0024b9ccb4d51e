-- Wallet top-ups through Paystack and Stripe, and referral rewards.
--
-- A payment is initialised by the account (pending, with our own `reference`), then
-- confirmed by the provider's signed webhook. Crediting it is one transaction: the payment
-- turns `succeeded`, a `top_up` ledger row and the balance move together, and the referrer's
-- reward (first paid top-up only) is written in the same transaction. Each is unique in the
-- database, so a webhook delivered three times credits once.

CREATE TABLE payments (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts (id),
    provider     text NOT NULL CHECK (provider IN ('paystack', 'stripe')),
    reference    text NOT NULL,
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    currency     text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'succeeded', 'failed')),
    checkout_url text,
    failure      text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    succeeded_at timestamptz,
    UNIQUE (provider, reference),
    CHECK ((status = 'succeeded') = (succeeded_at IS NOT NULL))
);

CREATE INDEX payments_account_idx ON payments (account_id, created_at DESC);

-- Every webhook call received, accepted or refused: the audit trail of money coming in.
-- The body is not kept (it holds the payer's details); its SHA-256 identifies it.
CREATE TABLE payment_notices (
    id          bigserial PRIMARY KEY,
    provider    text NOT NULL,
    event_id    text,
    event_type  text,
    reference   text,
    outcome     text NOT NULL CHECK (outcome IN ('credited', 'duplicate', 'refused')),
    reason      text,
    body_sha256 bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX payment_notices_reference_idx ON payment_notices (provider, reference);

ALTER TABLE ledger_entries ADD COLUMN payment_id uuid REFERENCES payments (id);
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_one_per_kind_and_payment
    UNIQUE (kind, payment_id);
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
    CHECK (kind IN ('charge', 'refund', 'top_up', 'adjustment', 'referral_bonus'));
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_referral_bonus_positive
    CHECK (kind <> 'referral_bonus' OR amount_cents > 0);
-- One reward per referee, whatever happens: its reference is `referral:<referee id>`.
CREATE UNIQUE INDEX ledger_entries_one_referral_bonus_per_referee
    ON ledger_entries (reference) WHERE kind = 'referral_bonus';

-- Referrals: every account has a code to hand out; an account may be referred once.
ALTER TABLE accounts
    ADD COLUMN referral_code text,
    ADD COLUMN referred_by uuid REFERENCES accounts (id),
    ADD COLUMN referred_at timestamptz,
    ADD CONSTRAINT accounts_not_self_referred CHECK (referred_by <> id);
UPDATE accounts SET referral_code = upper(substr(md5(id::text || random()::text), 1, 10));
ALTER TABLE accounts
    ALTER COLUMN referral_code SET DEFAULT upper(substr(md5(gen_random_uuid()::text), 1, 10)),
    ALTER COLUMN referral_code SET NOT NULL,
    ADD CONSTRAINT accounts_referral_code_key UNIQUE (referral_code);
CREATE INDEX accounts_referred_by_idx ON accounts (referred_by) WHERE referred_by IS NOT NULL;

-- The referrer's reward per tier (of the referrer), in cents; 0 pays nothing.
ALTER TABLE tiers ADD COLUMN referral_reward_cents bigint NOT NULL DEFAULT 0
    CHECK (referral_reward_cents >= 0);
UPDATE tiers SET referral_reward_cents = CASE tier
    WHEN 'free' THEN 100 WHEN 'basic' THEN 200 WHEN 'pro' THEN 500 ELSE 1000 END;
