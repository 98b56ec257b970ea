-- Tenant key-encryption keys of the `database` key provider (issue 14 §1).
-- Each row is one version of a tenant's KEK, wrapped (AES-256-GCM) by a
-- root key that never enters the database; `root_check` identifies that
-- root key (a key-check value). The highest version is the current one;
-- older versions exist only while a rotation rewraps the tenant's data
-- keys. `tenant_id` has no foreign key: the platform's own secrets use the
-- reserved nil tenant id.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE tenant_keks (
    tenant_id   BLOB    NOT NULL,
    version     INTEGER NOT NULL CHECK (version > 0),
    kek_id      TEXT    NOT NULL UNIQUE,
    root_check  BLOB    NOT NULL,
    wrapped     BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, version)
) STRICT;

CREATE INDEX data_keys_by_kek ON data_keys (tenant_id, kek_id);
