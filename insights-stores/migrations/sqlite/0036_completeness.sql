-- Completeness reconciliation (issue 17 §3): the outcome per call of the
-- reconciliation of Microsoft's call records against the recordings, the
-- runs that produced them, and the tenant's alert threshold. `detail` is
-- the JSON form of the domain value (ids, times, counts and rule names:
-- no names, numbers or addresses); the other columns are what queries
-- filter and order by.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE completeness_calls (
    tenant_id   BLOB    NOT NULL REFERENCES tenants (id),
    call_id     TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    run_id      BLOB    NOT NULL,
    PRIMARY KEY (tenant_id, call_id)
) STRICT;

CREATE INDEX completeness_calls_started ON completeness_calls (tenant_id, started_at);

CREATE TABLE completeness_runs (
    tenant_id   BLOB    NOT NULL REFERENCES tenants (id),
    id          BLOB    NOT NULL,
    started_at  INTEGER NOT NULL,
    detail      TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;

CREATE INDEX completeness_runs_started ON completeness_runs (tenant_id, started_at);

CREATE TABLE completeness_settings (
    tenant_id           BLOB    NOT NULL PRIMARY KEY REFERENCES tenants (id),
    threshold_permille  INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    updated_by          TEXT    NOT NULL
) STRICT;
