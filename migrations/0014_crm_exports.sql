-- How far the `crm` job has sent each stream to the CRM endpoint. A run sends what is newer
-- and moves the mark only after the CRM accepted it, so a failed run is simply repeated.
CREATE TABLE crm_exports (
    stream         text PRIMARY KEY,
    exported_until timestamptz NOT NULL
);
