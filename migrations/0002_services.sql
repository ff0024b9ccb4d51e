-- The catalogue: what can be bought, where, from which provider, at what price.

CREATE TABLE services (
    service          text NOT NULL CHECK (service ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
    country          text NOT NULL CHECK (country ~ '^[a-z]{2}$'),
    provider         text NOT NULL,
    -- How the provider names this product and country on its own wire.
    provider_product text NOT NULL,
    provider_country text NOT NULL,
    price_cents      bigint NOT NULL CHECK (price_cents > 0),
    sms_timeout_secs integer NOT NULL CHECK (sms_timeout_secs BETWEEN 10 AND 1800),
    enabled          boolean NOT NULL DEFAULT true,
    PRIMARY KEY (service, country, provider)
);

-- A realistic starting set. The simulator speaks 5SIM's naming, so its rows mirror 5SIM's.
INSERT INTO services (service, country, provider, provider_product, provider_country, price_cents, sms_timeout_secs)
SELECT s.service, c.country, p.provider, s.product, c.fivesim_name,
       -- Price: the service's base price times the country's factor, plus the provider's margin.
       greatest(1, round(s.base_cents * c.factor * p.factor))::bigint,
       s.timeout_secs
FROM (VALUES
        ('telegram',  'telegram',  45, 300),
        ('whatsapp',  'whatsapp',  60, 300),
        ('google',    'google',    35, 240),
        ('facebook',  'facebook',  30, 240),
        ('instagram', 'instagram', 30, 240),
        ('tiktok',    'tiktok',    25, 180),
        ('twitter',   'twitter',   25, 180),
        ('discord',   'discord',   20, 180),
        ('microsoft', 'microsoft', 20, 180),
        ('amazon',    'amazon',    25, 180),
        ('uber',      'uber',      20, 120),
        ('openai',    'openai',    40, 180)
     ) AS s (service, product, base_cents, timeout_secs)
CROSS JOIN (VALUES
        ('us', 'usa',       2.0),
        ('gb', 'england',   1.6),
        ('de', 'germany',   1.5),
        ('fr', 'france',    1.4),
        ('in', 'india',     0.6),
        ('id', 'indonesia', 0.5),
        ('br', 'brazil',    0.8),
        ('ng', 'nigeria',   0.7),
        ('ru', 'russia',    0.9),
        ('ph', 'philippines', 0.6)
     ) AS c (country, fivesim_name, factor)
CROSS JOIN (VALUES
        ('simulator',    1.0),
        ('5sim',         1.0),
        ('textverified', 1.1)
     ) AS p (provider, factor)
-- TextVerified sells United States numbers only.
WHERE p.provider <> 'textverified' OR c.country = 'us';

-- TextVerified names services by its own catalogue names.
UPDATE services SET provider_country = 'US' WHERE provider = 'textverified';
