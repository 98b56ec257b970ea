-- Two-person governance (issue 13 §6): a destructive governance change
-- (deleting or shortening a retention policy, lifting a legal hold,
-- turning on the media-deletion waiver) waits here until a second user
-- with the same permission approves it. Row-level security like every
-- tenant table.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE governance_changes (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id),
    id            uuid        NOT NULL,
    kind          text        NOT NULL,
    target        text        NOT NULL,
    payload       jsonb       NOT NULL,
    requested_by  text        NOT NULL,
    requested_at  timestamptz NOT NULL,
    status        text        NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_by    text,
    decided_at    timestamptz,
    PRIMARY KEY (tenant_id, id),
    CHECK (decided_by IS NULL OR decided_by <> requested_by)
);
CREATE INDEX governance_changes_by_time ON governance_changes (tenant_id, requested_at);

ALTER TABLE governance_changes ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON governance_changes
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE ON governance_changes TO insights_app;
