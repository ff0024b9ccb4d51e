-- Subscription tiers paid monthly from the wallet.
--
-- Upgrades take effect at once and are prorated: the account pays the difference between
-- the two monthly prices for the part of the period that is left, and the period's end
-- stays. Downgrades take effect at the end of the paid period (`pending_tier`); nothing is
-- refunded. The scheduler's `renewals` job charges the next period; an account that cannot
-- pay falls back to `free` and is told by an `account.subscription_downgraded` event.
-- Every charge is a `subscription` ledger row whose reference is unique, so a repeated
-- request or a renewal run twice charges once.

ALTER TABLE tiers ADD COLUMN monthly_price_cents bigint NOT NULL DEFAULT 0
    CHECK (monthly_price_cents >= 0);
UPDATE tiers SET monthly_price_cents = CASE tier
    WHEN 'free' THEN 0 WHEN 'basic' THEN 1900 WHEN 'pro' THEN 9900 ELSE 49900 END;

ALTER TABLE accounts
    ADD COLUMN tier_renews_at timestamptz,
    ADD COLUMN pending_tier text REFERENCES tiers (tier);

CREATE INDEX accounts_renewal_due_idx ON accounts (tier_renews_at)
    WHERE tier_renews_at IS NOT NULL;

ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
    CHECK (kind IN ('charge', 'refund', 'top_up', 'adjustment', 'referral_bonus', 'subscription'));
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_subscription_negative
    CHECK (kind <> 'subscription' OR amount_cents < 0);
CREATE UNIQUE INDEX ledger_entries_one_subscription_charge_per_reference
    ON ledger_entries (reference) WHERE kind = 'subscription';
