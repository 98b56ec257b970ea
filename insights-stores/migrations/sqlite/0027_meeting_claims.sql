-- Meeting claims of gateway nodes (issue 15 §4). One row per (tenant,
-- call chain): the recording every bot leg of that meeting joins, and the
-- node whose leg records it while its lease runs. The row is inserted
-- before the recording (no foreign key to it) and deleted when the
-- recording ends. A lease that ran out is taken over by another node
-- whose recording continues the lost one (`epoch` + 1, a fencing token;
-- `prev_*` say what was taken over), and the continuation is marked in
-- `meeting_failovers` with the interval no node held the meeting.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE meeting_claims (
    tenant_id          BLOB    NOT NULL REFERENCES tenants (id),
    chain_key          TEXT    NOT NULL,
    recording_id       BLOB    NOT NULL,
    holder             TEXT    NOT NULL,
    lease_until        INTEGER NOT NULL,
    epoch              INTEGER NOT NULL CHECK (epoch > 0),
    claimed_at         INTEGER NOT NULL,
    prev_recording_id  BLOB,
    prev_holder        TEXT,
    prev_lease_until   INTEGER,
    PRIMARY KEY (tenant_id, chain_key)
) STRICT;

CREATE TABLE meeting_failovers (
    tenant_id     BLOB    NOT NULL,
    recording_id  BLOB    NOT NULL,
    continues     BLOB    NOT NULL,
    gap_from      INTEGER NOT NULL,
    gap_to        INTEGER NOT NULL,
    reason        TEXT    NOT NULL,
    node          TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, recording_id),
    FOREIGN KEY (tenant_id, recording_id) REFERENCES recordings (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX meeting_failovers_continues ON meeting_failovers (tenant_id, continues);
