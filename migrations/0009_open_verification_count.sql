-- The cap on open verifications (tiers.max_open_verifications) was checked by counting the
-- account's open verifications under its row lock on every order: the count grows with the
-- cap (10,000 for enterprise) and every order of the account waits behind it. A counter on
-- the account, kept by a trigger on every path that inserts, moves or deletes a
-- verification, makes the check one read of the row that the order locks anyway.
-- `namaskah check` compares it with the real count (invariant open_count_matches).

ALTER TABLE accounts
    ADD COLUMN open_verifications integer NOT NULL DEFAULT 0
        CHECK (open_verifications >= 0);

UPDATE accounts a
SET open_verifications = c.open
FROM (SELECT account_id, count(*) AS open
      FROM verifications
      WHERE status NOT IN ('completed', 'refunded')
      GROUP BY account_id) c
WHERE a.id = c.account_id;

CREATE FUNCTION verification_is_open(status text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$ SELECT status NOT IN ('completed', 'refunded') $$;

CREATE FUNCTION count_open_verifications() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    change integer := 0;
    account uuid;
BEGIN
    IF TG_OP = 'INSERT' THEN
        account := NEW.account_id;
        change := CASE WHEN verification_is_open(NEW.status) THEN 1 ELSE 0 END;
    ELSIF TG_OP = 'DELETE' THEN
        account := OLD.account_id;
        change := CASE WHEN verification_is_open(OLD.status) THEN -1 ELSE 0 END;
    ELSE
        account := NEW.account_id;
        change := (CASE WHEN verification_is_open(NEW.status) THEN 1 ELSE 0 END)
                - (CASE WHEN verification_is_open(OLD.status) THEN 1 ELSE 0 END);
    END IF;
    IF change <> 0 THEN
        UPDATE accounts SET open_verifications = open_verifications + change WHERE id = account;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER verifications_open_count
    AFTER INSERT OR DELETE OR UPDATE OF status ON verifications
    FOR EACH ROW EXECUTE FUNCTION count_open_verifications();
