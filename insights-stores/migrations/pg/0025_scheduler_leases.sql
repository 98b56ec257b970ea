-- Scheduler leases (issue 15, part 3).
--
-- One row per periodic job (retention, directory sync): the node
-- process that runs it, until when, and a fencing token that grows by
-- one every time the lease changes hands. Each interval's run of a job
-- is recorded once (job, interval start), so an interval runs exactly
-- once even across a leader change. Job and node names only: no
-- personal data.
--
-- Platform tables (no tenant): like `signing_keys` they are not granted
-- to `insights_app`, so a tenant session cannot read or write them.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE scheduler_leases (
    job        text        PRIMARY KEY,
    holder     text        NOT NULL,
    token      bigint      NOT NULL CHECK (token > 0),
    expires_at timestamptz NOT NULL
);

CREATE TABLE scheduler_runs (
    job            text        NOT NULL,
    interval_start timestamptz NOT NULL,
    holder         text        NOT NULL,
    token          bigint      NOT NULL,
    attempts       integer     NOT NULL DEFAULT 1,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    PRIMARY KEY (job, interval_start)
);
