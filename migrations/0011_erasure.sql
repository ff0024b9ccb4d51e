-- GDPR erasure: an erased account keeps its id, its ledger and its payments (accounting
-- needs them, and they hold no personal data), and loses everything that identifies a
-- person. `erased_at` says when; an erased account can no longer authenticate.
ALTER TABLE accounts ADD COLUMN erased_at timestamptz;
