-- Segmented upload of live calls (issue 15 §4). One row per recording
-- whose spool media log a gateway node stages in the tenant's blob
-- container while the call runs (uncommitted blocks 0..blocks of
-- object_key, staged_len bytes of the log): the node, its lease (renewed
-- for all of the node's rows at once) and a fencing epoch. A row whose
-- lease ran out is taken over by another node (epoch + 1), which commits
-- the blocks and stores the recording as partial. `journal` is the spool
-- journal as begun (ids, stream ids, content types, times, the data key
-- wrapped under the tenant's KEK): no media, no clear key, no personal
-- data. Deleted when the recording is stored or erased; a row that was
-- taken over is retired instead (journal '', nothing staged, lease_until
-- 9999-12-31): the mark that tells the lost node, should it come back,
-- that another node stored the recording. Inserted before the recording
-- may exist (no foreign key to it).
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE segment_uploads (
    tenant_id     BLOB    NOT NULL REFERENCES tenants (id),
    recording_id  BLOB    NOT NULL,
    node          TEXT    NOT NULL,
    epoch         INTEGER NOT NULL CHECK (epoch > 0),
    lease_until   INTEGER NOT NULL,
    object_key    TEXT    NOT NULL,
    blocks        INTEGER NOT NULL CHECK (blocks >= 0),
    staged_len    INTEGER NOT NULL CHECK (staged_len >= 0),
    journal       TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, recording_id)
) STRICT;
CREATE INDEX segment_uploads_node ON segment_uploads (node);
CREATE INDEX segment_uploads_lease ON segment_uploads (lease_until);
