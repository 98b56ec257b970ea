-- Durable jobs of the AI pipeline (issue 6): transcribe, recap.
--
-- A row holds ids, states, counters, times and a failure reason written
-- by our own code; never transcript text or other personal data.
-- Times are microseconds since the epoch, like every SQLite timestamp.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE jobs (
    tenant_id         BLOB    NOT NULL,
    id                BLOB    NOT NULL,
    recording_id      BLOB    NOT NULL,
    kind              TEXT    NOT NULL,
    state             TEXT    NOT NULL,
    attempts          INTEGER NOT NULL,
    max_attempts      INTEGER NOT NULL,
    run_after         INTEGER NOT NULL,
    worker_id         TEXT,
    lease_id          BLOB,
    lease_expires_at  INTEGER,
    last_error        TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    finished_at       INTEGER,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, recording_id)
        REFERENCES recordings (tenant_id, id) ON DELETE CASCADE
) STRICT;

-- At most one pending job per recording and kind: enqueue is idempotent.
CREATE UNIQUE INDEX jobs_pending_once
    ON jobs (tenant_id, recording_id, kind) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_by_recording ON jobs (tenant_id, recording_id, created_at);
-- The claim's scans: due queued jobs, expired leases.
CREATE INDEX jobs_due ON jobs (run_after) WHERE state = 'queued';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running';
