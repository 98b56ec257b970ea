-- Tenant key-encryption keys of the `database` key provider (issue 14 §1).
-- Each row is one version of a tenant's KEK, wrapped (AES-256-GCM) by a
-- root key that never enters the database; `root_check` identifies that
-- root key (a key-check value), so a node started with another root key
-- refuses to start before it writes anything. The highest version is the
-- current one; older versions exist only while a rotation rewraps the
-- tenant's data keys, then they are deleted. `tenant_id` has no foreign
-- key: the platform's own secrets use the reserved nil tenant id.
-- Row-level security like every tenant table.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE tenant_keks (
    tenant_id   uuid        NOT NULL,
    version     integer     NOT NULL CHECK (version > 0),
    kek_id      text        NOT NULL UNIQUE,
    root_check  bytea       NOT NULL,
    wrapped     bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, version)
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1);

ALTER TABLE tenant_keks ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_keks
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, DELETE ON tenant_keks TO insights_app;

-- Rotation rewraps data keys in place (the media is not re-encrypted).
CREATE INDEX data_keys_by_kek ON data_keys (tenant_id, kek_id);
