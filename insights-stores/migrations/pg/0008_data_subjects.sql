-- Data-subject requests (GDPR, issue 7).
--
-- * Finding a subject compares participant identifiers for equality
--   (normalised by gdpr-tools). Lower-cased copies are stored generated
--   columns, not expression indexes: under row-level security PostgreSQL
--   only uses an index for a LEAKPROOF operator on a plain column
--   (`texteq`, `uuid_eq` are; `lower()` is not), so `email_lc = ANY($1)`
--   reaches its index inside the tenant session where `lower(email) = …`
--   would scan the tenant's participants.
-- * Erasure requests are persisted with their plan and progress so an
--   interrupted erasure resumes where it stopped. While a request runs its
--   state holds the identifiers; once it completes only salted hashes stay.
--   Row-level security like every tenant table.
--
-- Append-only: never edit this file once it has landed; add a new one.

ALTER TABLE participants
    ADD COLUMN email_lc text GENERATED ALWAYS AS (lower(email)) STORED,
    ADD COLUMN uri_lc   text GENERATED ALWAYS AS (lower(uri)) STORED,
    ADD COLUMN name_lc  text GENERATED ALWAYS AS (lower(display_name)) STORED;
CREATE INDEX participants_phone_number_idx ON participants (tenant_id, phone_number);
CREATE INDEX participants_email_lc_idx ON participants (tenant_id, email_lc);
CREATE INDEX participants_uri_lc_idx ON participants (tenant_id, uri_lc);
CREATE INDEX participants_name_lc_idx ON participants (tenant_id, name_lc);

CREATE TABLE erasure_requests (
    tenant_id  uuid        NOT NULL REFERENCES tenants (id),
    id         uuid        NOT NULL,
    status     text        NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text        NOT NULL,
    updated_at timestamptz NOT NULL,
    state      jsonb       NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX erasure_requests_by_time ON erasure_requests (tenant_id, created_at, id);

ALTER TABLE erasure_requests ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON erasure_requests
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE ON erasure_requests TO insights_app;
