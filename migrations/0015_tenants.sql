-- White-label tenants: each has its brand, its administrators and its own prices.
-- Accounts already belong to a tenant (0001); keys, webhook endpoints, verifications and
-- payments belong to an account, so every one of them belongs to exactly one tenant.

ALTER TABLE tenants
    ADD COLUMN logo_url       text CHECK (logo_url ~ '^https://[^[:space:]]+$' AND length(logo_url) <= 2048),
    ADD COLUMN primary_colour text CHECK (primary_colour ~ '^#[0-9a-f]{6}$'),
    ADD COLUMN accent_colour  text CHECK (accent_colour ~ '^#[0-9a-f]{6}$'),
    ADD COLUMN support_email  text CHECK (length(support_email) BETWEEN 3 AND 254),
    -- Requests arriving under this host name are the tenant's (public pages, the catalogue).
    ADD COLUMN custom_domain  text UNIQUE
        CHECK (custom_domain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$'),
    ADD CONSTRAINT tenants_name_length CHECK (length(name) BETWEEN 1 AND 100);

-- `tenant_admin` manages the tenant: its brand, its accounts and its prices.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_check
    CHECK (scopes <@ ARRAY['read', 'write', 'admin', 'tenant_admin']::text[]);

-- A tenant administrator lists its accounts, newest first.
CREATE INDEX accounts_tenant_created_idx ON accounts (tenant_id, created_at DESC, id DESC);

-- A tenant's own price for a service in a country replaces the catalogue's for its accounts
-- (the tier's percentage still applies). Where no provider sells it, it sells nothing.
CREATE TABLE tenant_prices (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    service     text NOT NULL CHECK (service ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
    country     text NOT NULL CHECK (country ~ '^[a-z]{2}$'),
    price_cents bigint NOT NULL CHECK (price_cents BETWEEN 1 AND 100000000),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, service, country)
);

-- API processes cache brands and prices; drop them when either changes.
CREATE TRIGGER tenants_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION notify_cache_change('tenants');
CREATE TRIGGER tenant_prices_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenant_prices
    FOR EACH STATEMENT EXECUTE FUNCTION notify_cache_change('tenants');
