-- Export and access-bundle jobs that outlive their node (issue 15 §2).
--
-- `file_jobs.attempt`: which run of the job this is (1 the first). A
-- running job whose lease ran out (its node died) is taken over by another
-- API node, which adds one and runs it again; renewals and the job's end
-- carry the attempt, so a node that lost its lease cannot overwrite the
-- run that replaced it (fencing token). After a few attempts the job is
-- failed.
--
-- `file_jobs.request`: what a re-run needs (an export's search, columns
-- and the caller's permissions; an access bundle's identifiers and
-- options), kept while the job runs and cleared when it ends, like the
-- identifiers of a running erasure request. Row-level security as before.
--
-- Append-only: never edit this file once it has landed; add a new one.

ALTER TABLE file_jobs ADD COLUMN attempt integer NOT NULL DEFAULT 1;
ALTER TABLE file_jobs ADD COLUMN request jsonb;
