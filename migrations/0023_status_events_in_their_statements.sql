-- A lean data path (issue 23): the statements that assign numbers and complete
-- verifications — two of every verification's status changes, run in batches by the workers —
-- now write their webhook events (message, deliveries, outbox rows) and the open counter
-- themselves, as common table expressions of the same statement
-- (`store::verifications::status_events`). Through the status trigger each batch also paid
-- for a PL/pgSQL call, a look at the changes joining the old and new transition tables, and
-- three more statements run through SPI, each with its own executor start.
--
-- The trigger stays for every other status change (refunds, cancels, timeouts, failures,
-- an operator's SQL) and for the workers of the release before this one, still running
-- during a rolling deploy. A statement that writes its own events says so by setting
-- `namaskah.status_events` to `written` for its transaction; the trigger's WHEN then skips
-- it, so no event is written twice and none is missed.
DROP TRIGGER verifications_status_changed ON verifications;
CREATE TRIGGER verifications_status_changed
    AFTER UPDATE ON verifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT
    WHEN (current_setting('namaskah.status_events', true) IS DISTINCT FROM 'written')
    EXECUTE FUNCTION verifications_status_changed();
