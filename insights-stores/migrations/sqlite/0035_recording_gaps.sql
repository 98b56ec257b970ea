-- Gaps of recordings (issue 17 §1, pause and resume): intervals of a
-- live call whose media was deliberately not recorded. The API inserts a
-- gap when someone pauses (requested_*), the gateway node holding the
-- call sets started_at once it stopped writing media, a resume sets
-- resume_requested_*, and the gateway sets ended_at once it writes media
-- again (or the call ended paused). At most one open gap (no ended_at)
-- per recording. requested_by / resumed_by are actors as in the audit
-- trail (account ids), never names. Deleted with their recording.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE recording_gaps (
    tenant_id            BLOB    NOT NULL,
    id                   BLOB    NOT NULL,
    recording_id         BLOB    NOT NULL,
    reason               TEXT    NOT NULL,
    requested_at         INTEGER NOT NULL,
    requested_by         TEXT    NOT NULL,
    started_at           INTEGER,
    resume_requested_at  INTEGER,
    resumed_by           TEXT,
    ended_at             INTEGER,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, recording_id) REFERENCES recordings (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX recording_gaps_recording ON recording_gaps (tenant_id, recording_id, requested_at);
CREATE UNIQUE INDEX recording_gaps_one_open ON recording_gaps (tenant_id, recording_id)
    WHERE ended_at IS NULL;
