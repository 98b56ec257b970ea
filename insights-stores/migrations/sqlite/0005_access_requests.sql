-- Four-eyes playback (issue 4, part 6): a supervisor's request to play one
-- recording and a second person's decision. Rows go with their recording.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE access_requests (
    tenant_id     BLOB    NOT NULL,
    id            BLOB    NOT NULL,
    recording_id  BLOB    NOT NULL,
    requested_by  TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    requested_at  INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
    decided_by    TEXT,
    decided_at    INTEGER,
    decision_note TEXT,
    expires_at    INTEGER,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, recording_id)
        REFERENCES recordings (tenant_id, id) ON DELETE CASCADE,
    CHECK (decided_by IS NULL OR decided_by <> requested_by)
) STRICT;
CREATE INDEX access_requests_by_time ON access_requests (tenant_id, requested_at);
CREATE INDEX access_requests_by_recording ON access_requests (tenant_id, recording_id);
