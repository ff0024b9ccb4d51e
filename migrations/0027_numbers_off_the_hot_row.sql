-- Phone numbers listed beside the verifications, not indexed on them (issue 23).
--
-- The number's assignment set `phone_number`, which `verifications_phone_idx` covered, so
-- the update could not be HOT: it wrote a new entry into each of the row's five indexes. The
-- index served one reader, the dashboard's search by number. The assignment's statement now
-- writes the number and its verification into `verification_numbers` instead (one row, one
-- index entry), and the update touches no indexed column: measured, 9 % less PostgreSQL CPU
-- per verification (docs/benchmarks.md, "Phone numbers off the hot row").
--
-- Erasure takes a verification's number out of the list with the number itself
-- (`store::privacy`, `store::housekeeping`); `namaskah check` compares the two
-- ("phone_numbers_listed"). Numbers that an ordering worker of the release before records
-- during the rollout are listed by one statement afterwards (docs/deployment.md).
CREATE TABLE verification_numbers (
    phone_number    text NOT NULL,
    verification_id uuid NOT NULL,
    PRIMARY KEY (phone_number, verification_id)
);

INSERT INTO verification_numbers (phone_number, verification_id)
SELECT phone_number, id FROM verifications WHERE phone_number IS NOT NULL;

DROP INDEX verifications_phone_idx;
