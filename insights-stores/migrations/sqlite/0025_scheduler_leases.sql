-- Scheduler leases (issue 15, part 3).
--
-- One row per periodic job (retention, directory sync): the node
-- process that runs it, until when (microseconds since the epoch), and a
-- fencing token that grows by one every time the lease changes hands.
-- Each interval's run of a job is recorded once (job, interval start).
-- Job and node names only: no personal data. Platform scope (no tenant).
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE scheduler_leases (
    job        TEXT    NOT NULL PRIMARY KEY,
    holder     TEXT    NOT NULL,
    token      INTEGER NOT NULL CHECK (token > 0),
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE scheduler_runs (
    job            TEXT    NOT NULL,
    interval_start INTEGER NOT NULL,
    holder         TEXT    NOT NULL,
    token          INTEGER NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 1,
    started_at     INTEGER NOT NULL,
    finished_at    INTEGER,
    PRIMARY KEY (job, interval_start)
) STRICT;
