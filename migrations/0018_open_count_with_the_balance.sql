-- The open-verification counter (migration 0009) moves in the statement that already writes
-- the account row, where there is one (issue 12): the order's debit counts the new
-- verification (`verifications::insert_charged`, the one statement that inserts
-- verifications), the refund's credit uncounts the refunded one (`ledger::refund`, the one
-- statement that refunds). The trigger did it with a second UPDATE of the same row in the
-- same transaction, and PostgreSQL re-checks an updated row's foreign keys (tenant, tier)
-- whenever the row was already written by the transaction: three statements more per order
-- and per refund, on the busiest rows of the database.
--
-- The triggers still count every other change: a completion, a cancellation, a deletion.
-- `namaskah check` (invariant open_count_matches) compares the counter with the real count.
DROP TRIGGER verifications_open_count_rows ON verifications;
CREATE TRIGGER verifications_open_count_rows
    AFTER DELETE ON verifications
    FOR EACH ROW EXECUTE FUNCTION count_open_verifications();

DROP TRIGGER verifications_open_count_status ON verifications;
CREATE TRIGGER verifications_open_count_status
    AFTER UPDATE OF status ON verifications
    FOR EACH ROW WHEN (verification_is_open(OLD.status) <> verification_is_open(NEW.status)
                       AND NEW.status <> 'refunded')
    EXECUTE FUNCTION count_open_verifications();
