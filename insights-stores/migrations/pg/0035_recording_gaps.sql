-- Gaps of recordings (issue 17 §1, pause and resume): intervals of a
-- live call whose media was deliberately not recorded. The API inserts a
-- gap when someone pauses (requested_*), the gateway node holding the
-- call sets started_at once it stopped writing media, a resume sets
-- resume_requested_*, and the gateway sets ended_at once it writes media
-- again (or the call ended paused). At most one open gap (no ended_at)
-- per recording. requested_by / resumed_by are actors as in the audit
-- trail (account ids), never names. Deleted with their recording.
-- Row-level security like every tenant table.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE recording_gaps (
    tenant_id            uuid        NOT NULL,
    id                   uuid        NOT NULL,
    recording_id         uuid        NOT NULL,
    reason               text        NOT NULL,
    requested_at         timestamptz NOT NULL,
    requested_by         text        NOT NULL,
    started_at           timestamptz,
    resume_requested_at  timestamptz,
    resumed_by           text,
    ended_at             timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, recording_id) REFERENCES recordings (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX recording_gaps_recording ON recording_gaps (tenant_id, recording_id, requested_at);
CREATE UNIQUE INDEX recording_gaps_one_open ON recording_gaps (tenant_id, recording_id)
    WHERE ended_at IS NULL;

ALTER TABLE recording_gaps ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON recording_gaps
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON recording_gaps TO insights_app;
