-- Durable jobs of the AI pipeline (issue 6): transcribe, recap.
--
-- A row holds ids, states, counters, times and a failure reason written
-- by our own code; never transcript text or other personal data.
--
-- Row-level security like every tenant table: a tenant session (enqueue,
-- job status in the API) sees only its tenant's jobs. Workers claim across
-- tenants: claim, lease renewal, completion and failure run as the
-- connecting user (the table owner, who is not subject to RLS, like every
-- platform-scope operation) and touch this table only, by id and lease.
-- The work itself then runs in a tenant session for the job's tenant.
-- See ARCHITECTURE.md ("Job queue").
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE jobs (
    tenant_id         uuid        NOT NULL,
    id                uuid        NOT NULL,
    recording_id      uuid        NOT NULL,
    kind              text        NOT NULL,
    state             text        NOT NULL
        CHECK (state IN ('queued', 'running', 'succeeded', 'dead')),
    attempts          integer     NOT NULL,
    max_attempts      integer     NOT NULL CHECK (max_attempts >= 1),
    run_after         timestamptz NOT NULL,
    worker_id         text,
    lease_id          uuid,
    lease_expires_at  timestamptz,
    last_error        text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    finished_at       timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, recording_id) REFERENCES recordings (tenant_id, id) ON DELETE CASCADE
);

-- At most one pending job per recording and kind: enqueue is idempotent.
CREATE UNIQUE INDEX jobs_pending_once
    ON jobs (tenant_id, recording_id, kind) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_by_recording ON jobs (tenant_id, recording_id, created_at);
-- The claim's scans: due queued jobs, expired leases.
CREATE INDEX jobs_due ON jobs (run_after) WHERE state = 'queued';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running';

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON jobs
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- Tenant sessions enqueue and read; only the worker side (as the owner)
-- changes a job's state.
GRANT SELECT, INSERT ON jobs TO insights_app;
