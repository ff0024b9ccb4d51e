-- Account tiers (what each may do) and the notifications that keep the API's caches honest.

CREATE TABLE tiers (
    tier                   text PRIMARY KEY CHECK (tier IN ('free', 'basic', 'pro', 'enterprise')),
    -- GCRA: a sustained rate and a burst on top of it, per API key.
    requests_per_second    integer NOT NULL CHECK (requests_per_second BETWEEN 1 AND 100000),
    burst                  integer NOT NULL CHECK (burst BETWEEN 1 AND 100000),
    -- The catalogue price times this, in percent (90 = 10 % off), rounded to a cent.
    price_multiplier_pct   integer NOT NULL CHECK (price_multiplier_pct BETWEEN 1 AND 1000),
    -- Verifications not yet completed or refunded that one account may have at once.
    max_open_verifications integer NOT NULL CHECK (max_open_verifications >= 1),
    -- Items one bulk request may carry (the API's own ceiling is 100).
    max_batch_items        integer NOT NULL CHECK (max_batch_items BETWEEN 1 AND 100)
);

INSERT INTO tiers VALUES
    ('free',         5,    10, 100,     5,  10),
    ('basic',       20,    40, 100,    50,  50),
    ('pro',        100,   200,  95,   500, 100),
    ('enterprise', 1000, 2000,  90, 10000, 100);

ALTER TABLE accounts
    ADD CONSTRAINT accounts_tier_fkey FOREIGN KEY (tier) REFERENCES tiers (tier);

-- Counting an account's open verifications must not scan its history.
CREATE INDEX verifications_open_by_account_idx ON verifications (account_id)
    WHERE status NOT IN ('completed', 'refunded');

-- Every API process caches API keys, tiers and the catalogue, and listens on this channel
-- to drop what changed. The payload names what to drop.
CREATE FUNCTION notify_cache_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('namaskah_cache', TG_ARGV[0]);
    RETURN NULL;
END $$;

CREATE TRIGGER services_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON services
    FOR EACH STATEMENT EXECUTE FUNCTION notify_cache_change('services');
CREATE TRIGGER tiers_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tiers
    FOR EACH STATEMENT EXECUTE FUNCTION notify_cache_change('tiers');
-- A changed tier changes what every key of the account may do.
CREATE TRIGGER account_tier_changed AFTER UPDATE OF tier ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION notify_cache_change('api_keys');

-- A revoked key is dropped by its hash, so the other keys stay cached.
CREATE FUNCTION notify_api_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('namaskah_cache', 'api_key:' || encode(NEW.key_hash, 'hex'));
    RETURN NULL;
END $$;

CREATE TRIGGER api_key_changed AFTER UPDATE ON api_keys
    FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
                       OR OLD.scopes IS DISTINCT FROM NEW.scopes)
    EXECUTE FUNCTION notify_api_key_change();
