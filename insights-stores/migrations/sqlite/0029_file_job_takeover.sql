-- Export and access-bundle jobs that outlive their process (issue 15 §2).
--
-- `file_jobs.attempt`: which run of the job this is (1 the first); a
-- running job whose lease ran out is taken over and run again with the
-- next attempt, which fences the old run out. `file_jobs.request`: what a
-- re-run needs (JSON), kept while the job runs and cleared when it ends.
--
-- Append-only: never edit this file once it has landed; add a new one.

ALTER TABLE file_jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
ALTER TABLE file_jobs ADD COLUMN request TEXT;
