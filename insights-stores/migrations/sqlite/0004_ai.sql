-- AI pipeline, part 2 (issue 6): recap citations and processing records.
--
-- * insights.citations: the transcript segments a recap item came from,
--   a JSON array of {segment_id, start_ms, end_ms}. Rows stored before
--   this migration get an empty array and stay valid.
-- * provider_calls: one row per HTTP request to an external AI provider
--   (tenant, recording, provider, operation, bytes each way, outcome):
--   the tenant's processing records. No foreign key to recordings: the
--   records outlive the recording they mention, like audit events.
--
-- Append-only: never edit this file once it has landed; add a new one.

ALTER TABLE insights ADD COLUMN citations TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(citations) AND json_type(citations) = 'array');

CREATE TABLE provider_calls (
    tenant_id       BLOB    NOT NULL REFERENCES tenants (id),
    id              BLOB    NOT NULL,
    recording_id    BLOB,
    provider        TEXT    NOT NULL,
    operation       TEXT    NOT NULL,
    bytes_sent      INTEGER NOT NULL CHECK (bytes_sent >= 0),
    bytes_received  INTEGER NOT NULL CHECK (bytes_received >= 0),
    http_status     INTEGER,
    outcome         TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX provider_calls_by_time ON provider_calls (tenant_id, at, id);
CREATE INDEX provider_calls_by_recording ON provider_calls (tenant_id, recording_id, at, id);
