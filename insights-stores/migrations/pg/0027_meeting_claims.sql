-- Meeting claims of gateway nodes (issue 15 §4). One row per (tenant,
-- call chain): the recording every bot leg of that meeting joins, and the
-- node whose leg records it while its lease runs. The row is inserted
-- before the recording (no foreign key to it) and deleted when the
-- recording ends. A lease that ran out is taken over by another node
-- whose recording continues the lost one (`epoch` + 1, a fencing token;
-- `prev_*` say what was taken over), and the continuation is marked in
-- `meeting_failovers` with the interval no node held the meeting.
-- Row-level security like every tenant table.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE meeting_claims (
    tenant_id          uuid        NOT NULL REFERENCES tenants (id),
    chain_key          text        NOT NULL,
    recording_id       uuid        NOT NULL,
    holder             text        NOT NULL,
    lease_until        timestamptz NOT NULL,
    epoch              bigint      NOT NULL CHECK (epoch > 0),
    claimed_at         timestamptz NOT NULL,
    prev_recording_id  uuid,
    prev_holder        text,
    prev_lease_until   timestamptz,
    PRIMARY KEY (tenant_id, chain_key)
);

CREATE TABLE meeting_failovers (
    tenant_id     uuid        NOT NULL,
    recording_id  uuid        NOT NULL,
    continues     uuid        NOT NULL,
    gap_from      timestamptz NOT NULL,
    gap_to        timestamptz NOT NULL,
    reason        text        NOT NULL,
    node          text        NOT NULL,
    PRIMARY KEY (tenant_id, recording_id),
    FOREIGN KEY (tenant_id, recording_id) REFERENCES recordings (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX meeting_failovers_continues ON meeting_failovers (tenant_id, continues);

ALTER TABLE meeting_claims ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON meeting_claims
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE meeting_failovers ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON meeting_failovers
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON meeting_claims TO insights_app;
GRANT SELECT, INSERT, DELETE ON meeting_failovers TO insights_app;
