-- Data-subject requests (GDPR, issue 7).
--
-- * Finding a subject compares participant identifiers for equality
--   (normalised by gdpr-tools), one index per identifier so each lookup is
--   an index probe instead of a scan of every participant.
-- * Erasure requests are persisted with their plan and progress so an
--   interrupted erasure resumes where it stopped. While a request runs its
--   state holds the identifiers; once it completes only salted hashes stay.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE INDEX participants_by_phone_number ON participants (tenant_id, phone_number);
CREATE INDEX participants_by_email_lc ON participants (tenant_id, lower(email));
CREATE INDEX participants_by_uri_lc ON participants (tenant_id, lower(uri));
CREATE INDEX participants_by_name_lc ON participants (tenant_id, lower(display_name));

CREATE TABLE erasure_requests (
    tenant_id  BLOB    NOT NULL REFERENCES tenants (id),
    id         BLOB    NOT NULL,
    status     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    state      TEXT    NOT NULL, -- JSON, owned by gdpr-tools
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX erasure_requests_by_time ON erasure_requests (tenant_id, created_at, id);
