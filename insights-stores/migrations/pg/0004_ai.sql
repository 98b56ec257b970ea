-- AI pipeline, part 2 (issue 6): recap citations and processing records.
--
-- * insights.citations: the transcript segments a recap item came from,
--   a JSON array of {segment_id, start_ms, end_ms}. Rows stored before
--   this migration get an empty array and stay valid.
-- * provider_calls: one row per HTTP request to an external AI provider
--   (tenant, recording, provider, operation, bytes each way, outcome):
--   the tenant's processing records. No foreign key to recordings: the
--   records outlive the recording they mention, like audit events. The
--   application may only add and read them (no UPDATE, no DELETE).
--
-- Append-only: never edit this file once it has landed; add a new one.

ALTER TABLE insights ADD COLUMN citations jsonb NOT NULL DEFAULT '[]'::jsonb
    CHECK (jsonb_typeof(citations) = 'array');

CREATE TABLE provider_calls (
    tenant_id       uuid        NOT NULL REFERENCES tenants (id),
    id              uuid        NOT NULL,
    recording_id    uuid,
    provider        text        NOT NULL,
    operation       text        NOT NULL,
    bytes_sent      bigint      NOT NULL CHECK (bytes_sent >= 0),
    bytes_received  bigint      NOT NULL CHECK (bytes_received >= 0),
    http_status     integer,
    outcome         text        NOT NULL,
    at              timestamptz NOT NULL,
    duration_ms     bigint      NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX provider_calls_by_time ON provider_calls (tenant_id, at, id);
CREATE INDEX provider_calls_by_recording ON provider_calls (tenant_id, recording_id, at, id);

-- Row-level security like every tenant table (see 0001).
ALTER TABLE provider_calls ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON provider_calls
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT, INSERT ON provider_calls TO insights_app;
