-- Two-person governance (issue 13 §6): a destructive governance change
-- (deleting or shortening a retention policy, lifting a legal hold,
-- turning on the media-deletion waiver) waits here until a second user
-- with the same permission approves it.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE governance_changes (
    tenant_id     BLOB    NOT NULL REFERENCES tenants (id),
    id            BLOB    NOT NULL,
    kind          TEXT    NOT NULL,
    target        TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    requested_by  TEXT    NOT NULL,
    requested_at  INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_by    TEXT,
    decided_at    INTEGER,
    PRIMARY KEY (tenant_id, id),
    CHECK (decided_by IS NULL OR decided_by <> requested_by)
) STRICT;
CREATE INDEX governance_changes_by_time ON governance_changes (tenant_id, requested_at);
