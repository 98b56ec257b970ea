-- Four-eyes playback (issue 4, part 6): a supervisor's request to play one
-- recording and a second person's decision. Rows go with their recording.
-- Row-level security like every tenant table.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE access_requests (
    tenant_id     uuid        NOT NULL,
    id            uuid        NOT NULL,
    recording_id  uuid        NOT NULL,
    requested_by  text        NOT NULL,
    reason        text        NOT NULL,
    requested_at  timestamptz NOT NULL,
    status        text        NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
    decided_by    text,
    decided_at    timestamptz,
    decision_note text,
    expires_at    timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, recording_id) REFERENCES recordings (tenant_id, id) ON DELETE CASCADE,
    CHECK (decided_by IS NULL OR decided_by <> requested_by)
);
CREATE INDEX access_requests_by_time ON access_requests (tenant_id, requested_at);
CREATE INDEX access_requests_by_recording ON access_requests (tenant_id, recording_id);

ALTER TABLE access_requests ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON access_requests
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE ON access_requests TO insights_app;
